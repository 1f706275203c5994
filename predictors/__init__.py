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

Onboarding a kind from a manufacturer's files::

    history, plan = load_history(telemetry_csv, failures_csv, profile_path=None,
                                 registered=registry.profiles())
    reports = onboard(history, plan, registry=registry, now=clock.now())
"""

from predictors.dataset import FailureLabel, TrainingFrame, build_frames
from predictors.errors import HistoryError, ModelFileError, NoLiveModel, PredictorsError
from predictors.history import History
from predictors.model import FailureModeModel
from predictors.onboarding import OnboardingPlan, load_history, onboard
from predictors.profile_file import OnboardingProfile, infer_profile, parse_profile_toml
from predictors.registry import Candidate, LoadedModel, ModelRegistry, ModelVersion
from predictors.scoring import Scorer
from predictors.training import Fitted, TrainingReport, fit_all, register_fitted, train_all
from predictors.types import FeatureContribution, Prediction

__all__ = [
    "Candidate",
    "FailureLabel",
    "FailureModeModel",
    "FeatureContribution",
    "Fitted",
    "History",
    "HistoryError",
    "LoadedModel",
    "ModelFileError",
    "ModelRegistry",
    "ModelVersion",
    "NoLiveModel",
    "OnboardingPlan",
    "OnboardingProfile",
    "Prediction",
    "PredictorsError",
    "Scorer",
    "TrainingFrame",
    "TrainingReport",
    "build_frames",
    "fit_all",
    "infer_profile",
    "load_history",
    "onboard",
    "parse_profile_toml",
    "register_fitted",
    "train_all",
]
