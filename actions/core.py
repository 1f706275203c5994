"""The state and the shared steps every part of ``ActionService`` uses (one base for the mixins).

``ServiceCore`` holds the session factory, the clock and the configuration the constructor of
``ActionService`` sets, and the steps several mixins share: retrying a transaction that lost a
unique-key race, placing a visit, telling a household about it, opening a case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ingest.clock import Clock
from ingest.db import DeviceRow
from predictors.types import Prediction

from .context import feature_snapshot
from .db import BookingRow, CaseRow, NotificationRow, TechnicianRow
from .delivery import DeliveryConfig, Urgency
from .errors import NotFound
from .notify import NewNotification, create_notification
from .policy import PolicyConfig
from .scheduling import BookingRequest, place_booking, skill_for
from .webhook import RetryConfig

__all__ = ["ServiceCore", "case_json", "get_row", "label", "ttf_values"]

_T = TypeVar("_T")


class ServiceCore:
    """Attributes and shared steps of ``ActionService`` (set by its constructor)."""

    _sessions: sessionmaker[Session]
    _clock: Clock
    _config: PolicyConfig
    _delivery: DeliveryConfig
    _retry: RetryConfig
    _booking_duration: timedelta
    _booking_lead: timedelta
    _booking_window: timedelta
    _reminder_lead: timedelta
    _overdue_grace: timedelta
    _readings_in_context: int
    _recent_kept: int

    def _retrying(self, work: Callable[[Session], _T]) -> _T:
        try:
            with self._sessions.begin() as s:
                return work(s)
        except IntegrityError:
            # A concurrent writer won a unique index race; the retry sees its rows.
            with self._sessions.begin() as s:
                return work(s)

    def _book(self, s: Session, *, device: DeviceRow | None, kind: str, mode: str,
              deadline: datetime | None, reason: str, case_id: int | None, now: datetime,
              start: datetime | None = None) -> BookingRow | None:
        """Place a visit for the device before ``deadline`` (capped by the booking window)."""
        if device is None or not device.service_area:
            return None
        limit = now + self._booking_window
        request = BookingRequest(
            device_id=device.device_id, household_id=device.household_id, mode=mode,
            skill=skill_for(kind, mode), service_area=device.service_area,
            earliest=now + self._booking_lead, deadline=min(deadline, limit) if deadline else limit,
            duration=self._booking_duration, reason=reason, case_id=case_id)
        return place_booking(s, request, now=now, start=start)

    def _notify_visit(self, s: Session, booking: BookingRow, *, kind: str, template: str,
                      case_id: int | None, now: datetime, why: str = "",
                      noticed: str | None = None, act_by: datetime | None = None) -> NotificationRow | None:
        """Tell the household about its visit (booked, reminder, moved, cancelled).

        Quiet hours hold the notice at most until shortly before the visit (``act_by``, default
        its start): a notice about a visit is useless once the technician is at the door.
        """
        if booking.household_id is None:
            return None
        tech = s.get(TechnicianRow, booking.technician_id)
        values: dict[str, Any] = {"technician": tech.name if tech else "A technician",
                                  "start": booking.start_at, "end": booking.end_at, "why": why}
        if noticed is not None:
            values["noticed"] = noticed
        row, _ = create_notification(s, NewNotification(
            household_id=booking.household_id, device_id=booking.device_id, kind=kind, mode=booking.mode,
            template=template, urgency=Urgency.INFO, case_id=case_id, booking_id=booking.id,
            values=values, act_by=act_by or booking.start_at), config=self._delivery, now=now)
        return row

    @staticmethod
    def _new_case(s: Session, *, device_id: str, kind: str, mode: str, action: str, priority: str,
                  reason: str, due_by: datetime | None, now: datetime) -> CaseRow:
        """Open a case (flushed), with the device's feature vector of now."""
        case = CaseRow(device_id=device_id, kind=kind, mode=mode, status="open", action=action,
                       priority=priority, reason=reason, due_by=due_by, opened_at=now,
                       features=feature_snapshot(s, device_id))
        s.add(case)
        s.flush()
        return case


def get_row(s: Session, model: type[_T], key: object, what: str) -> _T:
    """The row with primary key ``key``; NotFound names ``what`` otherwise."""
    row = s.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key}")
    return row


def ttf_values(prediction: Prediction) -> dict[str, Any]:
    """The remaining-time figures a prediction template shows, in whole hours."""
    return {"ttf_h": f"{prediction.ttf_h:.0f}", "ttf_low_h": f"{prediction.ttf_low_h:.0f}",
            "ttf_high_h": f"{prediction.ttf_high_h:.0f}"}


def label(name: str) -> str:
    """``no_slot`` → ``No slot``."""
    return name.replace("_", " ").capitalize()


def case_json(case: CaseRow) -> dict[str, Any]:
    """A case as ticket context (JSON-ready)."""
    return {"case_id": case.id, "mode": case.mode, "device_id": case.device_id,
            "action": case.action, "priority": case.priority, "reason": case.reason,
            "opened_at": case.opened_at.isoformat()}
