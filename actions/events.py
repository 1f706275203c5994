"""Faults appliances report themselves: device error events → the same three actions. No prediction needed.

A mixin of ``ActionService``. ``process_device_events`` takes the ``device_events`` ingest stored
that have not been acted on (``event_actions`` holds one row per handled event, its primary key
the event id), looks each code up in ``error_codes.ERROR_CODES`` for the device's kind and model,
and acts, one transaction per event:

* **safety** (e.g. overheating): a safety notification at once, quiet hours or not, and an
  urgent ticket;
* **visit needed**: a technician booking (a ``no_slot`` ticket when nobody can come) and an alert
  saying so;
* otherwise: an alert with the homeowner fix.
* an **unknown code**: a ticket for a person (``unknown_error_code``).

Cases are keyed by (device, ``ErrorCode.case_mode``) — the failure mode the code confirms, or
``error:<code>`` — so a code repeating while its case is open (a flapping fault) adds a line to
the case and nothing else, and a code that confirms a predicted failure joins that case. A code
that comes back within the policy cooldown after its case closed (the fix did not hold) goes
to a person (``recurring_error``). Tickets arrive categorised: kind, mode or code, priority, household.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ingest.db import DeviceEventRow, DeviceRow

from .context import device_info, readings_summary, similar_cases
from .core import ServiceCore
from .db import CaseRow, EventActionRow, NotificationRow
from .delivery import Urgency
from .error_codes import ErrorCode, lookup
from .notify import NewNotification, create_notification
from .policy import DecisionAction
from .tickets import open_ticket

__all__ = ["EventOutcome", "EventsMixin"]

#: How soon a homeowner should carry out a code's fix, by severity.
_FIX_WITHIN = {"low": timedelta(hours=72), "medium": timedelta(hours=24), "high": timedelta(hours=24)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventOutcome:
    """What handling one device error event did."""

    event_id: int
    device_id: str
    code: str | None
    action: str  # notify_homeowner / book_technician / open_ticket / covered / none
    outcome: str
    case_id: int | None = None
    notification_id: int | None = None
    booking_id: int | None = None
    ticket_id: int | None = None


class EventsMixin(ServiceCore):
    """Device error events mapped through the error-code table."""

    def process_device_events(self, *, limit: int = 500) -> list[EventOutcome]:
        """Act on device error events not handled yet (oldest first); returns what each did."""
        with self._sessions() as s:
            ids = list(s.scalars(
                select(DeviceEventRow.id)
                .outerjoin(EventActionRow, EventActionRow.event_id == DeviceEventRow.id)
                .where(EventActionRow.event_id.is_(None), DeviceEventRow.event == "error")
                .order_by(DeviceEventRow.id).limit(limit)))
        out = []
        for event_id in ids:
            result = self._retrying(lambda s, e=event_id: self._handle_event(s, e))
            if result is not None:
                out.append(result)
        return out

    def _handle_event(self, s: Any, event_id: int) -> EventOutcome | None:
        now = self._clock.now()
        if s.get(EventActionRow, event_id) is not None:
            return None  # handled by a concurrent run
        event = s.get(DeviceEventRow, event_id)
        # Write first (takes SQLite's write lock before anything is read; see service.py).
        mark = EventActionRow(event_id=event_id, device_id=event.device_id, code=event.code,
                              action="none", outcome="", handled_at=now)
        s.add(mark)
        s.flush()
        device = s.get(DeviceRow, event.device_id)
        code = event.code or "?"
        entry = lookup(kind=device.kind, model=device.model, code=code) if device is not None else None
        result = self._act_on_code(s, event=event, device=device, code=code, entry=entry, now=now)
        mark.action, mark.outcome = result.action, result.outcome[:2000]
        return result

    def _act_on_code(self, s: Any, *, event: DeviceEventRow, device: DeviceRow | None, code: str,
                     entry: ErrorCode | None, now: datetime) -> EventOutcome:
        base = {"event_id": event.id, "device_id": event.device_id, "code": event.code}
        kind = device.kind if device is not None else "unknown"
        mode = entry.case_mode if entry is not None else f"error:{code}"
        open_case = s.scalar(select(CaseRow).where(CaseRow.device_id == event.device_id, CaseRow.mode == mode,
                                                   CaseRow.status == "open"))
        seen = f"device reported {code} at {event.ts:%Y-%m-%d %H:%M}Z"
        if open_case is not None:
            open_case.reason = f"{open_case.reason}\n{seen}"
            return EventOutcome(**base, action="covered", case_id=open_case.id,
                                outcome=f"case {open_case.id} already open for {mode}")
        last_closed = s.scalar(select(func.max(CaseRow.closed_at)).where(
            CaseRow.device_id == event.device_id, CaseRow.mode == mode, CaseRow.status == "closed"))
        recurring = last_closed is not None and now - last_closed < self._config.cooldown
        meaning = entry.meaning["en"] if entry is not None else f"unknown error code {code}"
        household = device.household_id if device is not None else None

        # A safety code always takes the safety path below (told at once), recurring or not.
        if (entry is None or device is None or (recurring and not entry.safety)
                or (household is None and not entry.visit_needed and not entry.safety)):
            category = ("unknown_device" if device is None else "unknown_error_code" if entry is None
                        else "recurring_error" if recurring else "no_household")
            # Unknown: a person looks when they can; a known fault that did not stay fixed: soon.
            priority = "normal" if entry is None else "high"
            case = self._new_case(s, device_id=event.device_id, kind=kind, mode=mode,
                                  action=DecisionAction.OPEN_TICKET.value, priority=priority,
                                  reason=f"{seen}: {meaning}", due_by=None, now=now)
            ticket = self._code_ticket(s, event=event, device=device, entry=entry, case=case, mode=mode,
                                       category=category, priority=priority, now=now,
                                       reason=f"{seen}: {meaning}" + (
                                           f"; it came back within the cooldown after case closed at "
                                           f"{last_closed:%Y-%m-%d %H:%M}Z" if recurring else ""))
            return EventOutcome(**base, action=DecisionAction.OPEN_TICKET.value, case_id=case.id,
                                ticket_id=ticket.id, outcome=f"ticket:{ticket.id} ({category})")

        action = DecisionAction.OPEN_TICKET if entry.safety else (
            DecisionAction.BOOK_TECHNICIAN if entry.visit_needed else DecisionAction.NOTIFY_HOMEOWNER)
        due_by = None if entry.safety or entry.visit_needed else now + _FIX_WITHIN[entry.severity]
        case = self._new_case(s, device_id=event.device_id, kind=kind, mode=mode, action=action.value,
                              priority=entry.priority, reason=f"{seen}: {meaning}", due_by=due_by, now=now)
        note: NotificationRow | None = None
        booking = ticket = None
        if entry.safety:
            ticket = self._code_ticket(s, event=event, device=device, entry=entry, case=case, mode=mode,
                                       category="safety", priority="urgent", now=now,
                                       reason=f"safety: {seen}: {meaning}")
            note = self._code_note(s, entry=entry, device=device, mode=mode, template="safety",
                                   urgency=Urgency.SAFETY, case=case, ticket_id=ticket.id, now=now) if household else None
            outcome = f"ticket:{ticket.id} (safety)" + (f", notification:{note.id}" if note else "")
        elif entry.visit_needed:
            booking = self._book(s, device=device, kind=kind, mode=mode, deadline=None,
                                 reason=f"{seen}: {meaning}", case_id=case.id, now=now)
            if booking is None:
                ticket = self._code_ticket(s, event=event, device=device, entry=entry, case=case, mode=mode,
                                           category="no_slot", priority=entry.priority, now=now,
                                           reason=f"{seen}: {meaning}; no technician has a free slot")
                outcome = f"ticket:{ticket.id} (no_slot)"
            else:
                case.due_by = booking.end_at
                note = self._code_note(s, entry=entry, device=device, mode=mode, template="error_visit",
                                       urgency=Urgency.ALERT, case=case, now=now, due_by=booking.end_at,
                                       booking_id=booking.id) if household else None
                outcome = f"booking:{booking.id}"
        else:
            note = self._code_note(s, entry=entry, device=device, mode=mode, template="error_fix",
                                   urgency=Urgency.ALERT, case=case, now=now, due_by=due_by)
            outcome = f"notification:{note.id}" if note else "notification suppressed (cooldown)"
        return EventOutcome(**base, action=action.value, case_id=case.id, outcome=outcome,
                            notification_id=note.id if note else None,
                            booking_id=booking.id if booking else None, ticket_id=ticket.id if ticket else None)

    def _code_note(self, s: Any, *, entry: ErrorCode, device: DeviceRow, mode: str, template: str,
                   urgency: Urgency, case: CaseRow, now: datetime, due_by: datetime | None = None,
                   booking_id: int | None = None, ticket_id: int | None = None) -> NotificationRow | None:
        assert device.household_id is not None
        row, _ = create_notification(s, NewNotification(
            household_id=device.household_id, device_id=device.device_id, kind=device.kind, mode=mode,
            template=template, urgency=urgency, case_id=case.id, due_by=due_by, code=entry.code,
            booking_id=booking_id, ticket_id=ticket_id,
            # Texts per language: create_notification picks the household's.
            values={"code": entry.code, "meaning": dict(entry.meaning), "todo": dict(entry.homeowner_fix),
                    "noticed": dict(entry.meaning)}), config=self._delivery, now=now)
        return row

    def _code_ticket(self, s: Any, *, event: DeviceEventRow, device: DeviceRow | None, entry: ErrorCode | None,
                     case: CaseRow, mode: str, category: str, priority: str, now: datetime, reason: str) -> Any:
        kind = device.kind if device is not None else None
        context = {
            "reason": reason,
            "event": {"event_id": event.id, "code": event.code, "ts": event.ts.isoformat(), "seq": event.seq},
            "error_code": None if entry is None else {
                "code": entry.code, "model": entry.model, "meaning": dict(entry.meaning),
                "severity": entry.severity, "homeowner_fix": dict(entry.homeowner_fix),
                "visit_needed": entry.visit_needed, "safety": entry.safety, "failure_mode": entry.failure_mode},
            "device": device_info(device, event.device_id),
            "readings": readings_summary(s, event.device_id, last_n=self._readings_in_context),
            "features": case.features,
            "similar_cases": similar_cases(s, kind=kind, mode=mode, features=case.features) if kind else [],
        }
        return open_ticket(
            s, category=category, priority=priority, device_id=event.device_id,
            household_id=device.household_id if device is not None else None, kind=kind, mode=mode,
            code=event.code, case_id=case.id, features=case.features, now=now, context=context,
            subject=f"{category.replace('_', ' ').capitalize()}: {kind or 'device'} {event.device_id} "
                    f"reported {event.code or 'an error'}")

