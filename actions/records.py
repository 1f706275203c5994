"""What the actions service hands out: frozen dataclasses, never ORM rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .booking import Technician
from .db import BookingRow, CaseRow, NotificationRow, TechnicianRow, TicketRow
from .policy import Decision, DecisionAction

__all__ = ["Booking", "Case", "Notification", "Outcome", "Ticket"]


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
    """A message to a household (status: new / acknowledged / done / dismissed)."""

    notification_id: int
    household_id: str
    device_id: str
    mode: str
    title: str
    body: str
    created_at: datetime
    status: str
    case_id: int | None

    @classmethod
    def _from_row(cls, row: NotificationRow) -> Notification:
        return cls(notification_id=row.id, household_id=row.household_id, device_id=row.device_id,
                   mode=row.mode, title=row.title, body=row.body, created_at=row.created_at,
                   status=row.status, case_id=row.case_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """A technician visit (status: scheduled / due / completed / cancelled)."""

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

    @classmethod
    def _from_row(cls, row: BookingRow) -> Booking:
        return cls(booking_id=row.id, technician_id=row.technician_id, device_id=row.device_id,
                   mode=row.mode, household_id=row.household_id, start=row.start_at,
                   end=row.end_at, status=row.status, diagnosis=row.diagnosis, case_id=row.case_id)


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

    @classmethod
    def _from_row(cls, row: TicketRow) -> Ticket:
        return cls(ticket_id=row.id, device_id=row.device_id, household_id=row.household_id,
                   mode=row.mode, category=row.category, priority=row.priority, status=row.status,
                   subject=row.subject, created_at=row.created_at, resolved_at=row.resolved_at,
                   resolution=row.resolution, context=dict(row.context), case_id=row.case_id)


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
                      working_days=frozenset(int(d) for d in row.working_days))
