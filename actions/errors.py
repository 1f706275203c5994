"""The actions error tree. Every error the package raises on purpose derives from ``ActionsError``::

    ActionsError
    ├── NotFound             a case, notification, booking, ticket or device id that does not exist
    ├── InvalidState         a transition the record's status forbids (resolving a resolved ticket)
    └── UnknownFailureMode   a prediction for a kind or failure mode no profile declares
"""

from __future__ import annotations

__all__ = ["ActionsError", "InvalidState", "NotFound", "UnknownFailureMode"]


class ActionsError(Exception):
    """Base of every error raised on purpose by ``actions``."""


class NotFound(ActionsError):
    """The id names no record."""


class InvalidState(ActionsError):
    """The record's current status does not allow the requested change."""


class UnknownFailureMode(ActionsError):
    """No appliance profile declares this (kind, failure mode)."""
