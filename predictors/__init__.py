"""Predictors: training frames, failure-mode models, the model registry and scoring.

Turns feature vectors into calibrated ``Prediction``s (probability of failure within the horizon,
remaining time with an interval, reasons, novelty and sensor-fault flags); never decisions, which
belong to ``actions``. Imports ``ingest`` only. Errors derive from ``PredictorsError``
(see ``predictors.errors``).

Typical wiring (composition root)::

    registry = ModelRegistry(engine, model_dir)
    reports = train_all(readings, failures, registry=registry, now=clock.now())
    scorer = Scorer(registry)
    predictions = scorer.score_many(vectors, now=clock.now())
"""

from predictors.dataset import FailureLabel, TrainingFrame, build_frames
from predictors.errors import ModelFileError, NoLiveModel, PredictorsError
from predictors.model import FailureModeModel
from predictors.registry import LoadedModel, ModelRegistry, ModelVersion
from predictors.scoring import Scorer
from predictors.training import TrainingReport, train_all
from predictors.types import FeatureContribution, Prediction

__all__ = [
    "FailureLabel",
    "FailureModeModel",
    "FeatureContribution",
    "LoadedModel",
    "ModelFileError",
    "ModelRegistry",
    "ModelVersion",
    "NoLiveModel",
    "Prediction",
    "PredictorsError",
    "Scorer",
    "TrainingFrame",
    "TrainingReport",
    "build_frames",
    "train_all",
]
