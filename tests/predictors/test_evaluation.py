"""Evaluation metrics: what counts as a true, false or unresolved alert, recall at 48 h, Brier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from predictors.evaluation import (
    Alert,
    Failure,
    brier,
    calibration_curve,
    evaluate_alerts,
    horizon_labels,
    lead_curve,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def alert(device: str, at_h: float, mode: str = "m") -> Alert:
    return Alert(device_id=device, kind="k", mode=mode, at=T0 + at_h * H)


def failure(device: str, at_h: float, mode: str = "m") -> Failure:
    return Failure(device_id=device, kind="k", mode=mode, at=T0 + at_h * H)


SEEN = {d: T0 for d in ("a", "b", "c", "d")}
LAST = {d: T0 + 2000 * H for d in ("a", "b", "c", "d")}


def figures(alerts, failures, **kw):
    return evaluate_alerts(alerts, failures, device_hours=4 * 2000.0, cases=kw.pop("cases", len(alerts)),
                           escalations=kw.pop("escalations", 0), first_seen=SEEN, last_seen=LAST, **kw)


@pytest.mark.parametrize(("alerts", "failures", "recall", "precision", "false", "lead"), [
    # caught 100 h ahead: true alert, recall 1
    ([alert("a", 400)], [failure("a", 500)], 1.0, 1.0, 0, 100.0),
    # only 20 h ahead: true alert (it came before the failure) but not caught at 48 h
    ([alert("a", 480)], [failure("a", 500)], 0.0, 1.0, 0, 20.0),
    # a failure of another mode does not make the alert true
    ([alert("a", 400)], [failure("a", 500, mode="other")], 0.0, 0.0, 1, None),
    # 20 days early: outside the 14-day match window -> false alert, failure missed
    ([alert("a", 20)], [failure("a", 500)], 0.0, 0.0, 1, None),
    # an alert after the failure belongs to no failure
    ([alert("a", 600)], [failure("a", 500)], 0.0, 0.0, 1, None),
    # two failures, the alert counts for the next one only
    ([alert("a", 400)], [failure("a", 500), failure("a", 900)], 0.5, 1.0, 0, 100.0),
])
def test_alerts_against_failures(alerts, failures, recall, precision, false, lead) -> None:
    f = figures(alerts, failures)
    assert (f["recall_48h"], f["precision"], f["false_alerts"], f["median_lead_time_h"]) == (
        recall, precision, false, lead)


def test_an_alert_the_history_cannot_resolve_is_neither_true_nor_false() -> None:
    f = figures([alert("a", 1900), alert("b", 400)], [failure("b", 450)])
    assert (f["alerts"], f["alerts_unresolved"], f["false_alerts"], f["precision"]) == (2, 1, 0, 1.0)


def test_failures_in_the_warmup_are_not_evaluated() -> None:
    f = figures([], [failure("a", 24), failure("b", 500)])
    assert (f["failures"], f["failures_in_warmup"], f["recall_48h"]) == (1, 1, 0.0)


def test_an_alert_before_a_failure_in_the_warmup_is_true_but_not_recall() -> None:
    # the failure at 100 h is in the warm-up (not evaluated) but it happened: the alert is true
    f = figures([alert("a", 40)], [failure("a", 100), failure("b", 500)])
    assert (f["failures"], f["true_alerts"], f["false_alerts"], f["precision"], f["recall_48h"],
            f["median_lead_time_h"]) == (1, 1, 0, 1.0, 0.0, None)
    curve = lead_curve([alert("a", 40)], [failure("a", 100)], first_seen=SEEN, last_seen=LAST, leads_h=(48,))
    assert curve == [{"lead_h": 48, "recall": None, "precision": 1.0}]


def test_rates_per_device_month_and_escalations() -> None:
    f = figures([alert("a", 100), alert("b", 100)], [], cases=4, escalations=1)
    months = 4 * 2000 / (30.4375 * 24)
    assert f["false_alerts_per_1000_device_months"] == round(2 * 1000 / months, 2)
    assert f["escalation_rate"] == 0.25


def test_lead_curve_falls_as_more_lead_is_required() -> None:
    curve = lead_curve([alert("a", 400), alert("b", 470)], [failure("a", 500), failure("b", 500)],
                       first_seen=SEEN, last_seen=LAST, leads_h=(0, 24, 48, 120))
    assert [c["recall"] for c in curve] == [1.0, 1.0, 0.5, 0.0]
    assert [c["precision"] for c in curve] == [1.0, 1.0, 0.5, 0.0]


def test_horizon_labels_and_censoring() -> None:
    keys = np.array(["k.m"] * 3, dtype=object)
    devices = np.array(["a", "a", "a"], dtype=object)
    ts = np.array([(T0 + h * H).timestamp() for h in (460, 100, 1990)])
    y = horizon_labels(keys, devices, ts, failures=[failure("a", 500)], horizons_h={"k.m": 48.0},
                       last_seen_s={"a": (T0 + 2000 * H).timestamp()})
    assert y[0] == 1.0 and y[1] == 0.0 and np.isnan(y[2])


def test_brier_and_calibration() -> None:
    p = np.array([0.1, 0.1, 0.9, 0.9, 0.5])
    y = np.array([0.0, 0.0, 1.0, 1.0, np.nan])
    assert brier(p, y) == pytest.approx(0.01)
    curve = calibration_curve(p, y)
    assert [(round(c["p_mean"], 2), c["observed"], c["n"]) for c in curve] == [(0.1, 0.0, 2), (0.9, 1.0, 2)]
    assert brier(p[:0], y[:0]) is None
