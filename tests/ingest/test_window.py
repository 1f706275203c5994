"""The online row's packed state: many at once equals one by one, and it reads back what was packed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ingest.window import OnlineState, Window, pack_many, state_header, unpack_many

METRICS = ["filter_dp_pa", "fan_current_a", "power_w"]
floats = st.floats(allow_nan=True, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(g=st.integers(1, 5), n=st.integers(1, 30), data=st.data())
def test_packing_many_states_equals_packing_each_and_reads_back(g: int, n: int, data: st.DataObject) -> None:
    m = len(METRICS)
    ts = data.draw(arrays(np.int64, (g, n), elements=st.integers(0, 2**62)))
    seq = data.draw(arrays(np.int64, (g, n), elements=st.integers(0, 2**40)))
    values = data.draw(arrays(np.float64, (g, n, m), elements=floats))
    baseline = data.draw(arrays(np.float64, (g, m), elements=floats))
    complete = np.array(data.draw(st.lists(st.booleans(), min_size=g, max_size=g)))
    packed = pack_many(ts, seq, values, baseline, complete, METRICS)
    one_by_one = [OnlineState(Window(ts[i], seq[i], values[i]), baseline[i], bool(complete[i])).pack(METRICS)
                  for i in range(g)]
    assert packed == one_by_one
    names, length, flag = state_header(packed[0])
    assert (names, length, flag) == ("\x1f".join(METRICS).encode(), n, bool(complete[0]))
    records = unpack_many(packed, len(names), n, m)
    assert np.array_equal(records["ts"], ts) and np.array_equal(records["seq"], seq)
    assert np.array_equal(records["values"].reshape(g, n, m), values, equal_nan=True)
    assert np.array_equal(records["baseline"], baseline, equal_nan=True)
    assert records["complete"].astype(bool).tolist() == complete.tolist()
    state = OnlineState.unpack(packed[-1], METRICS)
    assert np.array_equal(state.window.values, values[-1], equal_nan=True)
    assert state.complete == bool(complete[-1])


def test_a_state_packed_under_other_metrics_maps_its_columns_by_name() -> None:
    window = Window(np.array([10, 20]), np.array([1, 2]), np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    packed = OnlineState(window, np.array([0.5, 1.5, 2.5]), True).pack(METRICS)
    state = OnlineState.unpack(packed, ["power_w", "filter_dp_pa", "run_hours"])
    assert np.array_equal(state.window.values, [[3.0, 1.0, np.nan], [6.0, 4.0, np.nan]], equal_nan=True)
    assert np.array_equal(state.baseline, [2.5, 0.5, np.nan], equal_nan=True)
    assert state.complete is False  # a metric it never saw cannot have a complete baseline
    assert OnlineState.unpack(packed, METRICS).complete is True
