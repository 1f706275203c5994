"""Scoring benchmark (not a test): the batch path against the one-vector-at-a-time baseline.

Uses the live models and real feature vectors of a Foresight database (run ``make demo`` first):

    .venv/bin/python benchmarks/scoring_latency.py [--database sqlite:///var/foresight.db] [--model-dir var/models]
                                           [--devices 100000] [--single 500]

Prints, side by side: ``score_many`` over N devices' latest vectors (the sweep after a burst),
the same vectors scored one at a time (the naive baseline, measured on a sample and extrapolated),
and the latency of scoring one device right after its reading (p50/p99 of ``score``) -- now (trees
compiled to numpy arrays, live versions cached for a second) and before (every call through
scikit-learn, a registry query per mode), on the same models and vectors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

import actions.db  # noqa: F401  (all tables on the metadata)
from ingest.db import FeatureHistoryRow, FeatureOnlineRow, make_engine
from ingest.features import FeatureVector
import predictors.model as model
from predictors import ModelRegistry, Scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite:///var/foresight.db")
    parser.add_argument("--model-dir", type=Path, default=Path("var/models"))
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=500, help="one-vector calls timed for p50/p99")
    args = parser.parse_args()

    engine = make_engine(args.database)
    with Session(engine) as s:
        kinds = dict(s.execute(select(FeatureOnlineRow.device_id, FeatureOnlineRow.kind)).all())
        rows = s.execute(select(FeatureHistoryRow.device_id, FeatureHistoryRow.ts, FeatureHistoryRow.n_readings,
                                FeatureHistoryRow.values).limit(50_000)).all()
    sample = [FeatureVector(d, kinds[d], ts, n, dict(v)) for d, ts, n, v in rows if d in kinds and n >= 12]
    if not sample:
        raise SystemExit(f"no feature vectors in {args.database}: run `make demo` first")
    vectors = [replace(sample[i % len(sample)], device_id=f"bench-{i}") for i in range(args.devices)]
    scorer = Scorer(ModelRegistry(engine, args.model_dir))
    now = datetime.now(UTC)
    scorer.score_many(vectors[:10], now=now)  # load models

    t = time.perf_counter()
    predictions = scorer.score_many(vectors, now=now)
    batch_s = time.perf_counter() - t

    n_base = min(1000, len(vectors))
    t = time.perf_counter()
    for v in vectors[:n_base]:
        scorer.score(v, now=now)
    per_vector_s = (time.perf_counter() - t) / n_base

    registry = ModelRegistry(engine, args.model_dir)
    single = {
        "now (compiled trees, live versions cached 1 s)": _latencies(Scorer(registry), vectors[: args.single], now),
        "before (scikit-learn per call, registry query per mode)": _before(registry, vectors[: args.single], now),
    }

    print(f"{len(vectors):,} devices ({len(sample):,} distinct real vectors), {len(predictions):,} predictions")
    print(f"{'path':<44}{'seconds':>10}{'µs / device':>14}")
    print(f"{'score_many (one batch per kind and mode)':<44}{batch_s:>10.2f}{batch_s / len(vectors) * 1e6:>14.1f}")
    print(f"{'baseline: score() per device (extrapolated)':<44}{per_vector_s * len(vectors):>10.1f}"
          f"{per_vector_s * 1e6:>14.1f}")
    print("one device right after its reading (score(), all of its failure modes):")
    print(f"  {'':<58}{'wall p50':>10}{'wall p99':>10}{'CPU p50':>10}{'CPU p99':>10}  (ms)")
    for name, (wall, cpu) in single.items():
        print(f"  {name:<58}" + "".join(f"{x:>10.2f}" for x in (_pct(wall, 50), _pct(wall, 99),
                                                                 _pct(cpu, 50), _pct(cpu, 99))))
    print("  (wall time includes waiting for a core on a loaded host; CPU time is this thread's own)")
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    engine.dispose()


def _pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q / 100 * len(sorted_ms)))]


def _latencies(scorer: Scorer, vectors: list[FeatureVector],
               now: datetime) -> tuple[list[float], list[float]]:
    """Sorted wall-clock and thread-CPU milliseconds of ``score`` per vector."""
    scorer.score_many(vectors[:5], now=now)
    wall, cpu = [], []
    for v in vectors:
        t, c = time.perf_counter(), time.thread_time()
        scorer.score(v, now=now)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return sorted(wall), sorted(cpu)


def _before(registry: ModelRegistry, vectors: list[FeatureVector],
            now: datetime) -> tuple[list[float], list[float]]:
    saved = model.COMPILED_MAX_ROWS
    model.COMPILED_MAX_ROWS = 0  # every batch through scikit-learn, as before
    try:
        return _latencies(Scorer(registry, live_cache_s=0.0), vectors, now)
    finally:
        model.COMPILED_MAX_ROWS = saved


if __name__ == "__main__":
    main()
