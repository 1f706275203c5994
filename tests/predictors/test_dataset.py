"""Training frames: features equal the live store's, use only the past, and labels respect censoring."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.contract import PROFILES
from ingest.features import Reading, compute_baseline, compute_features
from predictors.dataset import (
    FailureLabel,
    all_feature_names,
    build_frames,
    device_feature_matrix,
    feature_value,
    input_matrix,
    min_readings,
)
from tests.predictors.synth import START, make_fleet

AC = PROFILES["air_conditioner"]
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def small_fleet():
    return make_fleet(n_ac=4, n_rc=6, days=20, seed=3)


def _rows(frame):
    """{(device, ts): (features, y, ttf)} of a frame."""
    return {(d, t): (x, y, ttf) for d, t, x, y, ttf
            in zip(frame.device_ids, frame.ts, frame.X, frame.y, frame.ttf_h, strict=True)}


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_vectorised_features_equal_compute_features(kind):
    """Gaps, missing metrics, repeated (stuck) values: every row matches the live store's function."""
    profile = PROFILES[kind]
    rng = np.random.default_rng(7)
    readings, t = [], START
    for i in range(120):
        t += timedelta(hours=float(rng.exponential(profile.reading_interval_h)))
        metrics = {s.name: (100.0 if 40 <= i < 55 else float(rng.normal(100, 5)))
                   for s in profile.metrics if rng.random() > 0.15}
        readings.append(Reading("d1", kind, i, t, metrics))
    matrix = device_feature_matrix(profile, readings)
    names = all_feature_names(profile)
    for i in range(len(readings)):
        expected = compute_features(profile, readings[max(0, i - profile.window + 1):i + 1],
                                    compute_baseline(profile, readings[:i + 1]))
        got = {n: v for n, v in zip(names, matrix[i], strict=True) if not np.isnan(v)}
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (i, name)


