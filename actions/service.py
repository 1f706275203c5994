"""The actions service: turns predictions into cases, notifications, bookings and tickets.

Each prediction is handled in one transaction: load the (device, mode) history, ``decide``, persist.
The first statement of that transaction is a write to ``case_state`` on purpose. pysqlite opens
a transaction only at the first DML, so reads before a write would see a snapshot a competing
writer may already have changed; writing first takes SQLite's write lock up front and makes
concurrent ``handle`` calls run one after another. On PostgreSQL, booking transactions also
update the technicians rows they read, which row-locks them for the same effect; the partial
unique indexes on ``cases`` and ``bookings`` catch anything that still slips through, and the
transaction is retried once on ``IntegrityError`` (the retry then sees the winner's rows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ingest.clock import Clock
from ingest.contract import FailureMode
from ingest.db import DeviceRow
from predictors.types import Prediction

from .booking import Technician, find_slot
from .context import device_info, prediction_info, readings_summary, similar_cases
from .db import (
    BookingRow,
    CaseRow,
    CaseStateRow,
    DecisionLogRow,
    NotificationRow,
    TechnicianRow,
    TicketRow,
)
from .errors import InvalidState, NotFound
from .policy import (
    PRIORITIES,
    CaseHistory,
    Decision,
    DecisionAction,
    PolicyConfig,
    decide,
    failure_mode,
    is_calm,
    is_uncertain,
)
from .records import Booking, Case, Notification, Outcome, Ticket, technician_from_row

__all__ = ["ActionService", "seed_technicians"]

_T = TypeVar("_T")
_ACTIVE_BOOKING = ("scheduled", "due")
_NOTIFICATION_STATUSES = frozenset({"new", "acknowledged", "done", "dismissed"})


def seed_technicians(engine: Engine, technicians: Iterable[Technician]) -> None:
    """Insert or update technicians (by id); for the demo and tests."""
    with sessionmaker(engine).begin() as s:
        for tech in technicians:
            row = s.get(TechnicianRow, tech.technician_id) or TechnicianRow(
                technician_id=tech.technician_id, lock_version=0, active=True)
            row.name = tech.name
            row.skills = sorted(tech.skills)
            row.service_areas = sorted(tech.service_areas)
            row.working_hours = list(tech.working_hours)
            row.working_days = sorted(tech.working_days)
            row.max_jobs_per_day = tech.max_jobs_per_day
            s.add(row)


class ActionService:
    """Decides on predictions and keeps cases, notifications, bookings and tickets."""

    def __init__(self, engine: Engine, *, clock: Clock, policy_config: PolicyConfig | None = None,
                 booking_duration: timedelta = timedelta(hours=2),
                 booking_lead: timedelta = timedelta(hours=1),
                 booking_window: timedelta = timedelta(days=14),
                 readings_in_context: int = 24, recent_p_fail_kept: int = 12) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._config = policy_config or PolicyConfig()
        self._booking_duration = booking_duration
        self._booking_lead = booking_lead
        self._booking_window = booking_window
        self._readings_in_context = readings_in_context
        self._recent_kept = recent_p_fail_kept

    @property
    def policy_config(self) -> PolicyConfig:
        return self._config

    # -- predictions ---------------------------------------------------------------------------

    def handle(self, predictions: Sequence[Prediction]) -> list[Outcome]:
        """Decide on each prediction and persist the result, one transaction per prediction.

        Idempotent: a prediction not newer than the last one handled for its (device, mode)
        changes nothing and comes back with ``duplicate=True``.
        """
        outcomes = []
        for prediction in predictions:
            mode = failure_mode(prediction)  # UnknownFailureMode before anything is written
            outcomes.append(self._retrying(
                lambda s, p=prediction, m=mode: self._handle_one(s, p, m)))
        return outcomes

    def _retrying(self, work: Callable[[Session], _T]) -> _T:
        try:
            with self._sessions.begin() as s:
                return work(s)
        except IntegrityError:
            # A concurrent writer won a unique index race; the retry sees its rows.
            with self._sessions.begin() as s:
                return work(s)

    def _handle_one(self, s: Session, prediction: Prediction, mode: FailureMode) -> Outcome:
        now = self._clock.now()
        state = self._lock_state(s, prediction.device_id, prediction.mode, now)
        open_case = self._open_case(s, prediction.device_id, prediction.mode)
        if state.last_prediction_ts is not None and (prediction.ts, prediction.n_readings) <= (
                state.last_prediction_ts, state.last_prediction_n):
            return Outcome(device_id=prediction.device_id, mode=prediction.mode,
                           prediction_ts=prediction.ts, duplicate=True,
                           case_id=open_case.id if open_case else None,
                           decision=Decision(action=DecisionAction.NONE, rule="duplicate",
                                             reason="a prediction at or after this one was handled"))
        last_closed = s.scalar(select(func.max(CaseRow.closed_at)).where(
            CaseRow.device_id == prediction.device_id, CaseRow.mode == prediction.mode,
            CaseRow.status == "closed"))
        history = CaseHistory(
            open_case_action=DecisionAction(open_case.action) if open_case else None,
            uncertain_since=state.uncertain_since, recent_p_fail=tuple(state.recent_p_fail),
            last_closed_at=last_closed)
        decision = decide(prediction, history, self._config, now)

        uncertain = is_uncertain(prediction, mode, self._config)
        state.uncertain_since = (state.uncertain_since or now) if uncertain else None
        state.calm_since = (state.calm_since or now) if is_calm(prediction, mode, self._config) else None
        state.recent_p_fail = [*state.recent_p_fail, prediction.p_fail][-self._recent_kept:]
        state.last_prediction_ts, state.last_prediction_n = prediction.ts, prediction.n_readings

        outcome = Outcome(device_id=prediction.device_id, mode=prediction.mode,
                          prediction_ts=prediction.ts, decision=decision,
                          case_id=open_case.id if open_case else None)
        if decision.action is DecisionAction.NONE:
            return outcome
        covering = self._ticket_covering(s, prediction.device_id, decision) if open_case is None else None
        if covering is not None:  # one stuck sensor feeds several modes: one ticket for the device
            return replace(outcome, decision=Decision(
                action=DecisionAction.NONE, rule="covered",
                reason=f"open ticket {covering} already covers this device's {decision.rule}"))
        return self._act(s, prediction=prediction, mode=mode, decision=decision,
                         open_case=open_case, history=history, now=now)

    def _lock_state(self, s: Session, device_id: str, mode: str, now: datetime) -> CaseStateRow:
        # Write first: see the module docstring.
        s.execute(update(CaseStateRow)
                  .where(CaseStateRow.device_id == device_id, CaseStateRow.mode == mode)
                  .values(touched_at=now))
        state = s.get(CaseStateRow, (device_id, mode))
        if state is None:
            state = CaseStateRow(device_id=device_id, mode=mode, touched_at=now, recent_p_fail=[])
            s.add(state)
            s.flush()
        return state

    @staticmethod
    def _ticket_covering(s: Session, device_id: str, decision: Decision) -> int | None:
        """An open data-quality ticket of the device (any mode) that already covers ``decision``."""
        if decision.action is not DecisionAction.OPEN_TICKET or decision.rule not in ("sensor_fault", "ood"):
            return None
        return s.scalar(select(TicketRow.id).where(TicketRow.device_id == device_id, TicketRow.status == "open",
                                                   TicketRow.category == decision.rule).limit(1))

    @staticmethod
    def _open_case(s: Session, device_id: str, mode: str) -> CaseRow | None:
        return s.scalar(select(CaseRow).where(CaseRow.device_id == device_id, CaseRow.mode == mode,
                                              CaseRow.status == "open"))

    def _act(self, s: Session, *, prediction: Prediction, mode: FailureMode, decision: Decision,
             open_case: CaseRow | None, history: CaseHistory, now: datetime) -> Outcome:
        device = s.get(DeviceRow, prediction.device_id)
        if open_case is None:
            case = CaseRow(device_id=prediction.device_id, kind=prediction.kind,
                           mode=prediction.mode, status="open", action=decision.action.value,
                           priority=decision.priority, reason=decision.reason,
                           due_by=decision.due_by, opened_at=now)
            s.add(case)
        else:  # escalating a ticket case: still one open case per (device, mode)
            case = open_case
            case.action, case.priority = decision.action.value, decision.priority
            case.reason, case.due_by = f"{case.reason}\n{decision.reason}", decision.due_by
        s.flush()

        notification = booking = ticket = None
        outcome_text = ""
        household = device.household_id if device else None
        if decision.action is DecisionAction.NOTIFY_HOMEOWNER and household:
            notification = self._notify_failure(s, prediction, mode, decision, household, case, now)
            outcome_text = f"notification:{notification.id}"
        elif decision.action is DecisionAction.BOOK_TECHNICIAN:
            booking = self._book(s, prediction, mode, decision, device, case, now)
            if booking is not None:
                outcome_text = f"booking:{booking.id}"
                if household:
                    notification = self._notify_booking(s, prediction, mode, booking, household, case, now)

        if notification is None and booking is None:
            if decision.action is DecisionAction.OPEN_TICKET:
                category = decision.rule
            elif decision.action is DecisionAction.BOOK_TECHNICIAN:
                category = "no_slot"
            else:
                category = "no_household"
            # The case keeps the decided action: a fallback ticket is how it gets done, and a
            # BOOK/NOTIFY case is never "escalated" again (which would open a ticket per prediction).
            ticket = self._ticket_for(s, prediction, decision, device, case, category, history, now)
            outcome_text = f"ticket:{ticket.id}" + ("" if category == decision.rule else f" ({category})")

        s.add(DecisionLogRow(
            device_id=prediction.device_id, kind=prediction.kind, mode=prediction.mode,
            prediction_ts=prediction.ts, model_version=prediction.model_version,
            p_fail=prediction.p_fail, ttf_low_h=prediction.ttf_low_h,
            ttf_high_h=prediction.ttf_high_h, action=decision.action.value,
            priority=decision.priority, reason=decision.reason, due_by=decision.due_by,
            outcome=outcome_text, case_id=case.id, decided_at=now))
        return Outcome(device_id=prediction.device_id, mode=prediction.mode,
                       prediction_ts=prediction.ts, decision=decision, case_id=case.id,
                       notification_id=notification.id if notification else None,
                       booking_id=booking.id if booking else None,
                       ticket_id=ticket.id if ticket else None)

    def _notify_failure(self, s: Session, prediction: Prediction, mode: FailureMode,
                        decision: Decision, household: str, case: CaseRow,
                        now: datetime) -> NotificationRow:
        advice = mode.homeowner_tip or mode.description
        when = f" Please act before {decision.due_by:%a %d %b %H:%M} UTC." if decision.due_by else ""
        body = (f"{advice} We expect trouble in about {prediction.ttf_h:.0f} hours "
                f"(between {prediction.ttf_low_h:.0f} and {prediction.ttf_high_h:.0f} hours).{when}")
        row = NotificationRow(household_id=household, device_id=prediction.device_id,
                              mode=prediction.mode, title=f"{_label(prediction.kind)}: "
                              f"{_label(prediction.mode).lower()} expected", body=body,
                              created_at=now, status="new", case_id=case.id)
        s.add(row)
        s.flush()
        return row

    def _notify_booking(self, s: Session, prediction: Prediction, mode: FailureMode,
                        booking: BookingRow, household: str, case: CaseRow,
                        now: datetime) -> NotificationRow:
        tech = s.get(TechnicianRow, booking.technician_id)
        who = tech.name if tech else "A technician"
        row = NotificationRow(
            household_id=household, device_id=prediction.device_id, mode=prediction.mode,
            title=f"{_label(prediction.kind)}: technician visit booked",
            body=f"{who} will visit on {booking.start_at:%a %d %b} between "
                 f"{booking.start_at:%H:%M} and {booking.end_at:%H:%M} UTC about "
                 f"{_label(prediction.mode).lower()}: {mode.description}",
            created_at=now, status="new", case_id=case.id)
        s.add(row)
        s.flush()
        return row

    def _book(self, s: Session, prediction: Prediction, mode: FailureMode, decision: Decision,
              device: DeviceRow | None, case: CaseRow, now: datetime) -> BookingRow | None:
        if device is None or not device.service_area or decision.due_by is None:
            return None
        # Row-locks the technicians on PostgreSQL so competing bookings queue (see module docstring).
        s.execute(update(TechnicianRow).where(TechnicianRow.active.is_(True))
                  .values(lock_version=TechnicianRow.lock_version + 1))
        technicians = [technician_from_row(r) for r in s.scalars(
            select(TechnicianRow).where(TechnicianRow.active.is_(True)))]
        earliest = now + self._booking_lead
        busy: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for b in s.scalars(select(BookingRow).where(BookingRow.status.in_(_ACTIVE_BOOKING),
                                                    BookingRow.end_at > earliest)):
            busy[b.technician_id].append((b.start_at, b.end_at))
        slot = find_slot(technicians=technicians, busy=busy, service_area=device.service_area,
                         skill=mode.skill, earliest=earliest,
                         deadline=min(decision.due_by, now + self._booking_window),
                         duration=self._booking_duration)
        if slot is None:
            return None
        row = BookingRow(technician_id=slot.technician_id, device_id=prediction.device_id,
                         mode=prediction.mode, household_id=device.household_id,
                         start_at=slot.start, end_at=slot.end, status="scheduled",
                         created_at=now, case_id=case.id)
        s.add(row)
        s.flush()
        return row

    def _ticket_for(self, s: Session, prediction: Prediction, decision: Decision,
                    device: DeviceRow | None, case: CaseRow, category: str,
                    history: CaseHistory, now: datetime) -> TicketRow:
        context = {
            "reason": decision.reason,
            "decision": {"action": decision.action.value, "rule": decision.rule,
                         "priority": decision.priority,
                         "due_by": decision.due_by.isoformat() if decision.due_by else None},
            "device": device_info(device, prediction.device_id),
            "readings": readings_summary(s, prediction.device_id, last_n=self._readings_in_context),
            "prediction": prediction_info(prediction),
            "recent_p_fail": [*history.recent_p_fail, prediction.p_fail],
            "similar_cases": similar_cases(s, kind=prediction.kind, mode=prediction.mode),
        }
        row = TicketRow(
            device_id=prediction.device_id, household_id=device.household_id if device else None,
            mode=prediction.mode, category=category, priority=decision.priority,
            priority_rank=PRIORITIES.index(decision.priority), status="open",
            subject=f"{_label(category)}: {prediction.kind} {prediction.device_id} ({prediction.mode})",
            created_at=now, context=context, case_id=case.id)
        s.add(row)
        s.flush()
        return row

    # -- people --------------------------------------------------------------------------------

    def open_ticket_on_request(self, *, message: str, device_id: str | None = None,
                               household_id: str | None = None) -> Ticket:
        """"Talk to a person": always opens a ticket, whatever cases or cooldowns exist."""
        if device_id is None and household_id is None:
            raise ValueError("name a device_id or a household_id")
        now = self._clock.now()
        with self._sessions.begin() as s:
            device = s.get(DeviceRow, device_id) if device_id else None
            if device_id is not None and device is None:
                raise NotFound(f"device {device_id}")
            household = household_id or (device.household_id if device else None)
            devices = ([device] if device else list(s.scalars(
                select(DeviceRow).where(DeviceRow.household_id == household))))
            if not devices:
                raise NotFound(f"household {household_id}")
            ids = [d.device_id for d in devices]
            context: dict[str, Any] = {
                "message": message,
                "devices": [device_info(d, d.device_id) for d in devices],
                "readings": {d.device_id: readings_summary(s, d.device_id,
                                                           last_n=self._readings_in_context)
                             for d in devices},
                "open_cases": [_case_json(c) for c in s.scalars(
                    select(CaseRow).where(CaseRow.device_id.in_(ids), CaseRow.status == "open"))],
                "recent_decisions": [
                    {"device_id": d.device_id, "mode": d.mode, "action": d.action,
                     "reason": d.reason, "outcome": d.outcome, "decided_at": d.decided_at.isoformat()}
                    for d in s.scalars(select(DecisionLogRow).where(DecisionLogRow.device_id.in_(ids))
                                       .order_by(DecisionLogRow.decided_at.desc()).limit(5))],
            }
            row = TicketRow(device_id=device_id, household_id=household, mode=None,
                            category="customer_request", priority="high",
                            priority_rank=PRIORITIES.index("high"), status="open",
                            subject=f"Customer request: {message[:80]}", created_at=now,
                            context=context)
            s.add(row)
            s.flush()
            return Ticket._from_row(row)

    def resolve_ticket(self, ticket_id: int, resolution: str) -> Ticket:
        """Resolve an open ticket; its case closes too unless it was escalated to another action."""
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = _get(s, TicketRow, ticket_id, "ticket")
            if row.status != "open":
                raise InvalidState(f"ticket {ticket_id} is {row.status}")
            row.status, row.resolved_at, row.resolution = "resolved", now, resolution
            case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
            if case is not None and case.status == "open" and case.action == DecisionAction.OPEN_TICKET:
                case.status, case.closed_at = "closed", now
                case.close_reason = f"ticket {ticket_id} resolved: {resolution}"
            return Ticket._from_row(row)

    def complete_booking(self, booking_id: int, diagnosis: str) -> Booking:
        """Record the technician's visit.

        The case stays open: the features still hold pre-repair readings for a while, and
        closing now would re-alert on them. ``close_recovered_cases`` closes it once the
        predictions show the device recovered.
        """
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = _get(s, BookingRow, booking_id, "booking")
            if row.status not in _ACTIVE_BOOKING:
                raise InvalidState(f"booking {booking_id} is {row.status}")
            row.status, row.diagnosis, row.completed_at = "completed", diagnosis, now
            return Booking._from_row(row)

    def set_notification_status(self, notification_id: int, status: str) -> Notification:
        """Mark a notification acknowledged, done or dismissed (what the homeowner did)."""
        if status not in _NOTIFICATION_STATUSES:
            raise ValueError(f"unknown notification status {status!r}")
        now = self._clock.now()
        with self._sessions.begin() as s:
            row = _get(s, NotificationRow, notification_id, "notification")
            row.status, row.status_at = status, now
            return Notification._from_row(row)

    # -- housekeeping (scheduler jobs) ---------------------------------------------------------

    def close_recovered_cases(self, *, device_id: str | None = None) -> list[Case]:
        """Close open cases whose device has looked calm for ``recovered_dwell``; returns them.

        Calm: ``policy.is_calm`` held for every prediction since ``case_state.calm_since``. Ticket
        cases are left alone: they close when a person resolves the ticket.
        A closed case lets the device be alerted again later (after the cooldown).
        """
        now = self._clock.now()
        cutoff = now - self._config.recovered_dwell
        with self._sessions.begin() as s:
            query = (select(CaseRow, CaseStateRow.calm_since)
                     .join(CaseStateRow, and_(CaseStateRow.device_id == CaseRow.device_id,
                                              CaseStateRow.mode == CaseRow.mode))
                     .where(CaseRow.status == "open", CaseStateRow.calm_since <= cutoff,
                            # a ticket case belongs to the person working the ticket: it closes
                            # when they resolve it, never behind their back
                            CaseRow.action != DecisionAction.OPEN_TICKET.value))
            if device_id is not None:
                query = query.where(CaseRow.device_id == device_id)
            closed = []
            for case, calm_since in s.execute(query):
                case.status, case.closed_at = "closed", now
                case.close_reason = f"recovered: predictions calm since {calm_since:%Y-%m-%d %H:%M}Z"
                closed.append(Case._from_row(case))
            return closed

    def mark_due_bookings(self) -> int:
        """Scheduled bookings whose start has come become ``due``; returns how many."""
        now = self._clock.now()
        with self._sessions.begin() as s:
            result = s.execute(update(BookingRow)
                               .where(BookingRow.status == "scheduled", BookingRow.start_at <= now)
                               .values(status="due"))
            return int(result.rowcount)  # type: ignore[attr-defined]

    # -- queries -------------------------------------------------------------------------------

    def notifications_for_household(self, household_id: str) -> list[Notification]:
        """A household's notifications, newest first."""
        with self._sessions() as s:
            return [Notification._from_row(r) for r in s.scalars(
                select(NotificationRow).where(NotificationRow.household_id == household_id)
                .order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc()))]

    def bookings_for_technician(self, technician_id: str) -> list[Booking]:
        """A technician's bookings in start order."""
        with self._sessions() as s:
            return [Booking._from_row(r) for r in s.scalars(
                select(BookingRow).where(BookingRow.technician_id == technician_id)
                .order_by(BookingRow.start_at, BookingRow.id))]

    def open_tickets(self) -> list[Ticket]:
        """The open ticket queue: most pressing priority first, then oldest first."""
        with self._sessions() as s:
            return [Ticket._from_row(r) for r in s.scalars(
                select(TicketRow).where(TicketRow.status == "open")
                .order_by(TicketRow.priority_rank, TicketRow.created_at, TicketRow.id))]

    def device_cases(self, device_id: str) -> list[Case]:
        """A device's cases, newest first."""
        with self._sessions() as s:
            return [Case._from_row(r) for r in s.scalars(
                select(CaseRow).where(CaseRow.device_id == device_id)
                .order_by(CaseRow.opened_at.desc(), CaseRow.id.desc()))]

    def open_case_counts(self, device_ids: Sequence[str]) -> dict[str, int]:
        """Open cases per device (devices with none are left out)."""
        if not device_ids:
            return {}
        with self._sessions() as s:
            return {d: int(n) for d, n in s.execute(
                select(CaseRow.device_id, func.count()).where(CaseRow.device_id.in_(list(device_ids)),
                                                             CaseRow.status == "open")
                .group_by(CaseRow.device_id))}

    def ticket(self, ticket_id: int) -> Ticket:
        """One ticket by id."""
        with self._sessions() as s:
            return Ticket._from_row(_get(s, TicketRow, ticket_id, "ticket"))

    def booking(self, booking_id: int) -> Booking:
        """One booking by id."""
        with self._sessions() as s:
            return Booking._from_row(_get(s, BookingRow, booking_id, "booking"))

    def technicians(self) -> list[Technician]:
        """The active technicians, by id."""
        with self._sessions() as s:
            return [technician_from_row(r) for r in s.scalars(
                select(TechnicianRow).where(TechnicianRow.active.is_(True))
                .order_by(TechnicianRow.technician_id))]


def _get(s: Session, model: type[_T], key: object, what: str) -> _T:
    row = s.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key}")
    return row


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _case_json(case: CaseRow) -> dict[str, Any]:
    return {"case_id": case.id, "mode": case.mode, "device_id": case.device_id,
            "action": case.action, "priority": case.priority, "reason": case.reason,
            "opened_at": case.opened_at.isoformat()}

