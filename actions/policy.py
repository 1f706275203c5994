"""The decision policy: a pure function of (prediction, history, config, now). No I/O, no clock.

``decide`` turns one ``Prediction`` into one ``Decision``. Rules, in order (first match wins):

1. **Bad data → OPEN_TICKET.** ``prediction.sensor_faults`` non-empty or ``prediction.ood``: a person
   looks; we never guess on data we do not trust. Priority ``normal``.
2. **Failure near → the mode's action** (``NOTIFY_HOMEOWNER`` or ``BOOK_TECHNICIAN`` from the
   profile) when the remaining-time estimate says the failure is inside the act window —
   ``ttf_low_h <= mode.act_before_h`` and, so that a wide interval alone does not trigger it, either
   the median agrees (``ttf_h <= median_act_factor * mode.act_before_h``) or ``p_fail >=
   p_act_floor`` — or when ``p_fail >= p_act``. The remaining-time rule is what buys the lead: the
   horizon probability only rises inside its 48 h horizon, too late for a 48 h promise.
   ``due_by = min(now, prediction.ts) + ttf_low_h`` (the fix must happen before the earliest likely
   failure; counting from ``prediction.ts`` when it is older than ``now`` keeps a late-scored
   prediction from buying time it does not have). Priority from that remaining time:
   ``<= urgent_within_h`` urgent, ``<= high_within_h`` high, otherwise normal.
3. **Long uncertainty → OPEN_TICKET.** The prediction is *uncertain* when ``p_fail`` lies in
   ``[uncertain_low, uncertain_high]``, rule 2 does not hold, and the time estimate is no help: its
   interval is wider than ``wide_interval_factor * mode.act_before_h``, or it contradicts the
   probability (``p_fail >= 0.5`` but the median ``ttf_h`` beyond the horizon, or the reverse).
   Only when the uncertain run has lasted ``uncertain_dwell`` (``now - history.uncertain_since``)
   is a ticket opened, priority ``low``; a brief pass through the band while a device degrades is
   normal. The caller tracks ``uncertain_since`` with ``is_uncertain``.
4. Otherwise **NONE**.

Then two suppressions apply to whatever rules 1–3 chose:

* **One open case per (device, mode).** An open case → NONE, with one exception: an open case
  that is only a ticket (``OPEN_TICKET``, e.g. from bad data) is *escalated* when clean data now
  calls for the mode's own action, so a stuck-sensor ticket cannot hide a real, near failure.
* **Cooldown.** Within ``cooldown`` after the last case for (device, mode) closed → NONE unless
  the decision is ``urgent`` (features lag a repair; only an imminent failure overrides that).

``is_calm`` tells the caller when a device looks recovered (``p_fail < recovered_p_below`` and
``ttf_low_h > mode.act_before_h``); a case stays calm for ``recovered_dwell`` before it is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from ingest.contract import ActionKind, FailureMode, get_profile
from predictors.types import Prediction

from .errors import UnknownFailureMode

__all__ = [
    "PRIORITIES",
    "CaseHistory",
    "Decision",
    "DecisionAction",
    "PolicyConfig",
    "decide",
    "failure_mode",
    "is_calm",
    "is_uncertain",
]

#: Priorities from most to least pressing; the index is the sort rank of the ticket queue.
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")


class DecisionAction(StrEnum):
    """What the policy decided; the non-NONE values are those of ``ingest.contract.ActionKind``."""

    NONE = "none"
    NOTIFY_HOMEOWNER = ActionKind.NOTIFY_HOMEOWNER.value
    BOOK_TECHNICIAN = ActionKind.BOOK_TECHNICIAN.value
    OPEN_TICKET = ActionKind.OPEN_TICKET.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One decision with a human-readable reason; ``due_by`` is the deadline for a fix, if any.

    ``rule`` names the rule that decided: ``sensor_fault``, ``ood``, ``near_failure``,
    ``uncertain``, ``uncertain_dwell``, ``healthy``, ``open_case`` or ``cooldown`` (tickets use it as their category).
    """

    action: DecisionAction
    reason: str
    rule: str = ""
    priority: str = "normal"
    due_by: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseHistory:
    """What the policy needs to know about earlier decisions for one (device, failure mode)."""

    #: Action of the open case, or None when no case is open.
    open_case_action: DecisionAction | None = None
    #: Start of the current run of uncertain predictions (None when the last one was not uncertain).
    uncertain_since: datetime | None = None
    #: Recent p_fail values, oldest first (shown in reasons and ticket context).
    recent_p_fail: tuple[float, ...] = ()
    #: When the last case for (device, mode) closed (for the cooldown).
    last_closed_at: datetime | None = None

    @property
    def has_open_case(self) -> bool:
        return self.open_case_action is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Thresholds, dwell times and cooldowns of the policy; defaults suit the demo fleet."""

    p_act: float = 0.7
    p_act_floor: float = 0.2
    median_act_factor: float = 1.5
    uncertain_low: float = 0.3
    uncertain_high: float = 0.7
    uncertain_dwell: timedelta = field(default=timedelta(hours=24))
    wide_interval_factor: float = 1.0
    cooldown: timedelta = field(default=timedelta(hours=72))
    urgent_within_h: float = 24.0
    high_within_h: float = 48.0
    recovered_p_below: float = 0.1
    recovered_dwell: timedelta = field(default=timedelta(hours=24))

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_act_floor <= self.p_act <= 1.0:
            raise ValueError("need 0 <= p_act_floor <= p_act <= 1")
        if not 0.0 <= self.uncertain_low <= self.uncertain_high <= 1.0:
            raise ValueError("need 0 <= uncertain_low <= uncertain_high <= 1")
        if not 0.0 <= self.urgent_within_h <= self.high_within_h:
            raise ValueError("need 0 <= urgent_within_h <= high_within_h")
        if min(self.uncertain_dwell, self.cooldown, self.recovered_dwell) < timedelta(0):
            raise ValueError("dwell times and cooldowns cannot be negative")
        if self.wide_interval_factor <= 0:
            raise ValueError("wide_interval_factor must be positive")
        if self.median_act_factor < 1.0:
            raise ValueError("median_act_factor must be at least 1")


def failure_mode(prediction: Prediction) -> FailureMode:
    """The profile's definition of the prediction's failure mode."""
    try:
        return get_profile(prediction.kind).mode(prediction.mode)
    except KeyError:
        raise UnknownFailureMode(f"{prediction.kind}/{prediction.mode}") from None


def decide(prediction: Prediction, history: CaseHistory, config: PolicyConfig,
           now: datetime) -> Decision:
    """The decision for one prediction (see the module docstring for the rules)."""
    mode = failure_mode(prediction)
    decision = _choose(prediction, mode, history, config, now)
    if decision.action is DecisionAction.NONE:
        return decision
    if history.open_case_action is not None:
        escalates = (history.open_case_action is DecisionAction.OPEN_TICKET
                     and decision.action is not DecisionAction.OPEN_TICKET)
        if not escalates:
            return Decision(action=DecisionAction.NONE, rule="open_case",
                            reason=f"a {history.open_case_action} case is already open")
        decision = Decision(action=decision.action, priority=decision.priority,
                            due_by=decision.due_by, rule=decision.rule,
                            reason=f"escalates the open ticket case: {decision.reason}")
    elif (history.last_closed_at is not None and now - history.last_closed_at < config.cooldown
          and decision.priority != "urgent"):
        return Decision(action=DecisionAction.NONE, rule="cooldown",
                        reason=f"cooldown after the case closed at {history.last_closed_at:%Y-%m-%d %H:%M}Z "
                               f"(would have been {decision.action}: {decision.reason})")
    return decision


def _acts(prediction: Prediction, mode: FailureMode, config: PolicyConfig) -> bool:
    agrees = (prediction.ttf_h <= config.median_act_factor * mode.act_before_h
              or prediction.p_fail >= config.p_act_floor)
    near = prediction.ttf_low_h <= mode.act_before_h and agrees
    return near or prediction.p_fail >= config.p_act


def is_uncertain(prediction: Prediction, mode: FailureMode, config: PolicyConfig) -> bool:
    """In the uncertain band, not actionable, and with a time estimate that is too wide or contradicts."""
    if not config.uncertain_low <= prediction.p_fail <= config.uncertain_high:
        return False
    if _acts(prediction, mode, config):
        return False
    wide = prediction.ttf_high_h - prediction.ttf_low_h > config.wide_interval_factor * mode.act_before_h
    likely = prediction.p_fail >= 0.5
    contradicts = likely != (prediction.ttf_h <= prediction.horizon_h)
    return wide or contradicts


def is_calm(prediction: Prediction, mode: FailureMode, config: PolicyConfig) -> bool:
    """Looks recovered: low probability and the earliest likely failure beyond the act window."""
    return (not prediction.sensor_faults and not prediction.ood
            and prediction.p_fail < config.recovered_p_below
            and prediction.ttf_low_h > mode.act_before_h)


def _choose(prediction: Prediction, mode: FailureMode, history: CaseHistory,
            config: PolicyConfig, now: datetime) -> Decision:
    if prediction.sensor_faults:
        return Decision(action=DecisionAction.OPEN_TICKET, priority="normal", rule="sensor_fault",
                        reason=f"sensor fault on {', '.join(prediction.sensor_faults)}: "
                               "a person checks before anyone acts on this data")
    if prediction.ood:
        detail = f" ({prediction.ood_detail})" if prediction.ood_detail else ""
        return Decision(action=DecisionAction.OPEN_TICKET, priority="normal", rule="ood",
                        reason=f"readings unlike anything the model was trained on{detail}")
    if _acts(prediction, mode, config):
        remaining_h = max(prediction.ttf_low_h, 0.0)
        return Decision(
            action=DecisionAction(mode.action.value), rule="near_failure",
            priority=_priority(remaining_h, config),
            due_by=min(now, prediction.ts) + timedelta(hours=remaining_h),
            reason=f"{mode.name}: p_fail {prediction.p_fail:.2f} within {prediction.horizon_h:g} h, "
                   f"earliest likely failure in {remaining_h:.0f} h "
                   f"(act window {mode.act_before_h:g} h)",
        )
    if is_uncertain(prediction, mode, config):
        # The run starts with this prediction when the history has none.
        dwell = now - (history.uncertain_since or now)
        if dwell >= config.uncertain_dwell:
            recent = ", ".join(f"{p:.2f}" for p in history.recent_p_fail[-6:])
            return Decision(
                action=DecisionAction.OPEN_TICKET, priority="low", rule="uncertain",
                reason=f"uncertain for {dwell.total_seconds() / 3600:.0f} h: p_fail "
                       f"{prediction.p_fail:.2f} (recent {recent or 'n/a'}), time to failure "
                       f"{prediction.ttf_low_h:.0f}-{prediction.ttf_high_h:.0f} h",
            )
        return Decision(action=DecisionAction.NONE, rule="uncertain_dwell",
                        reason=f"uncertain for {dwell.total_seconds() / 3600:.0f} h, "
                               f"less than the {config.uncertain_dwell.total_seconds() / 3600:g} h dwell")
    return Decision(action=DecisionAction.NONE, rule="healthy", reason="no action needed")


def _priority(remaining_h: float, config: PolicyConfig) -> str:
    if remaining_h <= config.urgent_within_h:
        return "urgent"
    if remaining_h <= config.high_within_h:
        return "high"
    return "normal"
