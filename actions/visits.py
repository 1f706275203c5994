"""Technician visits for people: book, reschedule, cancel, complete; reminders and overdue visits.

A mixin of ``ActionService``. Placement rules and the database guarantee against double booking
are in ``scheduling``. Completion records the outcome and the parts used as a ``labels`` row
the models can learn from. Reminders and overdue handling are what the scheduler jobs run;
both are idempotent (a reminded booking has ``reminded_at``; an overdue one leaves the active
statuses), so a job that runs twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ingest.db import DeviceRow

from .context import device_info, readings_summary
from .core import ServiceCore, get_row
from .db import BookingRow, CaseRow, DecisionLogRow, LabelRow
from .errors import InvalidState, NoSlot, NotFound, SlotTaken
from .records import Booking, Label
from .scheduling import ACTIVE_BOOKING, BookingRequest, move_booking, release_slots, skill_for, visit_mode
from .tickets import open_ticket, record_label

__all__ = ["BOOKING_OUTCOMES", "CANCELLED_BY", "OPEN_VISIT", "TechnicianJob", "VisitsMixin"]

#: Who may cancel a visit.
CANCELLED_BY: tuple[str, ...] = ("homeowner", "technician", "operator")

#: Visits a technician is still working on: coming up, under way, or ended without an outcome
#: (``overdue``: the outcome can still be written). Only these give the technician access to the
#: device; a cancelled or completed visit gives none.
OPEN_VISIT: tuple[str, ...] = (*ACTIVE_BOOKING, "overdue")

#: What a technician can record on completing a visit.
BOOKING_OUTCOMES: tuple[str, ...] = ("confirmed_fault", "no_fault_found", "part_replaced")


@dataclass(frozen=True, slots=True, kw_only=True)
class TechnicianJob:
    """One visit as the technician sees it: the booking, the device, and the diagnosis so far."""

    booking: Booking
    device: dict[str, Any]
    diagnosis: str
    prediction: dict[str, Any] | None
    readings: dict[str, Any]


class VisitsMixin(ServiceCore):
    """Booking, rescheduling, cancelling and completing visits; reminders; overdue visits."""

    def book_technician(self, *, device_id: str, mode: str | None = None,
                        start: datetime | None = None, reason: str = "") -> Booking:
        """Book a visit for a device (earliest fitting slot, or exactly ``start``).

        ``mode`` defaults to the device kind's book-a-technician failure mode. NoSlot when nobody
        can come (a ``failed_booking`` ticket is opened and named in the error); SlotTaken when
        ``start`` is not free, including when a concurrent request took it first.
        """
        now = self._clock.now()

        def work(s: Any) -> BookingRow | int:
            device = s.get(DeviceRow, device_id)
            if device is None:
                raise NotFound(f"device {device_id}")
            what = mode or visit_mode(device.kind)
            booking = self._book(s, device=device, kind=device.kind, mode=what, deadline=None,
                                 reason=reason or f"visit requested for {what.replace('_', ' ')}",
                                 case_id=None, now=now, start=start)
            if booking is not None:
                self._notify_visit(s, booking, kind=device.kind, template="booking_booked", case_id=None, now=now)
                return booking
            if start is not None:
                raise SlotTaken(f"{start.isoformat()} is not free for a visit to {device_id}")
            return open_ticket(
                s, category="failed_booking", priority="high", device_id=device_id,
                household_id=device.household_id, kind=device.kind, mode=what,
                subject=f"Failed booking: no technician for {device.kind} {device_id}", now=now,
                context={"reason": "no qualified technician has a free slot in the booking window",
                         "device": device_info(device, device_id),
                         "readings": readings_summary(s, device_id, last_n=self._readings_in_context)}).id

        try:
            with self._sessions.begin() as s:
                result = work(s)
                if isinstance(result, BookingRow):
                    return Booking._from_row(result)
                ticket_id = result
        except IntegrityError:
            if start is not None:
                raise SlotTaken(f"{start.isoformat()} was just taken by another booking") from None
            with self._sessions.begin() as s:  # the retry sees the winner's slots
                result = work(s)
                if isinstance(result, BookingRow):
                    return Booking._from_row(result)
                ticket_id = result
        raise NoSlot(f"no technician can visit {device_id}", ticket_id=ticket_id)

    def reschedule_booking(self, booking_id: int, *, start: datetime | None = None) -> Booking:
        """Move a visit to ``start``, or to the earliest fitting slot after its current end.

        The visit keeps its id; the household is told. SlotTaken when ``start`` is not free,
        NoSlot when there is no later slot.
        """
        now = self._clock.now()
        try:
            with self._sessions.begin() as s:
                row = _lock_booking(s, booking_id, ACTIVE_BOOKING)
                device = s.get(DeviceRow, row.device_id)
                kind = device.kind if device else ""
                request = BookingRequest(
                    device_id=row.device_id, household_id=row.household_id, mode=row.mode,
                    skill=skill_for(kind, row.mode),
                    service_area=(device.service_area if device else None) or "",
                    earliest=max(now + self._booking_lead, row.end_at),
                    deadline=now + self._booking_window, duration=row.end_at - row.start_at,
                    reason=row.reason or "", case_id=row.case_id)
                if start is not None and (start < now + self._booking_lead
                                          or start + request.duration > request.deadline):
                    raise ValueError(f"a visit can move to between {now + self._booking_lead:%Y-%m-%d %H:%M} "
                                     f"and {request.deadline - request.duration:%Y-%m-%d %H:%M} UTC")
                was_at = row.start_at
                if not move_booking(s, row, request, start=start):
                    if start is not None:
                        raise SlotTaken(f"{start.isoformat()} is not free for booking {booking_id}")
                    raise NoSlot(f"no later slot for booking {booking_id}")
                # The household expects the technician at the old time: say so before then.
                self._notify_visit(s, row, kind=kind, template="booking_rescheduled", case_id=row.case_id, now=now,
                                   act_by=min(was_at, row.start_at))
                return Booking._from_row(row)
        except IntegrityError:
            raise SlotTaken(f"the slot for booking {booking_id} was just taken by another booking") from None

    def cancel_booking(self, booking_id: int, *, reason: str, by: str = "homeowner",
                       actor: str | None = None) -> Booking:
        """Cancel a visit and free its hours; ``by`` is the role, ``actor`` the user id (kept as ``cancelled_by``).

        Cancelled by anyone but the homeowner, the household is told. If the visit's case is
        still open, a person follows up (a ``booking_cancelled`` ticket): the fault has not gone away.
        """
        if not reason.strip():
            raise ValueError("say why the visit is cancelled")
        if by not in CANCELLED_BY:
            raise ValueError(f"by must be one of {list(CANCELLED_BY)}, got {by!r}")
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = _lock_booking(s, booking_id, ACTIVE_BOOKING)
            row.status, row.cancelled_at, row.cancel_reason = "cancelled", now, f"{by}: {reason}"[:2000]
            row.cancelled_by = actor
            release_slots(s, row.id)
            device = s.get(DeviceRow, row.device_id)
            kind = device.kind if device else ""
            if by != "homeowner":
                self._notify_visit(s, row, kind=kind, template="booking_cancelled", case_id=row.case_id,
                                   now=now, why=reason[:200])
            case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
            if case is not None and case.status == "open":
                open_ticket(s, category="booking_cancelled", priority="normal", device_id=row.device_id,
                            household_id=row.household_id, kind=kind, mode=row.mode, case_id=case.id,
                            features=case.features, now=now,
                            subject=f"Booking cancelled ({by}): {kind} {row.device_id} ({row.mode})",
                            context={"reason": f"visit {booking_id} cancelled by {by}: {reason}",
                                     "device": device_info(device, row.device_id), "case_reason": case.reason})
            return Booking._from_row(row)

    def complete_booking(self, booking_id: int, diagnosis: str, *, outcome: str = "confirmed_fault",
                         parts: tuple[str, ...] | list[str] = (), actor: str | None = None) -> Booking:
        """Record the technician's visit: what was found (``outcome``) and the parts used, as a label.

        ``actor``: the user id of who recorded it (kept as ``completed_by``).

        The case stays open: the features still hold pre-repair readings for a while, and
        closing now would re-alert on them. ``close_recovered_cases`` closes it once the
        predictions show the device recovered. An error-code case closes now (nothing to recover).
        """
        if outcome not in BOOKING_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; known: {sorted(BOOKING_OUTCOMES)}")
        clean_parts = tuple(p.strip()[:100] for p in parts if p.strip())
        if len(clean_parts) > 50:
            raise ValueError("at most 50 parts")
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = _lock_booking(s, booking_id, OPEN_VISIT)
            row.status, row.diagnosis, row.completed_at = "completed", diagnosis, now
            row.outcome, row.parts, row.completed_by = outcome, list(clean_parts), actor
            # The slot finder treats a finished visit's hours as free again; so must the claims.
            release_slots(s, row.id)
            device = s.get(DeviceRow, row.device_id)
            case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
            record_label(s, device_id=row.device_id, kind=device.kind if device else (case.kind if case else ""),
                         mode=row.mode, source="technician", outcome=outcome, parts=clean_parts,
                         note=diagnosis[:2000], now=now, case_id=row.case_id, booking_id=row.id)
            if case is not None and case.status == "open" and (row.mode.startswith("error:")
                                                                or outcome == "no_fault_found"):
                case.status, case.closed_at = "closed", now
                case.close_reason = f"visit {booking_id}: {outcome.replace('_', ' ')}"
            return Booking._from_row(row)

    # -- jobs ---------------------------------------------------------------------------------

    def send_booking_reminders(self) -> int:
        """Remind households of visits starting within ``reminder_lead``; returns how many."""
        now = self._clock.now()
        with self._sessions.begin() as s:
            rows = list(s.scalars(select(BookingRow).where(
                BookingRow.status == "scheduled", BookingRow.reminded_at.is_(None),
                BookingRow.start_at > now, BookingRow.start_at <= now + self._reminder_lead)))
            sent = 0
            for row in rows:
                # Conditional: an overlapping run cannot remind twice.
                if not _claimed(s, update(BookingRow).where(BookingRow.id == row.id,
                                                            BookingRow.reminded_at.is_(None))
                                .values(reminded_at=now)):
                    continue
                device = s.get(DeviceRow, row.device_id)
                self._notify_visit(s, row, kind=device.kind if device else "", template="booking_reminder",
                                   case_id=row.case_id, now=now)
                sent += 1
            return sent

    def mark_overdue_bookings(self) -> int:
        """Visits that ended ``overdue_grace`` ago without completion become overdue, each with a ticket."""
        now = self._clock.now()
        with self._sessions.begin() as s:
            rows = list(s.scalars(select(BookingRow).where(
                BookingRow.status.in_(ACTIVE_BOOKING), BookingRow.end_at <= now - self._overdue_grace)))
            marked = 0
            for row in rows:
                if not _claimed(s, update(BookingRow).where(BookingRow.id == row.id,
                                                            BookingRow.status.in_(ACTIVE_BOOKING))
                                .values(status="overdue", overdue_at=now)):
                    continue
                marked += 1
                device = s.get(DeviceRow, row.device_id)
                open_ticket(s, category="overdue_booking", priority="high", device_id=row.device_id,
                            household_id=row.household_id, kind=device.kind if device else None, mode=row.mode,
                            case_id=None, now=now,
                            subject=f"Visit {row.id} not completed: {row.technician_id} at {row.device_id}",
                            context={"reason": f"the visit ended at {row.end_at.isoformat()} and nobody "
                                               "recorded its outcome",
                                     "booking": {"booking_id": row.id, "technician_id": row.technician_id,
                                                 "start": row.start_at.isoformat(), "end": row.end_at.isoformat()},
                                     "device": device_info(device, row.device_id)})
            return marked

    # -- queries ------------------------------------------------------------------------------

    def technician_jobs(self, technician_id: str, *, day: date | None = None) -> list[TechnicianJob]:
        """A technician's active and overdue visits (of one UTC day, if given) with their diagnosis."""
        with self._sessions() as s:
            query = select(BookingRow).where(BookingRow.technician_id == technician_id,
                                             BookingRow.status.in_(OPEN_VISIT))
            if day is not None:
                start = datetime(day.year, day.month, day.day, tzinfo=self._clock.now().tzinfo)
                query = query.where(BookingRow.start_at >= start, BookingRow.start_at < start + timedelta(days=1))
            jobs = []
            for row in s.scalars(query.order_by(BookingRow.start_at, BookingRow.id)):
                decision = s.scalar(select(DecisionLogRow).where(DecisionLogRow.case_id == row.case_id)
                                    .order_by(DecisionLogRow.decided_at.desc()).limit(1)) if row.case_id else None
                jobs.append(TechnicianJob(
                    booking=Booking._from_row(row),
                    device=device_info(s.get(DeviceRow, row.device_id), row.device_id),
                    diagnosis=row.reason or "",
                    prediction=None if decision is None else {
                        "p_fail": decision.p_fail, "ttf_low_h": decision.ttf_low_h,
                        "ttf_high_h": decision.ttf_high_h, "model_version": decision.model_version,
                        "reason": decision.reason},
                    readings=readings_summary(s, row.device_id, last_n=self._readings_in_context)))
            return jobs

    def technician_devices(self, technician_id: str) -> frozenset[str]:
        """The devices a technician may read: those of their open visits (``OPEN_VISIT``)."""
        with self._sessions() as s:
            return frozenset(s.scalars(select(BookingRow.device_id).where(
                BookingRow.technician_id == technician_id, BookingRow.status.in_(OPEN_VISIT))))

    def labels(self, *, device_id: str | None = None, limit: int = 1000) -> list[Label]:
        """Recorded outcomes (newest first), optionally of one device."""
        with self._sessions() as s:
            query = select(LabelRow)
            if device_id is not None:
                query = query.where(LabelRow.device_id == device_id)
            return [Label._from_row(r) for r in s.scalars(query.order_by(LabelRow.ts.desc(), LabelRow.id.desc())
                                                           .limit(limit))]


def _claimed(s: Any, statement: Any) -> bool:
    return int(s.execute(statement).rowcount) == 1


def _lock_booking(s: Session, booking_id: int, statuses: tuple[str, ...]) -> BookingRow:
    """The booking, write-locked first, when its status is one of ``statuses``.

    A conditional UPDATE is the first statement: it takes SQLite's write lock / PostgreSQL's row
    lock and re-reads the row after a concurrent change committed, so a cancel racing a
    reschedule (or a completion) cannot both pass the status check.
    """
    done = s.execute(update(BookingRow).where(BookingRow.id == booking_id, BookingRow.status.in_(statuses))
                     .values(status=BookingRow.status))
    row = get_row(s, BookingRow, booking_id, "booking")
    if done.rowcount == 0:
        raise InvalidState(f"booking {booking_id} is {row.status}")
    return row
