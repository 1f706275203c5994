"""The decision policy, one table row per rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actions import CaseHistory, DecisionAction, PolicyConfig, UnknownFailureMode, decide
from actions.policy import failure_mode, is_calm, is_uncertain

from .helpers import prediction

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
NONE, NOTIFY, BOOK, TICKET = (DecisionAction.NONE, DecisionAction.NOTIFY_HOMEOWNER,
                              DecisionAction.BOOK_TECHNICIAN, DecisionAction.OPEN_TICKET)
# Rice cooker scale_buildup: act_before 120 h, horizon 48 h.
HEALTHY: dict[str, Any] = dict(p_fail=0.05, ttf_h=500.0, ttf_low_h=300.0, ttf_high_h=800.0)
NEAR: dict[str, Any] = dict(p_fail=0.5, ttf_h=80.0, ttf_low_h=60.0, ttf_high_h=110.0)
# In the band, not actionable (ttf_low beyond 120 h), interval 370 h wide.
UNCERTAIN: dict[str, Any] = dict(p_fail=0.5, ttf_h=300.0, ttf_low_h=130.0, ttf_high_h=500.0)


@dataclass(frozen=True)
class Row:
    name: str
    pred: dict[str, Any]
    action: DecisionAction
    rule: str
    history: CaseHistory = field(default_factory=CaseHistory)
    priority: str | None = None
    due_in_h: float | None = None


ROWS = [
    Row("healthy", HEALTHY, NONE, "healthy"),
    Row("near failure notifies with due_by", NEAR, NOTIFY, "near_failure", priority="normal", due_in_h=60),
    Row("near and within 48 h is high", {**NEAR, "ttf_low_h": 30.0}, NOTIFY, "near_failure", priority="high",
        due_in_h=30),
    Row("near and within 24 h is urgent", {**NEAR, "ttf_low_h": 10.0}, NOTIFY, "near_failure",
        priority="urgent", due_in_h=10),
    Row("negative ttf_low is due now", {**NEAR, "ttf_low_h": -5.0}, NOTIFY, "near_failure",
        priority="urgent", due_in_h=0),
    Row("near by time estimate alone, median agrees", {**NEAR, "p_fail": 0.01}, NOTIFY, "near_failure",
        due_in_h=60),
    Row("low bound near but median far and p below floor", {**NEAR, "p_fail": 0.1, "ttf_h": 400.0},
        NONE, "healthy"),
    Row("p above p_act alone acts", {**HEALTHY, "p_fail": 0.75}, NOTIFY, "near_failure", priority="normal"),
    Row("technician mode books", {**NEAR, "kind": "air_conditioner", "mode": "filter_clogging"}, BOOK,
        "near_failure", due_in_h=60),
    Row("sensor fault opens a ticket", {**HEALTHY, "sensor_faults": ("peak_temp_c",)}, TICKET,
        "sensor_fault", priority="normal"),
    Row("sensor fault wins over near failure", {**NEAR, "sensor_faults": ("peak_temp_c",)}, TICKET,
        "sensor_fault"),
    Row("ood opens a ticket", {**NEAR, "ood": True, "ood_detail": "heater_power_w far out"}, TICKET, "ood"),
    Row("open case suppresses", NEAR, NONE, "open_case", CaseHistory(open_case_action=NOTIFY)),
    Row("open case suppresses bad data", {**NEAR, "ood": True}, NONE, "open_case",
        CaseHistory(open_case_action=NOTIFY)),
    Row("open ticket case suppresses another ticket", {**HEALTHY, "sensor_faults": ("x",)}, NONE,
        "open_case", CaseHistory(open_case_action=TICKET)),
    Row("open ticket case escalates to the mode's action", NEAR, NOTIFY, "near_failure",
        CaseHistory(open_case_action=TICKET)),
    Row("cooldown suppresses", NEAR, NONE, "cooldown", CaseHistory(last_closed_at=NOW - 10 * H)),
    Row("cooldown yields to urgent", {**NEAR, "ttf_low_h": 10.0}, NOTIFY, "near_failure",
        CaseHistory(last_closed_at=NOW - 10 * H), priority="urgent"),
    Row("after the cooldown acts again", NEAR, NOTIFY, "near_failure",
        CaseHistory(last_closed_at=NOW - 73 * H)),
    Row("uncertain run starting now waits", UNCERTAIN, NONE, "uncertain_dwell"),
    Row("brief uncertain pass waits", UNCERTAIN, NONE, "uncertain_dwell",
        CaseHistory(uncertain_since=NOW - 6 * H)),
    Row("long uncertain dwell opens a ticket", UNCERTAIN, TICKET, "uncertain",
        CaseHistory(uncertain_since=NOW - 24 * H, recent_p_fail=(0.45, 0.5)), priority="low"),
    Row("contradicting but narrow interval is uncertain",
        {"p_fail": 0.6, "ttf_h": 140.0, "ttf_low_h": 130.0, "ttf_high_h": 160.0}, TICKET, "uncertain",
        CaseHistory(uncertain_since=NOW - 30 * H)),
    Row("in the band but consistent and narrow is fine",
        {"p_fail": 0.35, "ttf_h": 140.0, "ttf_low_h": 130.0, "ttf_high_h": 160.0}, NONE, "healthy",
        CaseHistory(uncertain_since=NOW - 30 * H)),
    Row("band but actionable is not uncertain", NEAR, NOTIFY, "near_failure",
        CaseHistory(uncertain_since=NOW - 30 * H)),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decide(row: Row) -> None:
    decision = decide(prediction(ts=NOW, **row.pred), row.history, PolicyConfig(), NOW)
    assert (decision.action, decision.rule) == (row.action, row.rule), decision.reason
    assert decision.reason
    if row.priority is not None:
        assert decision.priority == row.priority
    if row.due_in_h is not None:
        assert decision.due_by == NOW + timedelta(hours=row.due_in_h)
    if row.action is NONE or row.action is TICKET:
        assert decision.due_by is None


def test_due_by_counts_from_a_stale_prediction() -> None:
    decision = decide(prediction(ts=NOW - 10 * H, **NEAR), CaseHistory(), PolicyConfig(), NOW)
    assert decision.due_by == NOW - 10 * H + 60 * H


def test_thresholds_come_from_the_config() -> None:
    strict = PolicyConfig(p_act_floor=0.6)
    wide = {**NEAR, "ttf_h": 400.0}
    assert decide(prediction(ts=NOW, **wide), CaseHistory(), strict, NOW).action is NONE
    assert decide(prediction(ts=NOW, **wide), CaseHistory(), PolicyConfig(median_act_factor=4), NOW).action is NOTIFY
    short_cooldown = PolicyConfig(cooldown=timedelta(hours=1))
    history = CaseHistory(last_closed_at=NOW - 10 * H)
    assert decide(prediction(ts=NOW, **NEAR), history, short_cooldown, NOW).action is NOTIFY


def test_unknown_mode_is_an_actions_error() -> None:
    with pytest.raises(UnknownFailureMode):
        decide(prediction(ts=NOW, mode="exploded"), CaseHistory(), PolicyConfig(), NOW)
    with pytest.raises(UnknownFailureMode):
        decide(prediction(ts=NOW, kind="toaster"), CaseHistory(), PolicyConfig(), NOW)


def test_uncertain_and_calm_helpers() -> None:
    config = PolicyConfig()
    mode = failure_mode(prediction(ts=NOW))
    assert is_uncertain(prediction(ts=NOW, **UNCERTAIN), mode, config)
    assert not is_uncertain(prediction(ts=NOW, **NEAR), mode, config)
    assert is_calm(prediction(ts=NOW, **HEALTHY), mode, config)
    assert not is_calm(prediction(ts=NOW, **HEALTHY, sensor_faults=("peak_temp_c",)), mode, config)
    assert not is_calm(prediction(ts=NOW, **{**HEALTHY, "ttf_low_h": 100.0}), mode, config)


@pytest.mark.parametrize("bad", [dict(p_act=0.1), dict(uncertain_low=0.8), dict(urgent_within_h=100.0),
                                 dict(cooldown=-H), dict(wide_interval_factor=0.0)])
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**bad)
