"""Ingest: the wire contract, accepted readings, dead letters, device registry and the feature store.

Lowest layer of the backend: imports nothing of predictors, actions or foresight.
"""

from ingest.clock import AcceleratedClock, Clock, ManualClock, SystemClock
from ingest.features import FeatureVector, Reading, compute_baseline, compute_features

__all__ = [
    "AcceleratedClock",
    "Clock",
    "FeatureVector",
    "ManualClock",
    "Reading",
    "SystemClock",
    "compute_baseline",
    "compute_features",
]
