"""Actions: what Foresight does about a prediction or a device error — notify the homeowner, book a
technician, or open a ticket for a person — and what people do back.

``policy.decide`` is the pure decision (thresholds, dwell, cooldown, one open case per device and
failure mode); ``delivery.plan_delivery`` the pure delivery policy (quiet hours, notification
cooldown, storm cap, safety override); ``booking.find_slot`` the pure slot finder;
``error_codes`` the error-code table; ``templates`` the English and Chinese messages.
``ActionService`` persists decisions as cases, notifications, bookings and tickets on the shared
database, applies what homeowners, technicians and agents do, and answers queries with frozen
dataclasses; ``jobs`` holds the scheduler jobs. Errors derive from ``ActionsError`` (see
``actions.errors``). Importing ``actions.db`` registers the tables on ``ingest.db.Base``, so
``ingest.db.create_schema`` creates them. See docs/people.md.
"""

from .booking import Slot, Technician, find_slot
from .delivery import DeliveryConfig, DeliveryPlan, DeliveryPrefs, QuietHours, Urgency, plan_delivery
from .error_codes import ERROR_CODES, ErrorCode
from .errors import ActionsError, InvalidState, NoSlot, NotFound, SlotTaken, UnknownFailureMode
from .events import EventOutcome
from .households import AvailabilityWindow, HouseholdPrefs
from .jobs import register_jobs, unregister_jobs
from .people import NOTIFICATION_ACTIONS
from .policy import CaseHistory, Decision, DecisionAction, PolicyConfig, decide
from .records import (
    Booking,
    Case,
    FeedItem,
    Label,
    Notification,
    NotificationActionResult,
    OutboxEntry,
    Outcome,
    Ticket,
)
from .service import ActionService, seed_technicians
from .tickets import LABEL_OUTCOMES as TICKET_OUTCOMES
from .tickets import RESOLUTION_ACTIONS
from .visits import BOOKING_OUTCOMES, CANCELLED_BY, OPEN_VISIT, TechnicianJob
from .webhook import HttpWebhookSender, RetryConfig, WebhookSender, sign, verify_signature

__all__ = [
    "BOOKING_OUTCOMES",
    "CANCELLED_BY",
    "ERROR_CODES",
    "NOTIFICATION_ACTIONS",
    "OPEN_VISIT",
    "RESOLUTION_ACTIONS",
    "TICKET_OUTCOMES",
    "ActionService",
    "ActionsError",
    "AvailabilityWindow",
    "Booking",
    "Case",
    "CaseHistory",
    "Decision",
    "DecisionAction",
    "DeliveryConfig",
    "DeliveryPlan",
    "DeliveryPrefs",
    "ErrorCode",
    "EventOutcome",
    "FeedItem",
    "HouseholdPrefs",
    "HttpWebhookSender",
    "InvalidState",
    "Label",
    "NoSlot",
    "NotFound",
    "Notification",
    "NotificationActionResult",
    "OutboxEntry",
    "Outcome",
    "PolicyConfig",
    "QuietHours",
    "RetryConfig",
    "Slot",
    "SlotTaken",
    "Technician",
    "TechnicianJob",
    "Ticket",
    "UnknownFailureMode",
    "Urgency",
    "WebhookSender",
    "decide",
    "find_slot",
    "plan_delivery",
    "register_jobs",
    "seed_technicians",
    "sign",
    "unregister_jobs",
    "verify_signature",
]
