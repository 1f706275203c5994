"""The actions error tree. Every error the package raises on purpose derives from ``ActionsError``::

    ActionsError
    ├── NotFound             a case, notification, booking, ticket or device id that does not exist
    ├── InvalidState         a transition the record's status forbids (resolving a resolved ticket)
    ├── UnknownFailureMode   a prediction for a kind or failure mode no profile declares
    └── NoSlot               no technician can come (skill, area, hours, capacity, availability)
        └── SlotTaken        the requested slot is taken (possibly by a booking committed just now)
"""

from __future__ import annotations

__all__ = ["ActionsError", "InvalidState", "NoSlot", "NotFound", "SlotTaken", "UnknownFailureMode"]


class ActionsError(Exception):
    """Base of every error raised on purpose by ``actions``."""


class NotFound(ActionsError):
    """The id names no record."""


class InvalidState(ActionsError):
    """The record's current status does not allow the requested change."""


class UnknownFailureMode(ActionsError):
    """No appliance profile declares this (kind, failure mode)."""


class NoSlot(ActionsError):
    """No qualified technician has a free slot; ``ticket_id`` names the ticket opened for a person."""

    def __init__(self, message: str, *, ticket_id: int | None = None) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id


class SlotTaken(NoSlot):
    """The requested (technician, start) slot is not free; the database refused the double booking."""
