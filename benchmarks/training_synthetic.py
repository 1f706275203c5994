"""Benchmark (not a test): frame building, training and scoring on a ~200k-reading synthetic fleet.

Run: ``.venv/bin/python benchmarks/training_synthetic.py`` (the fleet is ``tests/predictors/synth.py``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.contract import PROFILES  # noqa: E402
from ingest.features import FeatureVector  # noqa: E402
from predictors import Scorer, build_frames, train_all  # noqa: E402
from tests.predictors.conftest import new_registry  # noqa: E402
from tests.predictors.synth import make_fleet  # noqa: E402


def main() -> None:
    t = time.perf_counter()
    fleet = make_fleet(n_ac=150, n_rc=300, days=45, seed=0)
    print(f"synthetic fleet: {len(fleet.readings):,} readings, {len(fleet.failures)} failures "
          f"({time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    frames = build_frames(fleet.readings, fleet.failures)
    print(f"build_frames: {time.perf_counter() - t:.2f} s")
    for (kind, mode), f in frames.items():
        print(f"  {kind}.{mode}: {f.n_rows:,} rows, {f.n_positives:,} positives")

    with tempfile.TemporaryDirectory() as tmp:
        engine, registry = new_registry(Path(tmp))
        t = time.perf_counter()
        reports = train_all(fleet.readings, fleet.failures, registry=registry, now=fleet.end)
        print(f"train_all (frames + hold-out fit + full fit, 3 modes): {time.perf_counter() - t:.1f} s")
        for r in reports:
            s = r.summary
            print(f"  {r.version or r.kind + '.' + r.mode}: live={r.live} {r.skipped} "
                  f"brier={s.get('brier')} (base rate {s.get('brier_base_rate')}) auc={s.get('auc')} "
                  f"ttf_mae_h={s.get('ttf_mae_h')} coverage={s.get('ttf_interval_coverage')} "
                  f"fit={s.get('fit_seconds')} s")

        scorer = Scorer(registry)
        frame = frames[("air_conditioner", "filter_clogging")]
        vectors = [FeatureVector(f"ac-{i}", "air_conditioner", fleet.end, 24,
                                 dict(zip(frame.features, frame.X[i % frame.n_rows], strict=True)))
                   for i in range(100_000)]
        scorer.score(vectors[0], now=fleet.end)
        t = time.perf_counter()
        for v in vectors[:200]:
            scorer.score(v, now=fleet.end)
        print(f"score (one vector, {len(PROFILES['air_conditioner'].failure_modes)} mode): "
              f"{(time.perf_counter() - t) / 200 * 1000:.2f} ms")
        t = time.perf_counter()
        preds = scorer.score_many(vectors, now=fleet.end)
        print(f"score_many: {len(preds):,} predictions in {time.perf_counter() - t:.2f} s")
        engine.dispose()


if __name__ == "__main__":
    main()
