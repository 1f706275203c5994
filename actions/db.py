"""Tables owned by actions, on the shared ``ingest.db.Base`` (created by ``ingest.db.create_schema``).

Invariants the database itself holds, so concurrent writers cannot break them:

* ``cases``: at most one *open* case per (device_id, mode) — partial unique index.
* ``bookings``: at most one active (scheduled/due) booking per technician and start — partial
  unique index.
* ``booking_slots``: a technician is never double-booked. Every active booking claims one row per
  hour it covers (``SLOT``), and ``(technician_id, slot_start)`` is the primary key, so of two
  transactions racing for the same hour the database lets exactly one commit (the other gets an
  ``IntegrityError``), on SQLite and PostgreSQL alike. Cancelling or rescheduling deletes the rows.
* ``event_actions``: each device error event is acted on once (its id is the primary key).
* ``notification_feed``: an append-only log, so a client that has seen feed id N asks for what came
  after N (a held notification enters the feed when it is released, not when it was made).

``case_state`` is the policy's memory per (device_id, mode): when the current uncertain run and
calm run started, recent p_fail values and the last prediction handled (for idempotency).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ingest.db import Base

__all__ = [
    "SCHEDULER_JOBS",
    "BookingRow",
    "BookingSlotRow",
    "CaseRow",
    "CaseStateRow",
    "DecisionLogRow",
    "EventActionRow",
    "FeedRow",
    "HouseholdRow",
    "LabelRow",
    "NotificationRow",
    "OutboxRow",
    "TechnicianRow",
    "TicketRow",
]

_ID = BigInteger().with_variant(Integer, "sqlite")
_OPEN = text("status = 'open'")
_ACTIVE = text("status IN ('scheduled', 'due')")


class CaseRow(Base):
    """One episode of attention for a (device, failure mode): opened by a decision, closed once."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("uq_cases_one_open", "device_id", "mode", unique=True,
              sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_cases_kind_mode_status", "kind", "mode", "status"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / closed
    action: Mapped[str] = mapped_column(String(32))  # DecisionAction value
    priority: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    due_by: Mapped[datetime | None] = mapped_column(default=None)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    close_reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: The device's feature vector when the case opened (labels and similar-case search use it).
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class CaseStateRow(Base):
    """The policy's running memory for one (device, mode)."""

    __tablename__ = "case_state"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(64), primary_key=True)
    uncertain_since: Mapped[datetime | None] = mapped_column(default=None)
    calm_since: Mapped[datetime | None] = mapped_column(default=None)
    recent_p_fail: Mapped[list[float]] = mapped_column(JSON, default=list)
    last_prediction_ts: Mapped[datetime | None] = mapped_column(default=None)
    last_prediction_n: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    touched_at: Mapped[datetime]


