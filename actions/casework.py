"""Tickets for people: opened on request, resolved with an action, escalated when their SLA breaks.

A mixin of ``ActionService``. Tickets made by automation (bad data, lasting uncertainty, no free
slot, safety, device errors, overdue visits) are opened where the decision is taken; this is
what people and the escalation job do with them. ``resolve_ticket`` is the only way a ticket
closes, and only a person calls it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ingest.db import DeviceRow

from .context import device_info, readings_summary
from .core import ServiceCore, case_json, get_row
from .db import CaseRow, DecisionLogRow, TicketRow
from .delivery import Urgency
from .errors import InvalidState, NoSlot, NotFound
from .notify import NewNotification, create_notification
from .policy import DecisionAction
from .records import Ticket
from .scheduling import visit_mode
from .tickets import RESOLUTION_ACTIONS, close_ticket_case, escalate_breached, open_ticket, record_label

__all__ = ["CaseworkMixin"]


class CaseworkMixin(ServiceCore):
    """Tickets on request, their resolution, and SLA escalation."""

    def open_ticket_on_request(self, *, message: str, device_id: str | None = None,
                               household_id: str | None = None) -> Ticket:
        """"Talk to a person": always opens a ticket, whatever cases or cooldowns exist.

        The ticket is ``human_only`` (no automation answers or closes it), high priority, and
        carries the household's devices, their readings, open cases and recent decisions.
        """
        if device_id is None and household_id is None:
            raise ValueError("name a device_id or a household_id")
        now = self._clock.now()
        with self._sessions.begin() as s:
            device = s.get(DeviceRow, device_id) if device_id else None
            if device_id is not None and device is None:
                raise NotFound(f"device {device_id}")
            if device is not None and household_id is not None and device.household_id != household_id:
                raise NotFound(f"device {device_id}")
            household = household_id or (device.household_id if device else None)
            devices = ([device] if device else list(s.scalars(
                select(DeviceRow).where(DeviceRow.household_id == household))))
            if not devices:
                raise NotFound(f"household {household_id}")
            ids = [d.device_id for d in devices]
            context: dict[str, Any] = {
                "message": message[:2000],
                "reason": "the homeowner asked to talk to a person",
                "devices": [device_info(d, d.device_id) for d in devices],
                "readings": {d.device_id: readings_summary(s, d.device_id, last_n=self._readings_in_context)
                             for d in devices},
                "open_cases": [case_json(c) for c in s.scalars(
                    select(CaseRow).where(CaseRow.device_id.in_(ids), CaseRow.status == "open"))],
                "recent_decisions": [
                    {"device_id": d.device_id, "mode": d.mode, "action": d.action,
                     "reason": d.reason, "outcome": d.outcome, "decided_at": d.decided_at.isoformat()}
                    for d in s.scalars(select(DecisionLogRow).where(DecisionLogRow.device_id.in_(ids))
                                       .order_by(DecisionLogRow.decided_at.desc()).limit(5))],
            }
            row = open_ticket(s, category="customer_request", priority="high", device_id=device_id,
                              household_id=household, kind=device.kind if device else None,
                              subject=f"Customer request: {message[:80]}", now=now, context=context,
                              human_only=True)
            return Ticket._from_row(row)

    def resolve_ticket(self, ticket_id: int, resolution: str, *, action: str = "dismiss",
                       outcome: str | None = None, message: str | None = None,
                       actor: str | None = None) -> Ticket:
        """Resolve an open ticket by a person, choosing what happens next, and record a label.

        ``actor`` is the user id of that person (the API and the pages always pass it); it is
        kept as ``resolved_by`` and in ``context["resolved"]["by"]``.

        ``action``: ``notify`` (the household gets ``message`` or the resolution as a message from
        the service team), ``book`` (a technician visit before the case's deadline; NoSlot leaves
        the ticket open), ``dismiss``. ``outcome`` defaults to ``confirmed_fault`` for notify/book
        and ``no_fault_found`` for dismiss. A ticket case closes unless it turned into a visit.
        """
        if action not in RESOLUTION_ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {sorted(RESOLUTION_ACTIONS)}")
        if not resolution.strip():
            raise ValueError("a resolution says what was found or done")
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = get_row(s, TicketRow, ticket_id, "ticket")
            if row.status != "open":
                raise InvalidState(f"ticket {ticket_id} is {row.status}")
            device = s.get(DeviceRow, row.device_id) if row.device_id else None
            case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
            kind = row.kind or (device.kind if device else None)
            if action == "notify":
                if row.household_id is None:
                    raise InvalidState(f"ticket {ticket_id} has no household to notify")
                note, _ = create_notification(s, NewNotification(
                    household_id=row.household_id, device_id=row.device_id or "", kind=kind or "",
                    mode=row.mode or "", template="agent_message", urgency=Urgency.INFO,
                    case_id=row.case_id, code=row.code, ticket_id=row.id,
                    values={"message": (message or resolution)[:4000]}), config=self._delivery, now=now)
                context_extra: dict[str, Any] = {"notification_id": note.id if note else None}
            elif action == "book":
                if device is None:
                    raise InvalidState(f"ticket {ticket_id} names no device to visit")
                mode = row.mode if row.mode and row.mode != "visit" else None
                booking = self._book(s, device=device, kind=device.kind, mode=mode or visit_mode(device.kind),
                                     deadline=case.due_by if case else None,
                                     reason=f"ticket {ticket_id}: {resolution}"[:2000], case_id=row.case_id,
                                     now=now)
                if booking is None:
                    raise NoSlot(f"no technician can visit {device.device_id}; ticket {ticket_id} stays open")
                self._notify_visit(s, booking, kind=device.kind, template="booking_booked",
                                   case_id=row.case_id, now=now)
                if case is not None and case.status == "open":
                    case.action = DecisionAction.BOOK_TECHNICIAN.value
                context_extra = {"booking_id": booking.id}
            else:
                context_extra = {}
            row.status, row.resolved_at, row.resolution = "resolved", now, resolution[:4000]
            row.resolution_action, row.resolved_by = action, actor
            row.context = {**row.context, "resolved": {"action": action, "by": actor, "at": now.isoformat(),
                                                        **context_extra}}
            if device is not None and kind:
                label = record_label(s, device_id=device.device_id, kind=kind,
                                     mode=row.mode or (f"error:{row.code}" if row.code else row.category),
                                     source="agent", outcome=outcome or RESOLUTION_ACTIONS[action],
                                     note=resolution[:2000], now=now, case_id=row.case_id, ticket_id=row.id,
                                     features=row.features)
                row.context = {**row.context, "label_id": label.id}
            close_ticket_case(s, row, now=now, why=f"ticket {ticket_id} resolved ({action}): {resolution[:200]}")
            return Ticket._from_row(row)

    def escalate_tickets(self) -> list[Ticket]:
        """Escalate the open tickets whose SLA deadline has passed; returns them."""
        with self._sessions.begin() as s:
            return [Ticket._from_row(r) for r in escalate_breached(s, now=self._clock.now())]

    def tickets(self, *, status: str | None = "open", household_id: str | None = None,
                limit: int = 500) -> list[Ticket]:
        """Tickets, most pressing first (then oldest), filtered by status and household."""
        with self._sessions() as s:
            query = select(TicketRow)
            if status is not None:
                query = query.where(TicketRow.status == status)
            if household_id is not None:
                query = query.where(TicketRow.household_id == household_id)
            return [Ticket._from_row(r) for r in s.scalars(
                query.order_by(TicketRow.priority_rank, TicketRow.created_at, TicketRow.id).limit(limit))]

