"""Tickets for people: SLA timers, escalation, resolution with an action, and labels.

``open_ticket`` (inside the caller's transaction) stamps the SLA deadline from ``SLA`` and the
device's feature vector, so similar-case search and labels can use it later. ``TicketsMixin``
gives ``ActionService`` the ticket operations people and jobs use.

Escalation: an open ticket past its ``due_at`` moves up one priority, gets a new deadline for that
priority and a line in ``context["escalations"]``; ``escalation_level`` counts the breaches. An
urgent ticket that breaches is escalated once more (to whoever watches breached urgent tickets) and
keeps its deadline, so the queue shows how long it has been overdue; it is not escalated again on
every sweep (a demo ran tickets up to level 54 that way, which told the agent nothing). Nothing here ever resolves a ticket: only a person does (``resolve_ticket``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .db import CaseRow, LabelRow, TicketRow
from .policy import PRIORITIES, DecisionAction

__all__ = ["LABEL_OUTCOMES", "RESOLUTION_ACTIONS", "SLA", "close_ticket_case", "escalate_breached", "open_ticket", "record_label"]

#: How long a ticket of each priority may stay open before it is escalated.
SLA: Mapping[str, timedelta] = {
    "urgent": timedelta(hours=1),
    "high": timedelta(hours=4),
    "normal": timedelta(hours=24),
    "low": timedelta(hours=72),
}

#: What a person's resolution does, and the label outcome it records unless told otherwise.
RESOLUTION_ACTIONS: Mapping[str, str] = {
    "notify": "confirmed_fault",
    "book": "confirmed_fault",
    "dismiss": "no_fault_found",
}

#: Every outcome a label can record (a person resolving a ticket may pick any).
LABEL_OUTCOMES: tuple[str, ...] = ("confirmed_fault", "no_fault_found", "part_replaced",
                                   "fixed_by_homeowner", "false_alarm")


def open_ticket(s: Session, *, category: str, priority: str, subject: str, context: dict[str, Any],
                now: datetime, device_id: str | None = None, household_id: str | None = None,
                kind: str | None = None, mode: str | None = None, code: str | None = None,
                case_id: int | None = None, features: dict[str, float] | None = None,
                human_only: bool = False, notification_id: int | None = None) -> TicketRow:
    """Insert an open ticket with its SLA deadline; returns the flushed row."""
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    row = TicketRow(device_id=device_id, household_id=household_id, mode=mode, category=category,
                    priority=priority, priority_rank=PRIORITIES.index(priority), status="open",
                    subject=subject, created_at=now, context=context, case_id=case_id, kind=kind,
                    code=code, due_at=now + SLA[priority], escalation_level=0, human_only=human_only,
                    features=features, notification_id=notification_id)
    s.add(row)
    s.flush()
    return row


def escalate_breached(s: Session, *, now: datetime) -> list[TicketRow]:
    """Escalate every open ticket past its SLA deadline (see the module docstring); returns them."""
    # Escalated after its deadline was set = this breach was already escalated (the urgent case).
    not_yet = or_(TicketRow.escalated_at.is_(None), TicketRow.escalated_at < TicketRow.due_at)
    rows = list(s.scalars(select(TicketRow).where(TicketRow.status == "open", TicketRow.due_at <= now, not_yet)
                          .order_by(TicketRow.id)))
    for row in rows:
        before = row.priority
        after = PRIORITIES[max(PRIORITIES.index(before) - 1, 0)]
        row.priority, row.priority_rank = after, PRIORITIES.index(after)
        row.escalation_level += 1
        row.escalated_at = now
        if after != before:
            row.due_at = now + SLA[after]
        # A new dict: the JSON column is not mutation-tracked.
        row.context = {**row.context, "escalations": [
            *row.context.get("escalations", []),
            {"at": now.isoformat(), "from": before, "to": after, "level": row.escalation_level}]}
    return rows


def record_label(s: Session, *, device_id: str, kind: str, mode: str, source: str, outcome: str,
                 now: datetime, parts: tuple[str, ...] = (), note: str = "",
                 features: dict[str, float] | None = None, case_id: int | None = None,
                 booking_id: int | None = None, ticket_id: int | None = None) -> LabelRow:
    """Record what really happened to a device (for the models and for similar-case search)."""
    if outcome not in LABEL_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; known: {sorted(LABEL_OUTCOMES)}")
    if features is None and case_id is not None:
        case = s.get(CaseRow, case_id)
        features = case.features if case is not None else None
    row = LabelRow(device_id=device_id, kind=kind, mode=mode, source=source, outcome=outcome, ts=now,
                   parts=list(parts), note=note, features=features, case_id=case_id,
                   booking_id=booking_id, ticket_id=ticket_id)
    s.add(row)
    s.flush()
    return row


def close_ticket_case(s: Session, row: TicketRow, *, now: datetime, why: str) -> None:
    """Close the ticket's case when it is a ticket case (an escalated case follows its own action)."""
    case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
    if case is not None and case.status == "open" and case.action == DecisionAction.OPEN_TICKET:
        case.status, case.closed_at, case.close_reason = "closed", now, why
