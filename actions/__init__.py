"""Actions: what Foresight does about a prediction — notify the homeowner, book a technician, or open a
ticket for a person. ``policy.decide`` is the pure decision (thresholds, dwell, cooldown, one open
case per device and failure mode); ``booking.find_slot`` the pure slot finder; ``ActionService``
persists decisions as cases, notifications, bookings and tickets on the shared database and answers
the API's queries with frozen dataclasses; ``jobs`` holds the scheduler jobs. Errors derive from
``ActionsError`` (see ``actions.errors``). Importing ``actions.db`` registers the tables on
``ingest.db.Base``, so ``ingest.db.create_schema`` creates them.
"""

from .booking import Slot, Technician, find_slot
from .errors import ActionsError, InvalidState, NotFound, UnknownFailureMode
from .jobs import register_jobs, unregister_jobs
from .policy import CaseHistory, Decision, DecisionAction, PolicyConfig, decide
from .records import Booking, Case, Notification, Outcome, Ticket
from .service import ActionService, seed_technicians

__all__ = [
    "ActionService",
    "ActionsError",
    "Booking",
    "Case",
    "CaseHistory",
    "Decision",
    "DecisionAction",
    "InvalidState",
    "NotFound",
    "Notification",
    "Outcome",
    "PolicyConfig",
    "Slot",
    "Technician",
    "Ticket",
    "UnknownFailureMode",
    "decide",
    "find_slot",
    "register_jobs",
    "seed_technicians",
    "unregister_jobs",
]
