"""What the actions service hands out: frozen dataclasses, never ORM rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .booking import Technician
from .db import BookingRow, CaseRow, FeedRow, LabelRow, NotificationRow, OutboxRow, TechnicianRow, TicketRow
from .policy import Decision, DecisionAction

__all__ = [
    "ALERT_ACTIONS",
    "INFO_ACTIONS",
    "Booking",
    "Case",
    "FeedItem",
    "Label",
    "Notification",
    "NotificationActionResult",
    "OutboxEntry",
    "Outcome",
    "Ticket",
]

#: What a homeowner can do with an alert, and with an informational message.
ALERT_ACTIONS: tuple[str, ...] = ("acknowledge", "snooze", "done", "book", "wrong", "talk_to_person")
INFO_ACTIONS: tuple[str, ...] = ("acknowledge", "talk_to_person")
_ALERT_TEMPLATES = frozenset({"prediction_fix", "error_fix", "error_visit", "safety"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One episode of attention for a (device, failure mode)."""

    case_id: int
    device_id: str
    kind: str
    mode: str
    status: str
    action: DecisionAction
    priority: str
    reason: str
    due_by: datetime | None
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None

    @classmethod
    def _from_row(cls, row: CaseRow) -> Case:
        return cls(case_id=row.id, device_id=row.device_id, kind=row.kind, mode=row.mode,
                   status=row.status, action=DecisionAction(row.action), priority=row.priority,
                   reason=row.reason, due_by=row.due_by, opened_at=row.opened_at,
                   closed_at=row.closed_at, close_reason=row.close_reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """A message to a household.

    ``status``: held (quiet hours, not yet delivered), new, acknowledged, snoozed, done, wrong,
    booked, talked (a person was asked), dismissed. ``actions`` are the buttons to offer.
    ``severity``: info / warning / safety. ``template`` names the message (``templates.TEMPLATES``).
    """

    notification_id: int
    household_id: str
    device_id: str
    mode: str
    title: str
    body: str
    created_at: datetime
    status: str
    case_id: int | None
    template: str = "prediction_fix"
    language: str = "en"
    severity: str = "info"
    code: str | None = None
    due_by: datetime | None = None
    deliver_at: datetime | None = None
    delivered_at: datetime | None = None
    snoozed_until: datetime | None = None
    booking_id: int | None = None
    ticket_id: int | None = None
    actions: tuple[str, ...] = ()

    @classmethod
    def _from_row(cls, row: NotificationRow) -> Notification:
        return cls(notification_id=row.id, household_id=row.household_id, device_id=row.device_id,
                   mode=row.mode, title=row.title, body=row.body, created_at=row.created_at,
                   status=row.status, case_id=row.case_id, template=row.template,
                   language=row.language, severity=row.severity, code=row.code, due_by=row.due_by,
                   deliver_at=row.deliver_at, delivered_at=row.delivered_at,
                   snoozed_until=row.snoozed_until, booking_id=row.booking_id, ticket_id=row.ticket_id,
                   actions=ALERT_ACTIONS if row.template in _ALERT_TEMPLATES else INFO_ACTIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedItem:
    """One entry of a household's in-app feed; ``feed_id`` is the stream cursor (SSE ``id:``)."""

    feed_id: int
    event: str  # created / updated
    at: datetime
    notification: Notification

    @classmethod
    def _from_rows(cls, feed: FeedRow, row: NotificationRow) -> FeedItem:
        return cls(feed_id=feed.id, event=feed.event, at=feed.at, notification=Notification._from_row(row))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One webhook delivery and how it went (status: pending / delivered / failed)."""

    outbox_id: int
    notification_id: int | None
    household_id: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def _from_row(cls, row: OutboxRow) -> OutboxEntry:
        return cls(outbox_id=row.id, notification_id=row.notification_id, household_id=row.household_id,
                   url=row.url, status=row.status, attempts=row.attempts,
                   next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                   created_at=row.created_at, delivered_at=row.delivered_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """What really happened to a device, for the models to learn from."""

    label_id: int
    device_id: str
    kind: str
    mode: str
    source: str  # technician / homeowner / agent
    outcome: str  # confirmed_fault / no_fault_found / part_replaced / fixed_by_homeowner / false_alarm
    ts: datetime
    parts: tuple[str, ...]
    note: str
    features: Mapping[str, float] | None
    case_id: int | None
    booking_id: int | None
    ticket_id: int | None

    @classmethod
    def _from_row(cls, row: LabelRow) -> Label:
        return cls(label_id=row.id, device_id=row.device_id, kind=row.kind, mode=row.mode,
                   source=row.source, outcome=row.outcome, ts=row.ts, parts=tuple(row.parts),
                   note=row.note, features=dict(row.features) if row.features else None,
                   case_id=row.case_id, booking_id=row.booking_id, ticket_id=row.ticket_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """A technician visit (status: scheduled / due / completed / cancelled / overdue).

    ``reason`` is the diagnosis the technician starts from (the decision's reason or the error
    code's meaning); ``outcome`` and ``parts`` are what the technician recorded on completion.
    """

    booking_id: int
    technician_id: str
    device_id: str
    mode: str
    household_id: str | None
    start: datetime
    end: datetime
    status: str
    diagnosis: str | None
    case_id: int | None
    reason: str | None = None
    outcome: str | None = None
    parts: tuple[str, ...] = ()
    reminded_at: datetime | None = None
    cancel_reason: str | None = None
    #: Who completed / cancelled it: a user id, None for automation or a script.
    completed_by: str | None = None
    cancelled_by: str | None = None

    @classmethod
    def _from_row(cls, row: BookingRow) -> Booking:
        return cls(booking_id=row.id, technician_id=row.technician_id, device_id=row.device_id,
                   mode=row.mode, household_id=row.household_id, start=row.start_at,
                   end=row.end_at, status=row.status, diagnosis=row.diagnosis, case_id=row.case_id,
                   reason=row.reason, outcome=row.outcome, parts=tuple(row.parts or ()),
                   reminded_at=row.reminded_at, cancel_reason=row.cancel_reason,
                   completed_by=row.completed_by, cancelled_by=row.cancelled_by)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationActionResult:
    """What a homeowner's tap did: the updated notification, and the ticket or booking it made."""

    notification: Notification
    ticket: Ticket | None = None
    booking: Booking | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    """Work for a person (status: open / resolved); ``context`` is what they need to start."""

    ticket_id: int
    device_id: str | None
    household_id: str | None
    mode: str | None
    category: str
    priority: str
    status: str
    subject: str
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    context: Mapping[str, Any] = field(default_factory=dict)
    case_id: int | None = None
    kind: str | None = None
    code: str | None = None
    #: SLA deadline; ``escalation_level`` counts the breaches so far.
    due_at: datetime | None = None
    escalation_level: int = 0
    #: A person asked for a person: only a person answers or closes it.
    human_only: bool = False
    resolution_action: str | None = None
    #: The user id of the person who resolved it (None: resolved by a script).
    resolved_by: str | None = None

    @classmethod
    def _from_row(cls, row: TicketRow) -> Ticket:
        return cls(ticket_id=row.id, device_id=row.device_id, household_id=row.household_id,
                   mode=row.mode, category=row.category, priority=row.priority, status=row.status,
                   subject=row.subject, created_at=row.created_at, resolved_at=row.resolved_at,
                   resolution=row.resolution, context=dict(row.context), case_id=row.case_id,
                   kind=row.kind, code=row.code, due_at=row.due_at,
                   escalation_level=row.escalation_level, human_only=row.human_only,
                   resolution_action=row.resolution_action, resolved_by=row.resolved_by)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What handling one prediction did. ``duplicate``: already handled, nothing changed."""

    device_id: str
    mode: str
    prediction_ts: datetime
    decision: Decision
    case_id: int | None = None
    notification_id: int | None = None
    booking_id: int | None = None
    ticket_id: int | None = None
    duplicate: bool = False


def technician_from_row(row: TechnicianRow) -> Technician:
    """The pure ``Technician`` of a technicians row."""
    start, end = row.working_hours
    return Technician(technician_id=row.technician_id, name=row.name,
                      skills=frozenset(row.skills), service_areas=frozenset(row.service_areas),
                      working_hours=(int(start), int(end)),
                      working_days=frozenset(int(d) for d in row.working_days),
                      max_jobs_per_day=row.max_jobs_per_day)
