"""Wiring for `foresight train`: a simulated history, or a manufacturer's files, into the trainer.

``train_from_files`` is ``foresight train --telemetry ... --failures ... [--profile ...]``; the
kinds it onboards are made known to this process with ``foresight.kinds.install_profiles``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devices_sim import Fleet
from ingest.contract import PROFILES, Telemetry
from ingest.features import Reading
from predictors import (
    FailureLabel,
    ModelRegistry,
    OnboardingPlan,
    TrainingReport,
    load_history,
    onboard,
    train_all,
)
from predictors.history import History
from predictors.profile_file import profile_to_toml
from predictors.training import SensorFault

from .kinds import BUILTIN_KINDS, install_profiles

__all__ = ["SimulatedHistory", "print_plan", "print_reports", "simulate_history",
           "train_from_files", "train_on_simulation"]

#: Training history is simulated before the demo's and tests' simulated time, never overlapping it.
TRAINING_START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass(frozen=True)
class SimulatedHistory:
    readings: list[Reading]
    failures: list[FailureLabel]
    observed_until: datetime
    devices: int
    #: The ground truth's sensor faults: not failures, and their readings are not training data.
    sensor_faults: list[SensorFault]


def simulate_history(*, devices: int, days: int, seed: int, start: datetime = TRAINING_START) -> SimulatedHistory:
    """Run a fleet offline (no broker) for ``days``: its readings, failure labels and sensor faults."""
    fleet = Fleet.build(n_devices=devices, seed=seed, start=start, initial_wear="mixed")
    until = start + timedelta(days=days)
    readings: list[Reading] = []
    day = start
    while day < until:  # a day at a time keeps the fleet's outbox small
        day = min(day + timedelta(days=1), until)
        for m in fleet.advance(day):
            if isinstance(m, Telemetry):
                readings.append(Reading(device_id=m.device_id, kind=m.kind, seq=m.seq, ts=m.ts,
                                        metrics=m.metrics))
    failures = [FailureLabel(device_id=g.device_id, mode=g.mode, failed_at=g.at)
                for g in fleet.ground_truth if g.what == "failure"]
    faults = [SensorFault(device_id=g.device_id, metric=g.metric, since=g.at)
              for g in fleet.ground_truth if g.what == "sensor_fault" and g.metric is not None]
    return SimulatedHistory(readings=readings, failures=failures, observed_until=until, devices=devices,
                            sensor_faults=faults)


def train_on_simulation(registry: ModelRegistry, *, devices: int, days: int, seed: int,
                        now: datetime) -> tuple[list[TrainingReport], dict[str, float]]:
    """Simulate, train every failure mode and register the models; returns reports and timings."""
    t0 = time.perf_counter()
    history = simulate_history(devices=devices, days=days, seed=seed)
    t1 = time.perf_counter()
    reports = train_all(history.readings, history.failures, registry=registry, now=now,
                        observed_until=history.observed_until, sensor_faults=history.sensor_faults)
    t2 = time.perf_counter()
    return reports, {"simulate_s": t1 - t0, "train_s": t2 - t1, "readings": float(len(history.readings)),
                     "failures": float(len(history.failures)),
                     "sensor_faults": float(len(history.sensor_faults))}


def train_from_files(registry: ModelRegistry, *, telemetry: Path, failures: Path,
                     profile: Path | None, now: datetime, console: Console,
                     random_state: int = 0, check_only: bool = False,
                     write_profiles: Path | None = None,
                     ) -> tuple[History, OnboardingPlan, list[TrainingReport]]:
    """Check the files, print the profiles, train and register; ``HistoryError`` on bad input.

    ``write_profiles`` gets each new kind's profile as ``<kind>.toml`` (to edit and pass back with
    ``--profile``); ``check_only`` stops before training (no reports).
    """
    registered = registry.onboarded()
    with console.status("reading and checking the history files"):
        history, plan = load_history(telemetry, failures, profile_path=profile,
                                     registered=registered,
                                     builtin={k: PROFILES[k] for k in BUILTIN_KINDS})
    print_plan(history, plan, console=console)
    if write_profiles is not None:
        write_profiles.mkdir(parents=True, exist_ok=True)
        for kind in sorted(plan.new_kinds):
            path = write_profiles / f"{kind}.toml"
            path.write_text(profile_to_toml(plan.profiles[kind]), encoding="utf-8")
            console.print(f"profile of {kind} written to {path}")
    if check_only:
        return history, plan, []
    with console.status("training") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            console.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/] {msg}")
        reports = onboard(history, plan, registry=registry, now=now, random_state=random_state,
                          progress=progress)
    install_profiles({k: plan.profiles[k].profile for k in plan.new_kinds
                      if any(r.kind == k and r.trained for r in reports)})
    return history, plan, reports


def print_plan(history: History, plan: OnboardingPlan, *, console: Console) -> None:
    """The history in numbers and each kind's profile (metrics, ranges, failure modes)."""
    devices = len(history.device_kinds)
    failed = len({f.device_id for f in history.failures})
    console.print(f"[bold]{history.telemetry_file}[/]: {len(history.readings):,} readings of "
                  f"{devices:,} devices; [bold]{history.failures_file}[/]: {len(history.failures):,} "
                  f"failures on {failed:,} devices ({devices - failed:,} devices without a failure "
                  "are censored at their last reading)")
    for kind, onb in plan.profiles.items():
        p = onb.profile
        table = Table(title=f"{kind} — profile {onb.source}", title_justify="left")
        for col in ("metric", "unit", "valid range", "stuck after", "used by"):
            table.add_column(col)
        for spec in p.metrics:
            users = [m.name for m in p.failure_modes if spec.name in m.metrics]
            table.add_row(spec.name, spec.unit, f"[{spec.low:g}, {spec.high:g}]",
                          "off" if spec.stuck_after >= 10**9 else str(spec.stuck_after),
                          ", ".join(users) or "—")
        console.print(table)
        console.print(f"  reading every {p.reading_interval_h:g} h, window {p.window} readings, "
                      f"baseline {p.baseline_readings} readings; failure modes: " + "; ".join(
                          f"{m.name} (horizon {m.horizon_h:g} h, act {m.act_before_h:g} h ahead, "
                          f"{m.action})" for m in p.failure_modes))
        for note in onb.notes:
            console.print(f"  [yellow]note[/]: {note}")


def print_reports(reports: list[TrainingReport], *, console: Console) -> None:
    """One row per (kind, mode): version and live state, or why it was skipped; hold-out figures."""
    table = Table(title="models (figures on held-out devices)", title_justify="left")
    table.add_column("version", no_wrap=True)
    table.add_column("live")
    for col in ("rows", "positives", "AUC", "Brier (base rate)", "TTF MAE h", "TTF 10–90 % cover"):
        table.add_column(col, justify="right")
    for r in reports:
        s = r.summary
        if not r.trained:
            table.add_row(f"{r.kind}.{r.mode}", f"[red]skipped[/]: {r.skipped}",
                          _fmt(s.get("rows")), _fmt(s.get("positives")), "", "", "", "")
            continue
        table.add_row(r.version or "", "yes" if r.live else "[yellow]no[/]: not better than base rate",
                      _fmt(s["rows"]), _fmt(s["positives"]), _fmt(s.get("auc")),
                      f"{_fmt(s.get('brier'))} ({_fmt(s.get('brier_base_rate'))})",
                      _fmt(s.get("ttf_mae_h")), _fmt(s.get("ttf_interval_coverage")))
    console.print(table)


def _fmt(x: object) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)

