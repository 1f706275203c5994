"""Rolling per-device features, as pure functions of a window of readings.

The same functions serve the live feature store, the offline training frames and the evaluation
replay, so a model sees in training exactly what it sees in production. For each metric of a
profile: ``last``, ``mean``, ``std``, ``slope_per_day`` (least squares over the window), ``delta``
(window mean minus the device's own baseline), ``stuck`` (trailing run of identical values) and
``spikes`` (isolated readings that jump away from both neighbours by more than ``spike_jump``).
A metric absent from the window has no features; models read that as missing.

``feature_matrix`` is the one implementation: it computes many windows at once with numpy (the
live store passes a whole batch of readings and stores the matrix rows, ``ingest.vectors``);
``features_of_windows`` gives its rows as dicts and ``compute_features`` is that on one window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import compress
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ingest.contract import STATS, ApplianceProfile, feature_name

__all__ = ["FeatureVector", "Reading", "compute_baseline", "compute_features", "feature_matrix", "features_of_windows"]


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
    names = [spec.name for spec in profile.metrics]
    w = len(ordered)
    days = np.array([[(r.ts - t0).total_seconds() / 86400.0 for r in ordered]])
    values = np.array([[[r.metrics.get(k, np.nan) for k in names] for r in ordered]], float).reshape(1, w, len(names))
    base = np.array([[baseline.get(k, np.nan) for k in names]], float)
    return features_of_windows(profile, days=days, values=values, baseline=base)[0]


def features_of_windows(profile: ApplianceProfile, *, days: np.ndarray, values: np.ndarray,
                        baseline: np.ndarray) -> list[dict[str, float]]:
    """Features of ``R`` windows at once, one dict per window (``feature_matrix`` as dicts)."""
    matrix, has = feature_matrix(profile, days=days, values=values, baseline=baseline)
    names = _feature_names(profile)
    rows = matrix.tolist()
    complete = has.all(axis=1).tolist()
    keep = np.repeat(has, len(STATS), axis=1)
    # Turned into dicts in C (``dict(zip(...))``); only a window missing a metric filters its columns.
    return [dict(zip(names, row, strict=True)) if full else dict(compress(zip(names, row, strict=True), keep[r]))
            for r, (row, full) in enumerate(zip(rows, complete, strict=True))]


def feature_matrix(profile: ApplianceProfile, *, days: np.ndarray, values: np.ndarray,
                   baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``R`` windows at once: ``(R, m * len(STATS))`` values, metric-major with ``STATS``
    within (the order of the profile's feature names), and ``(R, m)`` which metrics each window has
    (a metric it lacks has no features: its columns are meaningless).

    ``days`` ``(R, w)``: each reading's time in days (any origin per window; NaN pads a short
    window), ``values`` ``(R, w, m)``: the profile's metrics in ``profile.metrics`` order, NaN where a
    reading lacks the metric; rows in (ts, seq) order, padding first. ``baseline`` ``(R, m)``: NaN
    where the device has no baseline for a metric (its ``delta`` is then 0).
    """
    n_rows, w, m = values.shape
    if n_rows == 0:
        return np.empty((0, m * len(STATS))), np.empty((0, m), bool)
    present = ~np.isnan(values)                                       # (R, w, m)
    cnt = present.sum(axis=1)                                         # (R, m)
    safe = np.maximum(cnt, 1)
    v0 = np.where(present, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = v0.sum(axis=1) / safe
        dev = np.where(present, values - mean[:, None, :], 0.0)
        std = np.where(cnt >= 2, np.sqrt((dev * dev).sum(axis=1) / np.maximum(cnt - 1, 1)), 0.0)
        t = np.where(present, days[:, :, None], 0.0)
        dx = np.where(present, days[:, :, None] - (t.sum(axis=1) / safe)[:, None, :], 0.0)
        sxx = (dx * dx).sum(axis=1)
        slope = np.where((cnt >= 3) & (sxx > 1e-12), (dx * dev).sum(axis=1) / np.where(sxx > 0, sxx, 1.0), 0.0)
    idx = np.arange(w)[None, :, None]
    last_at = np.where(present, idx, -1).max(axis=1)                  # (R, m)
    last = np.take_along_axis(values, np.maximum(last_at, 0)[:, None, :], axis=1)[:, 0, :]
    # stuck: present values after the last present value that differs from ``last``.
    differs = present & (values != last[:, None, :])
    last_differs = np.where(differs, idx, -1).max(axis=1)
    stuck = (present & (idx > last_differs[:, None, :])).sum(axis=1).astype(float)
    delta = np.where(np.isnan(baseline), 0.0, mean - baseline)
    spikes = _spikes(values, present, np.array([spec.spike_jump for spec in profile.metrics], float))
    stats = {"last": last, "mean": mean, "std": std, "slope_per_day": slope, "delta": delta, "stuck": stuck,
             "spikes": spikes}
    return np.stack([stats[s][:, j] for j in range(m) for s in STATS], axis=1), cnt > 0


_NAMES: dict[str, tuple[ApplianceProfile, list[str]]] = {}


def _feature_names(profile: ApplianceProfile) -> list[str]:
    """The profile's feature names, metric by metric, ``STATS`` within (built once per profile)."""
    cached = _NAMES.get(profile.kind)
    if cached is None or cached[0] is not profile:
        cached = _NAMES[profile.kind] = (profile, [feature_name(spec.name, s) for spec in profile.metrics
                                                   for s in STATS])
    return cached[1]


def _spikes(values: np.ndarray, present: np.ndarray, jump: np.ndarray) -> np.ndarray:
    """Per window and metric: present values that jump by more than ``jump`` (relative) away from
    both their present neighbours, the same way (an isolated spike up or down). ``(R, m)``.

    When a window's only gaps are its leading padding (a device's first readings; every window
    of a device that always reports all its metrics), a value's present neighbours are simply the
    rows before and after it; otherwise ``_spikes_with_gaps`` finds them.
    """
    if values.shape[1] < 3:
        return np.zeros((values.shape[0], values.shape[2]))
    if not (present[:, :-1] & ~present[:, 1:]).any():  # no present value is followed by a gap
        prev, cur, nxt = values[:, :-2], values[:, 1:-1], values[:, 2:]
        inner = present[:, :-2]  # and so its two followers are present too
        with np.errstate(invalid="ignore"):
            up, down = cur - prev, cur - nxt
            spike = inner & (up * down > 0) & (np.abs(up) > jump * np.abs(prev)) & (np.abs(down) > jump * np.abs(nxt))
        return spike.sum(axis=1).astype(float)
    return _spikes_with_gaps(values, present, jump)


def _spikes_with_gaps(values: np.ndarray, present: np.ndarray, jump: np.ndarray) -> np.ndarray:
    """``_spikes`` for windows with gaps anywhere: each value's previous and next present value."""
    n_rows, w, m = values.shape
    idx = np.broadcast_to(np.arange(w)[None, :, None], values.shape)
    # Index of the previous / next present value of each position (-1 / w when there is none).
    upto = np.maximum.accumulate(np.where(present, idx, -1), axis=1)
    prev_at = np.concatenate([np.full((n_rows, 1, m), -1), upto[:, :-1, :]], axis=1)
    from_here = np.minimum.accumulate(np.where(present, idx, w)[:, ::-1, :], axis=1)[:, ::-1, :]
    next_at = np.concatenate([from_here[:, 1:, :], np.full((n_rows, 1, m), w)], axis=1)
    inner = present & (prev_at >= 0) & (next_at < w)
    prev = np.take_along_axis(values, np.clip(prev_at, 0, w - 1), axis=1)
    nxt = np.take_along_axis(values, np.clip(next_at, 0, w - 1), axis=1)
    with np.errstate(invalid="ignore"):
        up, down = values - prev, values - nxt
        spike = inner & (up * down > 0) & (np.abs(up) > jump * np.abs(prev)) & (np.abs(down) > jump * np.abs(nxt))
    return spike.sum(axis=1).astype(float)
