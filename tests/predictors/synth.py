"""A small synthetic fleet with known failure times, independent of ``devices_sim``.

Air conditioners report hourly; a clogging filter's pressure drop rises linearly from a clean value
to exactly 250 Pa at the failure time, then the filter is replaced (a few silent hours) and the next
cycle starts. Rice cookers report about every 8 hours; scaling devices' time-to-boil and peak
temperature rise linearly to failure, wearing elements' power falls. Healthy devices drift too
slowly to fail within the simulated period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from ingest.features import Reading
from predictors.dataset import FailureLabel

START = datetime(2024, 3, 1, tzinfo=UTC)
REPAIR_H = 6.0


@dataclass(frozen=True)
class Fleet:
    readings: list[Reading]
    failures: list[FailureLabel]
    end: datetime


def make_fleet(*, n_ac: int = 24, n_rc: int = 36, days: float = 45.0, seed: int = 0,
               start: datetime = START) -> Fleet:
    """Readings and failure labels; about 60 % of devices degrade, the rest stay healthy."""
    rng = np.random.default_rng(seed)
    readings: list[Reading] = []
    failures: list[FailureLabel] = []
    for i in range(n_ac):
        _air_conditioner(f"ac-{i:03d}", rng, start, days, degrading=i % 5 < 3, out=readings,
                         failures=failures)
    for i in range(n_rc):
        role = ("scale", "wear", "healthy")[i % 3] if i % 5 else "healthy"
        _rice_cooker(f"rc-{i:03d}", rng, start, days, role=role, out=readings, failures=failures)
    end = max(r.ts for r in readings)
    return Fleet(readings=readings, failures=failures, end=end)


def _air_conditioner(device_id: str, rng: np.random.Generator, start: datetime, days: float, *,
                     degrading: bool, out: list[Reading], failures: list[FailureLabel]) -> None:
    span_h = days * 24.0
    t_h, seq = float(rng.uniform(0, 24)), 0
    while t_h < span_h:
        clean = float(rng.normal(80, 6))
        cycle_h = float(rng.uniform(8, 20) * 24) if degrading else float(rng.uniform(200, 400) * 24)
        cycle_start = t_h
        while t_h < min(cycle_start + cycle_h, span_h):
            frac = (t_h - cycle_start) / cycle_h
            dp = clean + (250.0 - clean) * frac
            if rng.random() > 0.02:  # an occasional lost message
                metrics = {
                    "filter_dp_pa": dp + float(rng.normal(0, 3)),
                    "fan_current_a": 1.2 + 0.004 * dp + float(rng.normal(0, 0.04)),
                    "supply_air_temp_c": float(rng.normal(13, 1)),
                    "return_air_temp_c": float(rng.normal(24, 1)),
                    "power_w": 900 + 1.5 * dp + float(rng.normal(0, 30)),
                    "run_hours": round(t_h - cycle_start, 2),
                }
                out.append(Reading(device_id, "air_conditioner", seq,
                                   start + timedelta(hours=t_h), metrics))
                seq += 1
            t_h += 1.0
        if cycle_start + cycle_h <= span_h:
            failures.append(FailureLabel(device_id, "filter_clogging",
                                         start + timedelta(hours=cycle_start + cycle_h)))
            t_h = cycle_start + cycle_h + REPAIR_H


def _rice_cooker(device_id: str, rng: np.random.Generator, start: datetime, days: float, *,
                 role: str, out: list[Reading], failures: list[FailureLabel]) -> None:
    span_h = days * 24.0
    t_h, seq = float(rng.uniform(0, 8)), 0
    while t_h < span_h:
        cycle_h = float(rng.uniform(10, 25) * 24) if role != "healthy" else 10.0**6
        cycle_start = t_h
        base_boil, base_power = float(rng.normal(900, 40)), float(rng.normal(1000, 30))
        while t_h < min(cycle_start + cycle_h, span_h):
            frac = (t_h - cycle_start) / cycle_h
            power = base_power * (1.0 - 0.3 * frac) if role == "wear" else base_power
            scale = frac if role == "scale" else 0.0
            boil = base_boil * (base_power / power) + 700.0 * scale
            out.append(Reading(device_id, "rice_cooker", seq, start + timedelta(hours=t_h), {
                "time_to_boil_s": boil + float(rng.normal(0, 25)),
                "heater_power_w": power + float(rng.normal(0, 15)),
                "peak_temp_c": 125.0 + 35.0 * scale + float(rng.normal(0, 1.5)),
                "cycle_energy_wh": power * boil / 3600.0 * 1.3 + float(rng.normal(0, 10)),
                "ambient_temp_c": float(rng.normal(22, 2)),
            }))
            seq += 1
            t_h += float(rng.uniform(6, 10))
        if cycle_start + cycle_h <= span_h:
            mode = "scale_buildup" if role == "scale" else "heating_element_wear"
            failures.append(FailureLabel(device_id, mode,
                                         start + timedelta(hours=cycle_start + cycle_h)))
            t_h = cycle_start + cycle_h + REPAIR_H


def stuck_readings(device_id: str, *, metric_values: dict[str, float], n: int,
                   stuck_metric: str, kind: str = "air_conditioner",
                   start: datetime = START, step_h: float = 1.0, seed: int = 1) -> list[Reading]:
    """``n`` readings of one device around ``metric_values``, with ``stuck_metric`` frozen."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        metrics = {k: (v if k == stuck_metric else v + float(rng.normal(0, abs(v) * 0.01 + 0.01)))
                   for k, v in metric_values.items()}
        out.append(Reading(device_id, kind, i, start + timedelta(hours=i * step_h), metrics))
    return out
