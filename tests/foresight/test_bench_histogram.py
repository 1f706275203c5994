"""The ingest benchmark's latency histogram: whole milliseconds, bins allocated once, a soak cannot grow it."""

from __future__ import annotations

import sys

from foresight.ingest_bench import _hist_quantile
from foresight.ingest_bench_consumers import LatencyHistogram


def test_lags_land_in_whole_millisecond_bins_and_the_extremes_are_clipped() -> None:
    h = LatencyHistogram()
    h.add((0.0015, 0.0019, 0.2, 500.0, -1.0))
    h.add(())
    assert h.counts() == {0: 1, 1: 2, 200: 1, LatencyHistogram.MAX_MS: 1}


def test_quantiles_of_the_counts() -> None:
    h = LatencyHistogram()
    h.add([(i + 0.5) / 1000 for i in range(100)])  # one in each bin 0 .. 99 ms
    assert _hist_quantile(h.counts(), 0.5) == 50
    assert _hist_quantile(h.counts(), 0.99) == 99


def test_many_distinct_latencies_do_not_grow_it() -> None:
    h = LatencyHistogram()
    before = sys.getsizeof(h._bins)
    h.add([i / 1000 for i in range(100_000)])
    assert sys.getsizeof(h._bins) == before
    assert sum(h.counts().values()) == 100_000
