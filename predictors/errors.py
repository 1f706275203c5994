"""The predictors error tree.

::

    PredictorsError            anything predictors refuses or cannot do
    ├── NoLiveModel            no live model version for a (kind, failure mode)
    ├── ModelFileError         a registered model file is missing, unreadable or not ours
    └── HistoryError           an onboarding file (telemetry, failures, profile) is refused;
                               names the file, and the row and column where there is one
"""

from __future__ import annotations

__all__ = ["HistoryError", "ModelFileError", "NoLiveModel", "PredictorsError"]


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


class HistoryError(PredictorsError):
    """An onboarding input is refused: ``file``, 1-based data ``row`` (header is row 1) and ``column``.

    ``row`` and ``column`` are None when the problem is the whole file (or a whole column).
    """

    def __init__(self, file: str, message: str, *, row: int | None = None,
                 column: str | None = None) -> None:
        where = file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.row = row
        self.column = column
        self.detail = message
