"""Scoring benchmark (not a test): the batch path against the one-vector-at-a-time baseline.

Uses the live models and real feature vectors of a Foresight database (run ``make demo`` first):

    .venv/bin/python benchmarks/scoring_latency.py [--database sqlite:///var/foresight.db] [--model-dir var/models]
                                           [--devices 100000] [--single 500]

Prints, side by side: ``score_many`` over N devices' latest vectors (the sweep after a burst),
the same vectors scored one at a time (the naive baseline, measured on a sample and extrapolated),
and the latency of scoring one device right after its reading (p50/p99 of ``score``).
"""

from __future__ import annotations

import argparse
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

    latencies = []
    for v in vectors[: args.single]:
        t = time.perf_counter()
        scorer.score(v, now=now)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]

    print(f"{len(vectors):,} devices ({len(sample):,} distinct real vectors), {len(predictions):,} predictions")
    print(f"{'path':<44}{'seconds':>10}{'µs / device':>14}")
    print(f"{'score_many (one batch per kind and mode)':<44}{batch_s:>10.2f}{batch_s / len(vectors) * 1e6:>14.1f}")
    print(f"{'baseline: score() per device (extrapolated)':<44}{per_vector_s * len(vectors):>10.1f}"
          f"{per_vector_s * 1e6:>14.1f}")
    print(f"one device after its reading: p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms "
          f"(all of its failure modes)")
    engine.dispose()


if __name__ == "__main__":
    main()