class NotificationRow(Base):
    """A message to a household."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    #: new / held / acknowledged / snoozed / done / wrong / booked / talked / dismissed
    status: Mapped[str] = mapped_column(String(16), default="new")
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    #: Template key (``templates.TEMPLATES``): prediction_fix, prediction_visit, booking_booked, ...
    template: Mapped[str] = mapped_column(String(32), default="prediction_fix", server_default="prediction_fix")
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    severity: Mapped[str] = mapped_column(String(16), default="info", server_default="info")  # info/warning/safety
    code: Mapped[str | None] = mapped_column(String(32), default=None)
    due_by: Mapped[datetime | None] = mapped_column(default=None)
    #: Held for quiet hours until then; None when delivered at once.
    deliver_at: Mapped[datetime | None] = mapped_column(default=None)
    #: When it reached the household (None while held).
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    booking_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ticket_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class TechnicianRow(Base):
    """A technician and the working week the slot finder reads."""

    __tablename__ = "technicians"

    technician_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    skills: Mapped[list[str]] = mapped_column(JSON)
    service_areas: Mapped[list[str]] = mapped_column(JSON)
    working_hours: Mapped[list[int]] = mapped_column(JSON)  # [start_hour, end_hour] UTC
    working_days: Mapped[list[int]] = mapped_column(JSON)  # weekday numbers, Monday = 0
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_jobs_per_day: Mapped[int] = mapped_column(Integer, default=6, server_default="6")
    #: Bumped by every booking transaction: the write that serialises competing bookings.
    lock_version: Mapped[int] = mapped_column(Integer, default=0)


class BookingRow(Base):
    """A technician visit."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index("uq_bookings_technician_active_start", "technician_id", "start_at", unique=True,
              sqlite_where=_ACTIVE, postgresql_where=_ACTIVE),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    technician_id: Mapped[str] = mapped_column(ForeignKey("technicians.technician_id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    mode: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[str | None] = mapped_column(String(64), default=None)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    #: scheduled / due / completed / cancelled / overdue
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    diagnosis: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    #: Why the visit is needed, for the technician: the decision's reason or the error code's meaning.
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    overdue_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_reason: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    parts: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: The signed-in user who completed / cancelled the visit (None: automation or a script).
    completed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    cancelled_by: Mapped[str | None] = mapped_column(String(64), default=None)


class TicketRow(Base):
    """Work for a person: bad data, lasting uncertainty, no free slot, or a customer asking."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_queue", "status", "priority_rank", "created_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    household_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    mode: Mapped[str | None] = mapped_column(String(64), default=None)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(Integer)  # index in policy.PRIORITIES
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / resolved
    subject: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    context: Mapped[dict[str, Any]]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    kind: Mapped[str | None] = mapped_column(String(32), default=None)
    code: Mapped[str | None] = mapped_column(String(32), default=None)
    #: SLA: when the ticket must have been picked up / resolved (``tickets.SLA``).
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)
    #: A person asked for a person: automation never answers or closes it.
    human_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    resolution_action: Mapped[str | None] = mapped_column(String(16), default=None)
    notification_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: The signed-in user who resolved the ticket (None: resolved by a script).
    resolved_by: Mapped[str | None] = mapped_column(String(64), default=None)


class DecisionLogRow(Base):
    """Every non-NONE decision and what was done about it, for audit."""

    __tablename__ = "decisions_log"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(64))
    prediction_ts: Mapped[datetime]
    model_version: Mapped[str] = mapped_column(String(64))
    p_fail: Mapped[float] = mapped_column(Float)
    ttf_low_h: Mapped[float] = mapped_column(Float)
    ttf_high_h: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    due_by: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(Text)  # e.g. "booking:12", "ticket:3 (no slot)"
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    decided_at: Mapped[datetime]


class HouseholdRow(Base):
    """A household (the homeowner account) and its notification preferences."""

    __tablename__ = "households"

    household_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    language: Mapped[str] = mapped_column(String(8), default="en")  # en / zh
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")  # IANA name
    quiet_start: Mapped[str | None] = mapped_column(String(5), default=None)  # "HH:MM" local
    quiet_end: Mapped[str | None] = mapped_column(String(5), default=None)
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["in_app"])
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_secret: Mapped[str | None] = mapped_column(Text, default=None)
    #: Weekly windows when someone is home for a visit: [{"weekdays": [0..6], "start": "HH:MM", "end": "HH:MM"}].
    availability: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedRow(Base):
    """The in-app feed: one row each time a notification reaches a household or changes."""

    __tablename__ = "notification_feed"
    __table_args__ = (Index("ix_notification_feed_household_id_id", "household_id", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    household_id: Mapped[str] = mapped_column(String(64))
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    event: Mapped[str] = mapped_column(String(16))  # created / updated
    at: Mapped[datetime]


class OutboxRow(Base):
    """A webhook delivery: retried with backoff until delivered or out of attempts (failed)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"), default=None)
    household_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook
    url: Mapped[str] = mapped_column(Text)
    #: The exact JSON bytes sent (and signed), as text.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending / delivered / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class BookingSlotRow(Base):
    """One hour of one technician claimed by one booking: the primary key forbids double booking."""

    __tablename__ = "booking_slots"

    technician_id: Mapped[str] = mapped_column(ForeignKey("technicians.technician_id"), primary_key=True)
    slot_start: Mapped[datetime] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)


class LabelRow(Base):
    """What really happened to a device (technician outcome, homeowner or agent verdict): model labels."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_kind_mode", "kind", "mode"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(64))  # failure mode, or "error:<code>"
    source: Mapped[str] = mapped_column(String(16))  # technician / homeowner / agent
    #: confirmed_fault / no_fault_found / part_replaced / fixed_by_homeowner / false_alarm
    outcome: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    parts: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), default=None)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)


class EventActionRow(Base):
    """What was done about one device error event (so each is acted on once)."""

    __tablename__ = "event_actions"

    event_id: Mapped[int] = mapped_column(ForeignKey("device_events.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    code: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(Text)
    handled_at: Mapped[datetime]


#: APScheduler's persistent job store table, declared here so migrations build it (and the schema
#: check knows it); ``SQLAlchemyJobStore(tablename="apscheduler_jobs")`` finds it in place. Same
#: columns as APScheduler 3 declares.
SCHEDULER_JOBS = Table(
    "apscheduler_jobs", Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
