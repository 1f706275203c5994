"""Rolling features are pure, point-in-time and robust to arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import get_profile
from ingest.features import Reading, _spikes, _spikes_with_gaps, compute_baseline, compute_features

T0 = datetime(2026, 3, 1, tzinfo=UTC)
AC = get_profile("air_conditioner")


def _readings(values: list[float], step_h: float = 1.0) -> list[Reading]:
    return [Reading(device_id="ac-1", kind="air_conditioner", seq=i, ts=T0 + timedelta(hours=i * step_h),
                    metrics={"filter_dp_pa": v}) for i, v in enumerate(values)]


def test_slope_mean_delta_on_a_linear_rise() -> None:
    rs = _readings([60 + 2 * i for i in range(30)])  # +2 Pa per hour = 48 Pa per day
    baseline = compute_baseline(AC, rs)
    f = compute_features(AC, rs, baseline)
    assert f["filter_dp_pa__slope_per_day"] == pytest.approx(48.0)
    assert f["filter_dp_pa__last"] == 118
    window = [60 + 2 * i for i in range(6, 30)]
    assert f["filter_dp_pa__mean"] == pytest.approx(sum(window) / 24)
    first_six = [60 + 2 * i for i in range(AC.baseline_readings)]
    assert f["filter_dp_pa__delta"] == pytest.approx(sum(window) / 24 - sum(first_six) / len(first_six))
    assert f["filter_dp_pa__stuck"] == 1


def test_stuck_counts_the_trailing_run_and_order_does_not_matter() -> None:
    rs = _readings([60, 61, 62, 70, 70, 70, 70])
    f = compute_features(AC, list(reversed(rs)), {})
    assert f["filter_dp_pa__stuck"] == 4
    assert f == compute_features(AC, rs, {})


def test_missing_metric_has_no_features_and_empty_window_is_empty() -> None:
    assert compute_features(AC, [], {}) == {}
    f = compute_features(AC, _readings([60, 61]), {})
    assert "fan_current_a__mean" not in f
    assert f["filter_dp_pa__slope_per_day"] == 0.0  # fewer than three points: no trend claimed


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(0, 11), st.data())
def test_spikes_of_padded_windows_equal_the_general_neighbour_search(w: int, pad: int, data: st.DataObject) -> None:
    # The shortcut for windows whose only gaps are leading padding must count what the general
    # search for each value's present neighbours counts.
    pad = min(pad, w)
    levels = st.sampled_from([0.0, 1.0, 1.04, 1.5, 2.0, -1.0, 3.0, 1e-3])
    values = np.array(data.draw(st.lists(st.lists(levels, min_size=2, max_size=2), min_size=w, max_size=w)))
    values[:pad] = np.nan
    values = values[None, :, :]
    present = ~np.isnan(values)
    jump = np.array([0.03, 0.4])
    assert np.array_equal(_spikes(values, present, jump), _spikes_with_gaps(values, present, jump))
