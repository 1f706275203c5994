"""Held-out evaluation against issue 3's targets: train on one simulated fleet, evaluate on another.

    .venv/bin/python benchmarks/evaluate_fleet.py [--devices 1000 --days 180 --seed 2026
        --train-devices 600 --train-days 180 --train-seed 1007 --out var/bench-evaluate]

Trains every failure mode on a fleet simulated with ``--train-seed`` (a fresh registry under
``--out``), simulates the held-out fleet with ``--seed`` and replays it through the service's
feature, scoring and policy code (``foresight.evaluate``), then replays the same fleet through a
baseline without models: a fixed threshold rule on the raw metric (``actions.replay.ThresholdBaseline``:
act when a mode's first metric is 15 % above the device's own baseline), under the same policy and
case handling. Prints both side by side with the targets and writes the JSON, plots and HTML report
under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import actions.db  # noqa: F401  (tables on the shared metadata)
import predictors.store  # noqa: F401
from actions.policy import PolicyConfig
from actions.replay import ThresholdBaseline
from devices_sim import Fleet
from foresight.evaluate import HEADLINE, History, evaluate_history, write_report
from foresight.training import TRAINING_START
from ingest.clock import SystemClock
from ingest.contract import Telemetry
from ingest.db import create_schema, make_engine
from ingest.features import Reading
from predictors import FailureLabel, ModelRegistry, Scorer, train_all
from predictors.evaluation import Failure

TARGETS = {"recall_48h": (">=", 0.95), "precision": (">=", 0.90),
           "false_alerts_per_1000_device_months": ("<=", 2.0), "escalation_rate": ("<=", 0.05)}


def simulate(*, devices: int, days: int, seed: int) -> History:
    """A fleet history with its ground truth (failures and sensor faults)."""
    fleet = Fleet.build(n_devices=devices, seed=seed, start=TRAINING_START, initial_wear="mixed")
    readings = []
    day, until = TRAINING_START, TRAINING_START + timedelta(days=days)
    while day < until:
        day = min(day + timedelta(days=1), until)
        readings.extend(Reading(device_id=m.device_id, kind=m.kind, seq=m.seq, ts=m.ts, metrics=m.metrics)
                        for m in fleet.advance(day) if isinstance(m, Telemetry))
    kinds = {d.device_id: d.kind for d in fleet.devices}
    truth = fleet.ground_truth
    return History(readings=readings,
                   failures=[Failure(device_id=g.device_id, kind=kinds[g.device_id], mode=g.mode, at=g.at)
                             for g in truth if g.what == "failure"],
                   sensor_faults=[g for g in truth if g.what == "sensor_fault"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--train-devices", type=int, default=600)
    ap.add_argument("--train-days", type=int, default=180)
    ap.add_argument("--train-seed", type=int, default=1007)
    ap.add_argument("--out", type=Path, default=Path("var/bench-evaluate"))
    ap.add_argument("--reuse-models", action="store_true",
                    help="keep the models of an earlier run under --out (training is deterministic per seed)")
    args = ap.parse_args()
    if args.seed == args.train_seed:
        ap.error("the held-out fleet needs another seed than the training fleet")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, 2 cores shared)")

    t0 = time.perf_counter()
    db = args.out / "registry.db"
    if not (args.reuse_models and db.exists()):
        db.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    registry = ModelRegistry(engine, args.out / "models")
    if not (args.reuse_models and db.exists() and registry.versions()):
        train = simulate(devices=args.train_devices, days=args.train_days, seed=args.train_seed)
        reports = train_all(train.readings, [FailureLabel(device_id=f.device_id, mode=f.mode, failed_at=f.at)
                                             for f in train.failures],
                            registry=registry, now=SystemClock().now(),
                            observed_until=TRAINING_START + timedelta(days=args.train_days))
        print(f"trained on {args.train_devices} devices x {args.train_days} days (seed {args.train_seed}, "
              f"{len(train.readings):,} readings) in {time.perf_counter() - t0:.0f} s")
        for r in reports:
            print(f"  {r.kind}.{r.mode}: {'live' if r.live else 'NOT live'} {r.skipped or ''}"
                  f" auc={r.summary.get('auc')} brier={r.summary.get('brier')} "
                  f"(base {r.summary.get('brier_base_rate')})")
    else:
        print(f"reusing the models in {db}")
    t1 = time.perf_counter()

    held = simulate(devices=args.devices, days=args.days, seed=args.seed)
    t2 = time.perf_counter()
    print(f"held-out fleet: {args.devices} devices x {args.days} days (seed {args.seed}), "
          f"{len(held.readings):,} readings, {len(held.failures)} failures, "
          f"{len(held.sensor_faults)} sensor faults, simulated in {t2 - t1:.0f} s")
    config = PolicyConfig()
    rss_before = _reset_peak_rss()
    ours = evaluate_history(held, scorer=Scorer(registry), config=config, progress=print)
    t3 = time.perf_counter()
    rss_peak = _peak_rss()
    # Ours is written (and its table printed) before the baseline runs: a long run that is cut
    # short during the baseline keeps the figure that matters.
    paths = write_report(ours, args.out / "report.json", title="Foresight held-out evaluation")
    _print_modes(ours)
    base = evaluate_history(held, scorer=ThresholdBaseline(), config=config, progress=print)
    t4 = time.perf_counter()
    write_report(base, args.out / "baseline.json", title="Baseline (fixed threshold) held-out evaluation")

    print(f"\nreplay: Foresight {t3 - t2:.0f} s, baseline {t4 - t3:.0f} s; "
          f"load after: {os.getloadavg()[0]:.2f}")
    if rss_before is not None and rss_peak is not None:
        print(f"memory: RSS {rss_before:.0f} MB with the fleet loaded, peak {rss_peak:.0f} MB during the "
              f"Foresight replay (+{rss_peak - rss_before:.0f} MB)")
    print(f"\n{'figure':40} {'target':>8} {'Foresight':>10} {'baseline':>10}")
    for key in HEADLINE:
        op, goal = TARGETS.get(key, ("", None))
        target = f"{op} {goal:g}" if goal is not None else ""
        print(f"{key:40} {target:>8} {_fmt(ours['overall'][key]):>10} {_fmt(base['overall'][key]):>10}")
    _print_modes(ours)
    print(f"report: {paths['html']}")


def _print_modes(ours: dict[str, Any]) -> None:
    """The overall, per-kind and per-mode figures of one evaluation, sensor faults, escalations."""
    print(f"\n{'slice':34} {'recall48':>8} {'precision':>9} {'FA/1000dm':>9} {'escal':>6} {'lead_h':>7}"
          f" {'brier':>7} {'failures':>8}")
    for name, r in [("overall", ours["overall"]), *ours["by_kind"].items(), *ours["by_mode"].items()]:
        print(f"{name:34} {_fmt(r['recall_48h']):>8} {_fmt(r['precision']):>9} "
              f"{_fmt(r['false_alerts_per_1000_device_months']):>9} {_fmt(r['escalation_rate']):>6} "
              f"{_fmt(r['median_lead_time_h']):>7} {_fmt(r['brier']):>7} {r['failures']:>8}")
    print(f"\nsensor faults: {ours['sensor_faults']}")
    print(f"escalations by rule: {ours['escalations_by_rule']}")


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` memory figure in MB (None off Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key))
    except (OSError, StopIteration):
        return None


def _reset_peak_rss() -> float | None:
    """Reset the peak-RSS mark (Linux ``clear_refs``) so the next reading is the replay's; current RSS."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def _peak_rss() -> float | None:
    return _status_mb("VmHWM")


def _fmt(v: object) -> str:
    return "–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
