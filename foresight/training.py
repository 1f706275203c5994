"""Wiring for `foresight train`: simulated history from devices_sim into the predictors' trainer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devices_sim import Fleet
from ingest.contract import Telemetry
from ingest.features import Reading
from predictors import FailureLabel, ModelRegistry, TrainingReport, train_all

__all__ = ["SimulatedHistory", "simulate_history", "train_on_simulation"]

#: Training history is simulated before the demo's and tests' simulated time, never overlapping it.
TRAINING_START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass(frozen=True)
class SimulatedHistory:
    readings: list[Reading]
    failures: list[FailureLabel]
    observed_until: datetime
    devices: int


def simulate_history(*, devices: int, days: int, seed: int, start: datetime = TRAINING_START) -> SimulatedHistory:
    """Run a fleet offline (no broker) for ``days`` and return its readings and failure labels."""
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
    return SimulatedHistory(readings=readings, failures=failures, observed_until=until, devices=devices)


def train_on_simulation(registry: ModelRegistry, *, devices: int, days: int, seed: int,
                        now: datetime) -> tuple[list[TrainingReport], dict[str, float]]:
    """Simulate, train every failure mode and register the models; returns reports and timings."""
    t0 = time.perf_counter()
    history = simulate_history(devices=devices, days=days, seed=seed)
    t1 = time.perf_counter()
    reports = train_all(history.readings, history.failures, registry=registry, now=now,
                        observed_until=history.observed_until)
    t2 = time.perf_counter()
    return reports, {"simulate_s": t1 - t0, "train_s": t2 - t1, "readings": float(len(history.readings)),
                     "failures": float(len(history.failures))}
