"""Rolling per-device features, as pure functions of a window of readings.

The same functions serve the live feature store, the offline training frames and the evaluation
replay, so a model sees in training exactly what it sees in production. For each metric of a
profile: ``last``, ``mean``, ``std``, ``slope_per_day`` (least squares over the window), ``delta``
(window mean minus the device's own baseline), ``stuck`` (trailing run of identical values) and
``spikes`` (isolated readings that jump away from both neighbours by more than ``spike_jump``).
A metric absent from the window has no features; models read that as missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ingest.contract import ApplianceProfile, feature_name

__all__ = ["FeatureVector", "Reading", "compute_baseline", "compute_features"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted telemetry reading."""

    device_id: str
    kind: str
    seq: int
    ts: datetime
    metrics: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """A device's rolling features as of ``ts`` (the timestamp of its latest reading)."""

    device_id: str
    kind: str
    ts: datetime
    n_readings: int
    values: Mapping[str, float] = field(default_factory=dict)


def compute_baseline(profile: ApplianceProfile, readings: Sequence[Reading]) -> dict[str, float]:
    """Per-metric mean over a device's first ``profile.baseline_readings`` readings (ts order)."""
    first = sorted(readings, key=lambda r: r.ts)[: profile.baseline_readings]
    baseline: dict[str, float] = {}
    for spec in profile.metrics:
        values = [r.metrics[spec.name] for r in first if spec.name in r.metrics]
        if values:
            baseline[spec.name] = sum(values) / len(values)
    return baseline


def compute_features(profile: ApplianceProfile, window: Sequence[Reading],
                     baseline: Mapping[str, float]) -> dict[str, float]:
    """Features over ``window`` (a device's most recent readings, any order)."""
    ordered = sorted(window, key=lambda r: r.ts)[-profile.window:]
    if not ordered:
        return {}
    t0 = ordered[0].ts
    out: dict[str, float] = {}
    for spec in profile.metrics:
        points = [((r.ts - t0).total_seconds() / 86400.0, r.metrics[spec.name])
                  for r in ordered if spec.name in r.metrics]
        if not points:
            continue
        days = [p[0] for p in points]
        values = [p[1] for p in points]
        mean = sum(values) / len(values)
        out[feature_name(spec.name, "last")] = values[-1]
        out[feature_name(spec.name, "mean")] = mean
        out[feature_name(spec.name, "std")] = _std(values, mean)
        out[feature_name(spec.name, "slope_per_day")] = _slope(days, values)
        out[feature_name(spec.name, "delta")] = mean - baseline.get(spec.name, mean)
        out[feature_name(spec.name, "stuck")] = float(_trailing_run(values))
        out[feature_name(spec.name, "spikes")] = float(_spikes(values, spec.spike_jump))
    return out


def _spikes(values: Sequence[float], jump: float) -> int:
    """Interior values that jump by more than ``jump`` (relative) from both neighbours, same way."""
    n = 0
    for prev, cur, nxt in zip(values, values[1:], values[2:]):
        up, down = cur - prev, cur - nxt
        if up * down > 0 and abs(up) > jump * abs(prev) and abs(down) > jump * abs(nxt):
            n += 1
    return n


def _std(values: Sequence[float], mean: float) -> float:
    if len(values) < 2:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs; 0 when under three points or no spread in time."""
    n = len(xs)
    if n < 3:
        return 0.0
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 1e-12:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _trailing_run(values: Sequence[float]) -> int:
    """Length of the run of identical values at the end of ``values``."""
    run = 1
    for prev, cur in zip(reversed(values[:-1]), reversed(values[1:]), strict=True):
        if prev != cur:
            break
        run += 1
    return run
