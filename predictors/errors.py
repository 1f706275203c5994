"""The predictors error tree.

::

    PredictorsError            anything predictors refuses or cannot do
    ├── NoLiveModel            no live model version for a (kind, failure mode)
    └── ModelFileError         a registered model file is missing, unreadable or not ours
"""

from __future__ import annotations

__all__ = ["ModelFileError", "NoLiveModel", "PredictorsError"]


class PredictorsError(Exception):
    """Base of every error raised by predictors."""


class NoLiveModel(PredictorsError):
    """No live model version for a (kind, failure mode)."""

    def __init__(self, kind: str, mode: str) -> None:
        super().__init__(f"no live model for {kind}.{mode}")
        self.kind = kind
        self.mode = mode


class ModelFileError(PredictorsError):
    """A registered model file is missing, unreadable or does not hold a predictors model."""
