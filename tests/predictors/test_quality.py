"""Data-quality checks: spikes and uncorroborated drift are the sensor, not the appliance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ingest.contract import PROFILES
from ingest.features import Reading, compute_baseline, compute_features
from predictors.dataset import all_feature_names, device_feature_matrix
from predictors.quality import sensor_faults

T0 = datetime(2026, 2, 1, tzinfo=UTC)
AC = PROFILES["air_conditioner"]
RC = PROFILES["rice_cooker"]
CLOG = AC.mode("filter_clogging").metrics


def readings(profile, rows, hours=1.0):
    return [Reading(device_id="d", kind=profile.kind, seq=i, ts=T0 + timedelta(hours=i * hours), metrics=m)
            for i, m in enumerate(rows)]


def ac_rows(n, rng, dp=lambda i: 60.0, fan=lambda i: 0.8):
    return [{"filter_dp_pa": round(dp(i) + rng.normal(0, 2), 1), "fan_current_a": round(fan(i) + rng.normal(0, 0.01), 3),
             "run_hours": float(i)} for i in range(n)]


def features(profile, rs):
    return compute_features(profile, rs[-profile.window:], compute_baseline(profile, rs))


def test_spikes_counted_alike_by_the_live_store_and_the_training_frames() -> None:
    rng = np.random.default_rng(3)
    rows = ac_rows(80, rng)
    for i in (20, 21, 40, 55, 79):  # 20/21: a pair is not an isolated spike; 79: no next reading yet
        rows[i]["filter_dp_pa"] *= 3.0
    del rows[30]["filter_dp_pa"]      # a dropped metric between spikes
    rs = readings(AC, rows)
    matrix = device_feature_matrix(AC, rs)
    col = all_feature_names(AC).index("filter_dp_pa__spikes")
    for i in range(len(rs)):
        live = compute_features(AC, rs[max(0, i - AC.window + 1):i + 1], compute_baseline(AC, rs[:i + 1]))
        assert matrix[i, col] == live["filter_dp_pa__spikes"], i
    assert features(AC, rs[:42])["filter_dp_pa__spikes"] == 1


def test_a_spiking_sensor_is_a_sensor_fault() -> None:
    rng = np.random.default_rng(1)
    rows = ac_rows(40, rng)
    rows[-5]["filter_dp_pa"] = 240.0
    assert sensor_faults(AC, CLOG, features(AC, readings(AC, rows))) == ("filter_dp_pa",)


def test_drift_without_its_partner_is_a_fault_and_clogging_is_not() -> None:
    rng = np.random.default_rng(2)
    n = 60
    drifting = ac_rows(n, rng, dp=lambda i: 60.0 * (1 + 0.02 * i))           # sensor only
    clogging = ac_rows(n, rng, dp=lambda i: 60.0 + 2.0 * i, fan=lambda i: 0.8 * (1 + 0.0015 * 2.0 * i))
    assert sensor_faults(AC, CLOG, features(AC, readings(AC, drifting))) == ("filter_dp_pa",)
    assert sensor_faults(AC, CLOG, features(AC, readings(AC, clogging))) == ()


def test_no_verdict_when_the_partner_is_not_reported() -> None:
    rng = np.random.default_rng(2)
    rows = ac_rows(60, rng, dp=lambda i: 60.0 * (1 + 0.02 * i))
    for r in rows:
        del r["fan_current_a"]
    assert sensor_faults(AC, CLOG, features(AC, readings(AC, rows))) == ()


@pytest.mark.parametrize("stuck", [True, False])
def test_stuck_still_detected(stuck: bool) -> None:
    rng = np.random.default_rng(5)
    rows = [{"time_to_boil_s": 700.0 if stuck else 700 + rng.normal(0, 10), "heater_power_w": 650 + rng.normal(0, 5),
             "peak_temp_c": 125 + rng.normal(0, 1.5)} for _ in range(20)]
    faults = sensor_faults(RC, RC.mode("scale_buildup").metrics, features(RC, readings(RC, rows, hours=8)))
    assert faults == (("time_to_boil_s",) if stuck else ())