def test_ratio_features_in_frames_equal_those_derived_from_the_live_vector():
    """A mode's ratio features (purified over feed TDS) are derived the same way in training and
    scoring, from the stored statistics, point in time; a missing part leaves the ratio missing."""
    wp = PROFILES["water_purifier"]
    mode = wp.mode("filter_exhaustion")
    assert "tds_out_ppm/tds_in_ppm__mean" in mode.features
    rng = np.random.default_rng(5)
    readings, t = [], START
    for i in range(60):
        t += timedelta(hours=float(rng.exponential(3.0)))
        metrics = {"tds_in_ppm": float(round(rng.normal(300, 10))), "flow_lpm": float(rng.normal(1.8, 0.03)),
                   "tds_out_ppm": 10.0 + 0.2 * i + float(rng.normal(0, 0.5))}
        if i % 7 == 3 or 30 <= i < 50:  # the feed sensor is not reported for a while: no ratio then
            del metrics["tds_in_ppm"]
        readings.append(Reading("wp-1", "water_purifier", i, t, metrics))
    failures = [FailureLabel("wp-1", "filter_exhaustion", t + 30 * HOUR)]
    frame = build_frames(readings, failures)[("water_purifier", "filter_exhaustion")]
    first = min_readings(wp) - 1
    assert frame.n_rows == len(readings) - first
    missing = 0
    lives = []
    for row, i in zip(frame.X, range(first, len(readings)), strict=True):
        live = compute_features(wp, readings[max(0, i - wp.window + 1):i + 1],
                                compute_baseline(wp, readings[:i + 1]))
        lives.append(live)
        for j, name in enumerate(mode.features):
            want = feature_value(live, name)
            if want is None:
                assert np.isnan(row[j]), (i, name)
                missing += "/" in name
            else:
                assert row[j] == pytest.approx(want, rel=1e-9, abs=1e-12), (i, name)
    assert missing > 0
    np.testing.assert_allclose(input_matrix(lives, mode.features), frame.X, rtol=1e-9, atol=1e-12)
    last = compute_features(wp, readings[-wp.window:], compute_baseline(wp, readings))
    assert feature_value(last, "tds_out_ppm/tds_in_ppm__mean") == pytest.approx(
        last["tds_out_ppm__mean"] / last["tds_in_ppm__mean"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut_h=st.floats(min_value=30.0, max_value=20 * 24.0))
def test_a_row_does_not_change_when_later_readings_are_deleted(small_fleet, cut_h):
    cut = START + timedelta(hours=cut_h)
    later = small_fleet.end + timedelta(days=400)  # keep every row labelled: compare features only
    full = build_frames(small_fleet.readings, small_fleet.failures, observed_until=later)
    past = build_frames([r for r in small_fleet.readings if r.ts <= cut], small_fleet.failures,
                        observed_until=later)
    compared = 0
    for key, frame in past.items():
        reference = _rows(full[key])
        for row_key, (x, _y, _ttf) in _rows(frame).items():
            np.testing.assert_array_equal(x, reference[row_key][0])
            compared += 1
    assert compared > 0 or cut_h < 40


def _ac_readings(device_id, hours, *, dp=lambda h: 100.0):
    return [Reading(device_id, "air_conditioner", i, START + i * HOUR,
                    {"filter_dp_pa": dp(i), "fan_current_a": 1.5, "run_hours": float(i)})
            for i in range(hours)]


def test_labels_follow_the_next_failure_and_censored_rows_are_dropped():
    failing = _ac_readings("f", 200, dp=lambda h: 80.0 + h)
    healthy = _ac_readings("h", 200)
    failed_at = START + 200 * HOUR
    frame = build_frames(failing + healthy, [FailureLabel("f", "filter_clogging", failed_at)])[
        ("air_conditioner", "filter_clogging")]
    ts_h = (frame.ts - np.datetime64(START.replace(tzinfo=None), "us")) / np.timedelta64(1, "h")

    f = frame.device_ids == "f"
    first = min_readings(AC) - 1
    assert ts_h[f].min() == first                         # the window is half full from here
    assert np.allclose(frame.ttf_h[f], 200 - ts_h[f])     # exact time to the failure
    assert np.array_equal(frame.y[f], (200 - ts_h[f] <= 48).astype(int))

    h = frame.device_ids == "h"                           # never failed: censored at 199 h
    assert ts_h[h].max() == 199 - 48                      # the last 48 h have an unknown outcome
    assert not frame.y[h].any()
    assert np.isnan(frame.ttf_h[h]).all()                 # observed for less than the 30-day cap


def test_long_observed_healthy_rows_carry_the_capped_time_to_failure():
    readings = _ac_readings("h", 40)
    frame = build_frames(readings, [], observed_until=START + timedelta(days=60),
                         ttf_cap_h=720.0)[("air_conditioner", "filter_clogging")]
    assert frame.n_rows == 40 - (min_readings(AC) - 1)
    assert not frame.y.any()
    assert np.all(frame.ttf_h == 720.0)


def test_only_the_next_failure_of_the_same_mode_counts():
    readings = [Reading("rc", "rice_cooker", i, START + i * 8 * HOUR,
                        {"time_to_boil_s": 900.0, "heater_power_w": 1000.0, "peak_temp_c": 125.0})
                for i in range(40)]
    failures = [FailureLabel("rc", "scale_buildup", START + 100 * HOUR),
                FailureLabel("rc", "scale_buildup", START + 300 * HOUR)]
    frames = build_frames(readings, failures, observed_until=START + 400 * HOUR)
    scale = frames[("rice_cooker", "scale_buildup")]
    wear = frames[("rice_cooker", "heating_element_wear")]
    ts_h = (scale.ts - np.datetime64(START.replace(tzinfo=None), "us")) / np.timedelta64(1, "h")
    before = ts_h <= 300
    expected = np.where(ts_h <= 100, 100 - ts_h, 300 - ts_h)
    assert np.allclose(scale.ttf_h[before], expected[before])
    assert np.isnan(scale.ttf_h[~before]).all() and not scale.y[~before].any()  # censored, 88+ h seen
    assert not wear.y.any()                                # scale failures are not wear failures
    assert scale.X.shape[1] == len(PROFILES["rice_cooker"].mode("scale_buildup").features)


def test_unknown_kinds_and_short_devices_give_no_rows():
    odd = [Reading("x", "toaster", i, START + i * HOUR, {"crumbs": 1.0}) for i in range(50)]
    short = _ac_readings("s", min_readings(AC) - 1)
    assert build_frames(odd + short, []) == {}
