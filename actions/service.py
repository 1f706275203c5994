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

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest.clock import Clock
from ingest.contract import FailureMode
from ingest.db import DeviceRow
from predictors.types import Prediction

from .booking import Technician
from .casework import CaseworkMixin
from .core import ServiceCore, get_row, label, ttf_values
from .context import device_info, feature_snapshot, prediction_info, readings_summary, similar_cases
from .db import (
    BookingRow,
    CaseRow,
    CaseStateRow,
    DecisionLogRow,
    TechnicianRow,
    TicketRow,
)
from .delivery import DeliveryConfig, Urgency
from .events import EventsMixin
from .notify import NewNotification, create_notification
from .people import NotificationsMixin
from .policy import (
    CaseHistory,
    Decision,
    DecisionAction,
    PolicyConfig,
    decide,
    failure_mode,
    is_calm,
    is_uncertain,
)
from .records import Booking, Case, Outcome, Ticket, technician_from_row
from .safety import SafetyMixin
from .tickets import open_ticket
from .visits import VisitsMixin
from .webhook import RetryConfig

__all__ = ["ActionService", "seed_technicians"]

_T = TypeVar("_T")


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


class ActionService(NotificationsMixin, VisitsMixin, CaseworkMixin, EventsMixin, SafetyMixin, ServiceCore):
    """Decides on predictions and device errors; keeps cases, notifications, bookings and tickets.

    The people-facing operations live in the mixins, one module each: ``people`` (households,
    the feed, notification actions, the webhook outbox), ``visits`` (booking, rescheduling,
    cancelling, completing, reminders, overdue), ``casework`` (tickets: on request, resolution,
    SLA escalation), ``events`` (device error codes) and ``safety`` (overheating in the readings).
    """

    def __init__(self, engine: Engine, *, clock: Clock, policy_config: PolicyConfig | None = None,
                 delivery_config: DeliveryConfig | None = None, retry_config: RetryConfig | None = None,
                 booking_duration: timedelta = timedelta(hours=2),
                 booking_lead: timedelta = timedelta(hours=1),
                 booking_window: timedelta = timedelta(days=14),
                 reminder_lead: timedelta = timedelta(hours=24),
                 overdue_grace: timedelta = timedelta(hours=2),
                 readings_in_context: int = 24, recent_p_fail_kept: int = 12) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._config = policy_config or PolicyConfig()
        self._delivery = delivery_config or DeliveryConfig()
        self._retry = retry_config or RetryConfig()
        self._booking_duration = booking_duration
        self._booking_lead = booking_lead
        self._booking_window = booking_window
        self._reminder_lead = reminder_lead
        self._overdue_grace = overdue_grace
        self._readings_in_context = readings_in_context
        self._recent_kept = recent_p_fail_kept

    @property
    def policy_config(self) -> PolicyConfig:
        return self._config

    # -- predictions ---------------------------------------------------------------------------

    def handle(self, predictions: Sequence[Prediction]) -> list[Outcome]:
        """Decide on each prediction and persist the result, one transaction per prediction.

        Then the readings behind them are checked against the safety rules (``safety``).
        Idempotent: a prediction not newer than the last one handled for its (device, mode)
        changes nothing and comes back with ``duplicate=True``.
        """
        outcomes = []
        for prediction in predictions:
            mode = failure_mode(prediction)  # UnknownFailureMode before anything is written
            outcomes.append(self._retrying(
                lambda s, p=prediction, m=mode: self._handle_one(s, p, m)))
        # The readings behind these predictions may be a safety matter whatever the models say.
        self.check_safety(p.device_id for p in predictions)
        return outcomes

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
            case = self._new_case(s, device_id=prediction.device_id, kind=prediction.kind,
                                  mode=prediction.mode, action=decision.action.value,
                                  priority=decision.priority, reason=decision.reason,
                                  due_by=decision.due_by, now=now)
        else:  # escalating a ticket case: still one open case per (device, mode)
            case = open_case
            case.action, case.priority = decision.action.value, decision.priority
            case.reason, case.due_by = f"{case.reason}\n{decision.reason}", decision.due_by
            s.flush()

        notification = booking = ticket = None
        outcome_text = ""
        household = device.household_id if device else None
        if decision.action is DecisionAction.NOTIFY_HOMEOWNER and household:
            notification, plan = create_notification(s, NewNotification(
                household_id=household, device_id=prediction.device_id, kind=prediction.kind,
                mode=prediction.mode, template="prediction_fix", urgency=Urgency.ALERT,
                case_id=case.id, due_by=decision.due_by, values=ttf_values(prediction)),
                config=self._delivery, now=now)
            outcome_text = (f"notification:{notification.id}" + (" (held: quiet hours)" if plan.held else "")
                            if notification else f"notification suppressed ({plan.rule}: {plan.reason})")
        elif decision.action is DecisionAction.BOOK_TECHNICIAN:
            booking = self._book(s, device=device, kind=prediction.kind, mode=prediction.mode,
                                 deadline=decision.due_by, reason=decision.reason, case_id=case.id, now=now)
            if booking is not None:
                outcome_text = f"booking:{booking.id}"
                notification = self._notify_visit(s, booking, kind=prediction.kind, template="booking_booked",
                                                  case_id=case.id, now=now)

        if not outcome_text:
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

    def _ticket_for(self, s: Session, prediction: Prediction, decision: Decision,
                    device: DeviceRow | None, case: CaseRow, category: str,
                    history: CaseHistory, now: datetime) -> TicketRow:
        features = case.features or feature_snapshot(s, prediction.device_id)
        context = {
            "reason": decision.reason,
            "decision": {"action": decision.action.value, "rule": decision.rule,
                         "priority": decision.priority,
                         "due_by": decision.due_by.isoformat() if decision.due_by else None},
            "device": device_info(device, prediction.device_id),
            "readings": readings_summary(s, prediction.device_id, last_n=self._readings_in_context),
            "prediction": prediction_info(prediction),
            "features": features,
            "recent_p_fail": [*history.recent_p_fail, prediction.p_fail],
            "similar_cases": similar_cases(s, kind=prediction.kind, mode=prediction.mode, features=features),
        }
        return open_ticket(
            s, device_id=prediction.device_id, household_id=device.household_id if device else None,
            kind=prediction.kind, mode=prediction.mode, category=category, priority=decision.priority,
            subject=f"{label(category)}: {prediction.kind} {prediction.device_id} ({prediction.mode})",
            now=now, context=context, case_id=case.id, features=features)

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
            return Ticket._from_row(get_row(s, TicketRow, ticket_id, "ticket"))

    def booking(self, booking_id: int) -> Booking:
        """One booking by id."""
        with self._sessions() as s:
            return Booking._from_row(get_row(s, BookingRow, booking_id, "booking"))

    def technicians(self) -> list[Technician]:
        """The active technicians, by id."""
        with self._sessions() as s:
            return [technician_from_row(r) for r in s.scalars(
                select(TechnicianRow).where(TechnicianRow.active.is_(True))
                .order_by(TechnicianRow.technician_id))]
