"""Technician scheduling on the database: placing, moving, cancelling and completing visits.

``place_booking`` (inside the caller's transaction) finds the earliest slot with the pure
``booking.find_slot`` — skill, service area, working hours, capacity per day, the household's
availability windows, before the deadline — and claims it: the booking row plus one
``booking_slots`` row per hour. The slot rows' primary key ``(technician_id, slot_start)`` is what
makes double booking impossible: of two transactions that picked the same hour, the second gets
an ``IntegrityError`` at flush (PostgreSQL) or at its first write after the winner committed
(SQLite), whatever the code above it believed. Automatic placement also row-locks the
technicians first (``lock_version``), so competing automatic bookings queue instead of failing;
a request for one explicit slot relies on the key alone and loses with ``SlotTaken``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ingest.contract import ActionKind, get_profile

from .booking import SLOT, Slot, availability_intervals, find_slot, slot_starts
from .db import BookingRow, BookingSlotRow, TechnicianRow
from .delivery import parse_hhmm
from .error_codes import lookup
from .households import prefs_of
from .records import technician_from_row

__all__ = ["ACTIVE_BOOKING", "BookingRequest", "claim_slots", "move_booking", "place_booking", "release_slots",
           "skill_for", "visit_mode"]

ACTIVE_BOOKING = ("scheduled", "due")


def skill_for(kind: str, mode: str) -> str:
    """The technician skill a visit about (kind, mode) needs: the mode's, the error code's, or the kind's."""
    try:
        profile = get_profile(kind)
    except KeyError:
        return kind
    for failure in profile.failure_modes:
        if failure.name == mode and failure.skill:
            return failure.skill
    if mode.startswith("error:"):
        for model in ("*", *profile.models):
            entry = lookup(kind=kind, model=model, code=mode.removeprefix("error:"))
            if entry is not None:
                return entry.skill
    # The kind's own visit skill (the skill of its book-a-technician mode), else the kind's name.
    return next((f.skill for f in profile.failure_modes
                 if f.action is ActionKind.BOOK_TECHNICIAN and f.skill), kind)


def visit_mode(kind: str) -> str:
    """The failure mode a visit to this kind is about by default: its book-a-technician mode."""
    try:
        profile = get_profile(kind)
    except KeyError:
        return "visit"
    return next((f.name for f in profile.failure_modes if f.action is ActionKind.BOOK_TECHNICIAN), "visit")


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingRequest:
    """A visit to place: who, what for, and the window it must fit in."""

    device_id: str
    household_id: str | None
    mode: str
    skill: str
    service_area: str
    earliest: datetime
    deadline: datetime
    duration: timedelta
    reason: str
    case_id: int | None = None


def _find(s: Session, req: BookingRequest, *, exclude_booking: int | None = None,
          exclude: frozenset[tuple[str, datetime]] = frozenset()) -> Slot | None:
    technicians = [technician_from_row(r) for r in s.scalars(
        select(TechnicianRow).where(TechnicianRow.active.is_(True)))]
    busy: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    per_day: dict[tuple[str, date], int] = defaultdict(int)
    day0 = req.earliest.replace(hour=0, minute=0, second=0, microsecond=0)
    for b in s.scalars(select(BookingRow).where(
            BookingRow.status.in_((*ACTIVE_BOOKING, "completed")), BookingRow.end_at > day0,
            BookingRow.start_at < req.deadline + timedelta(days=1))):
        if b.id == exclude_booking:
            continue
        per_day[(b.technician_id, b.start_at.date())] += 1
        if b.status in ACTIVE_BOOKING:
            busy[b.technician_id].append((b.start_at, b.end_at))
    # The claims are the truth the database enforces: an hour still claimed is busy whatever the
    # booking's status says, so a stale claim can cost an hour but never a failed booking.
    for claim in s.scalars(select(BookingSlotRow).where(
            BookingSlotRow.slot_start >= day0 - SLOT, BookingSlotRow.slot_start < req.deadline + timedelta(days=1))):
        if claim.booking_id != exclude_booking:
            busy[claim.technician_id].append((claim.slot_start, claim.slot_start + SLOT))
    availability = None
    if req.household_id is not None:
        prefs = prefs_of(s, req.household_id)
        if prefs.availability:
            availability = availability_intervals(
                [(w.weekdays, parse_hhmm(w.start), parse_hhmm(w.end)) for w in prefs.availability],
                timezone=prefs.timezone, start=req.earliest, end=req.deadline)
    return find_slot(technicians=technicians, busy=busy, service_area=req.service_area, skill=req.skill,
                     earliest=req.earliest, deadline=req.deadline, duration=req.duration,
                     availability=availability, jobs_per_day=per_day, exclude=exclude)


def claim_slots(s: Session, booking: BookingRow) -> None:
    """Insert the booking's ``booking_slots`` rows and flush (IntegrityError: the hour is taken)."""
    for start in slot_starts(booking.start_at, booking.end_at):
        s.add(BookingSlotRow(technician_id=booking.technician_id, slot_start=start, booking_id=booking.id))
    s.flush()


def release_slots(s: Session, booking_id: int) -> None:
    """Free the hours a booking held (cancelled or moved)."""
    s.execute(delete(BookingSlotRow).where(BookingSlotRow.booking_id == booking_id))


def place_booking(s: Session, req: BookingRequest, *, now: datetime,
                  start: datetime | None = None) -> BookingRow | None:
    """Book the earliest fitting slot (or exactly ``start``); None when nothing fits.

    With ``start`` only that start is considered, and the deadline is the end of that visit.
    """
    if start is None:
        # Row-locks the technicians on PostgreSQL so competing automatic bookings queue.
        s.execute(update(TechnicianRow).where(TechnicianRow.active.is_(True))
                  .values(lock_version=TechnicianRow.lock_version + 1))
        slot = _find(s, req)
    else:
        slot = _find(s, replace(req, earliest=start, deadline=start + req.duration))
        if slot is not None and slot.start != start:
            slot = None
    if slot is None:
        return None
    row = BookingRow(technician_id=slot.technician_id, device_id=req.device_id, mode=req.mode,
                     household_id=req.household_id, start_at=slot.start, end_at=slot.end,
                     status="scheduled", created_at=now, case_id=req.case_id, reason=req.reason)
    s.add(row)
    s.flush()
    claim_slots(s, row)
    return row


def move_booking(s: Session, row: BookingRow, req: BookingRequest, *, start: datetime | None) -> bool:
    """Move an active booking to ``start`` or the earliest slot after its current start; False if none."""
    if start is None:
        slot = _find(s, req, exclude_booking=row.id,
                     exclude=frozenset({(row.technician_id, row.start_at)}))
    else:
        slot = _find(s, replace(req, earliest=start, deadline=start + req.duration),
                     exclude_booking=row.id)
        if slot is not None and slot.start != start:
            slot = None
    if slot is None:
        return False
    release_slots(s, row.id)
    s.flush()
    row.technician_id, row.start_at, row.end_at = slot.technician_id, slot.start, slot.end
    row.reminded_at = None
    if row.status == "due":
        row.status = "scheduled"
    s.flush()
    claim_slots(s, row)
    return True
