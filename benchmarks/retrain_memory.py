"""Peak memory of the scheduled retrain, streaming vs reading everything at once (not a test).

    .venv/bin/python benchmarks/retrain_memory.py [--devices N] [--days D] [--lookback-days L]

Stores a synthetic air-conditioner fleet (``tests/predictors/synth``, hourly readings) in a SQLite
database with a technician's ``confirmed_fault`` label per failure, trains a champion, then runs the
retrain twice, each in a fresh process, side by side:

* **all at once** (the retrain before streaming): every reading of the lookback read into one list
  (``actions.learning.stored_readings``), then ``predictors.retrain.retrain`` on it;
* **streamed** (``actions.learning.retrain_from_outcomes``): a chunk of devices at a time
  (``stored_history``), frames built per chunk and concatenated.

Prints each process's peak resident set size (``ru_maxrss``), wall time and training rows. The fits
are kept small (5 boosting rounds) so that the figure is about the data, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import actions.db  # noqa: E402,F401  (the labels table)
from actions.learning import outcome_labels, retrain_from_outcomes, stored_readings  # noqa: E402
from actions.tickets import record_label  # noqa: E402
from ingest.db import ReadingRow, create_schema, make_engine  # noqa: E402
from predictors import ModelRegistry, train_all  # noqa: E402
from predictors.retrain import retrain  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from tests.predictors.conftest import SYNTH_PROFILES  # noqa: E402
from tests.predictors.synth import make_fleet  # noqa: E402

AC = {"air_conditioner": SYNTH_PROFILES["air_conditioner"]}
PARAMS = {"max_iter": 5, "importance_repeats": 1}


def setup(work: Path, *, devices: int, days: float) -> str:
    """The database with the fleet's readings and labels and a live champion; returns ``now``."""
    fleet = make_fleet(n_ac=devices, n_rc=0, days=days, seed=11)
    engine = make_engine(f"sqlite:///{work / 'f.db'}")
    create_schema(engine)
    rows = [{"device_id": r.device_id, "seq": r.seq, "ts": r.ts, "kind": r.kind, "metrics": dict(r.metrics),
             "received_at": r.ts} for r in fleet.readings]
    with Session(engine) as s, s.begin():
        for i in range(0, len(rows), 20_000):
            s.execute(insert(ReadingRow), rows[i:i + 20_000])
        for f in fleet.failures:
            record_label(s, device_id=f.device_id, kind="air_conditioner", mode=f.mode, source="technician",
                         outcome="confirmed_fault", now=f.failed_at)
    registry = ModelRegistry(engine, work / "models")
    train_all(fleet.readings[: len(fleet.readings) // 4], fleet.failures, registry=registry, now=fleet.end,
              profiles=AC, model_params=PARAMS, min_positives=5)
    engine.dispose()
    print(f"fleet: {devices} air conditioners x {days:g} days = {len(rows):,} readings, "
          f"{len(fleet.failures)} confirmed faults", flush=True)
    return (fleet.end + timedelta(hours=1)).isoformat()


def run_variant(work: Path, variant: str, now_iso: str, lookback_days: float) -> None:
    """One retrain in this process; prints its figures as JSON."""
    from datetime import datetime

    now = datetime.fromisoformat(now_iso)
    engine = make_engine(f"sqlite:///{work / 'f.db'}")
    registry = ModelRegistry(engine, work / "models")
    lookback = timedelta(days=lookback_days)
    started = time.perf_counter()
    if variant == "all_at_once":
        readings = stored_readings(engine, kinds={"air_conditioner"}, since=now - lookback)
        [r] = retrain(readings, [], outcome_labels(engine, since=now - lookback), registry=registry, now=now,
                      profiles=AC, only={("air_conditioner", "filter_clogging")},
                      model_params=PARAMS, min_positives=5)
    else:
        [r] = retrain_from_outcomes(engine, registry, now=now, lookback=lookback, profiles=AC,
                                    model_params=PARAMS, min_positives=5)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    version = {v.version: v for v in registry.versions()}[r.challenger]
    print(json.dumps({"variant": variant, "peak_rss_mb": peak_kb / 1024, "seconds": seconds,
                      "rows": version.summary["rows"]}))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--days", type=float, default=60)
    ap.add_argument("--lookback-days", type=float, default=180)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--now", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        run_variant(args.work, args.variant, args.now, args.lookback_days)
        return
    with tempfile.TemporaryDirectory(prefix="retrain-memory-") as tmp:
        work = Path(tmp)
        now = setup(work, devices=args.devices, days=args.days)
        figures = []
        for variant in ("all_at_once", "streamed"):
            # Each on its own copy: the first run's challenger must not become the second's champion.
            copy = work / variant
            copy.mkdir()
            shutil.copy(work / "f.db", copy / "f.db")
            shutil.copytree(work / "models", copy / "models")
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--work", str(copy), "--now", now,
                                  "--lookback-days", str(args.lookback_days)],
                                 check=True, capture_output=True, text=True).stdout
            figures.append(json.loads(out.strip().splitlines()[-1]))
        print(f"(load average {os.getloadavg()[0]:.1f}, machine shared with other work)")
        print(f"{'retrain':<14}{'peak RSS MB':>12}{'seconds':>9}{'rows':>10}")
        for f in figures:
            print(f"{f['variant']:<14}{f['peak_rss_mb']:>12.0f}{f['seconds']:>9.1f}{f['rows']:>10,}")
        a, b = figures
        print(f"streamed / all at once: peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x, "
              f"time {b['seconds'] / a['seconds']:.2f}x; same training rows: {a['rows'] == b['rows']}")


if __name__ == "__main__":
    main()
