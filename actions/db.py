"""Tables owned by actions, on the shared ``ingest.db.Base`` (created by ``ingest.db.create_schema``).

Invariants the database itself holds, so concurrent writers cannot break them:

* ``cases``: at most one *open* case per (device_id, mode) — partial unique index.
* ``bookings``: at most one active (scheduled/due) booking per technician and start — partial
  unique index; overlap in general is prevented by the service, which books inside a transaction
  that locks the technicians (see ``service.py``).

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
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ingest.db import Base

__all__ = [
    "BookingRow",
    "CaseRow",
    "CaseStateRow",
    "DecisionLogRow",
    "NotificationRow",
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
    status: Mapped[str] = mapped_column(String(16), default="new")  # new/acknowledged/done/dismissed
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)


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
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # scheduled/due/completed/cancelled
    diagnosis: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)


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
