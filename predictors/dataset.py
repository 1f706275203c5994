"""Point-in-time-correct training frames: one row per reading, features from the past only.

For every device (readings in time order) and every reading ``i`` the features are exactly
``compute_features(profile, readings[max(0, i - window + 1):i + 1], baseline_i)`` where
``baseline_i = compute_baseline(profile, readings[:i + 1])`` -- the device's first
``baseline_readings`` readings *that had arrived by then*, as the live feature store sees them. The
rolling statistics are computed with numpy over sliding windows, one device at a time, rather than by
calling ``compute_features`` per row (about 100x faster); ``tests/predictors`` checks the two agree.
Rows before the window is at least half full are skipped.

Labels, per failure mode of the device's kind, from the time to the *next* failure of that mode at
or after the reading:

* ``y = 1`` when it is at most ``horizon_h`` hours away;
* ``y = 0`` when it is further away, or when there is no next failure and the device was observed
  for at least ``horizon_h`` more hours (until ``observed_until``);
* dropped when there is no next failure and fewer than ``horizon_h`` hours of observation remain:
  the outcome is unknown. A device without any failure is censored, not healthy forever.

``ttf_h`` is the regression target: time to the next failure capped at ``ttf_cap_h`` (30 days by
default; beyond that the exact figure carries no decision and the tail is noisy). A row whose next
failure is unknown but whose device was observed for at least the cap is known to have a capped
time-to-failure of exactly the cap and keeps it; only rows censored before the cap get NaN. Without
this, the regressor would only ever see devices that failed and would under-estimate everybody.

Failure labels are taken as given; ``observed_until`` (default: the latest reading) only bounds how
long a device without a next failure is known to have stayed free of that failure. It is one time
for the whole fleet (a simulation watched every device until its end) or a time per device (a
manufacturer's records: a device is known healthy only up to its own last reading).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ingest.contract import PROFILES, RATIO_STATS, STATS, ApplianceProfile, feature_name
from ingest.features import Reading

__all__ = [
    "all_feature_names",
    "DEFAULT_TTF_CAP_H",
    "FailureLabel",
    "TrainingFrame",
    "build_frames",
    "device_feature_matrix",
    "feature_value",
    "input_matrix",
    "min_readings",
]

#: Cap of the time-to-failure regression target, in hours (30 days).
DEFAULT_TTF_CAP_H = 720.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FailureLabel:
    """A failure of one mode on one device (from a service record or the device's own report)."""

    device_id: str
    mode: str
    failed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingFrame:
    """Training rows of one (kind, failure mode), as plain numpy arrays aligned on the first axis.

    ``X`` holds ``features`` (NaN where a metric was missing), ``y`` the 0/1 label, ``ttf_h`` the capped
    time to the next failure in hours (NaN where censored before the cap), ``ts`` the reading time as
    ``datetime64[us]`` in UTC.
    """

    kind: str
    mode: str
    features: tuple[str, ...]
    horizon_h: float
    ttf_cap_h: float
    X: np.ndarray
    y: np.ndarray
    ttf_h: np.ndarray
    device_ids: np.ndarray
    ts: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_positives(self) -> int:
        return int(self.y.sum())

    def take(self, mask: np.ndarray) -> TrainingFrame:
        """The rows selected by a boolean mask or an index array."""
        return TrainingFrame(kind=self.kind, mode=self.mode, features=self.features,
                             horizon_h=self.horizon_h, ttf_cap_h=self.ttf_cap_h, X=self.X[mask],
                             y=self.y[mask], ttf_h=self.ttf_h[mask], device_ids=self.device_ids[mask],
                             ts=self.ts[mask])


def min_readings(profile: ApplianceProfile) -> int:
    """Readings a device needs before its rows are used: the window at least half full."""
    return (profile.window + 1) // 2


def all_feature_names(profile: ApplianceProfile) -> tuple[str, ...]:
    """Every feature the store computes for a profile, metric-major, in ``STATS`` order."""
    return tuple(feature_name(spec.name, s) for spec in profile.metrics for s in STATS)


def _ratio_parts(name: str) -> tuple[str, str, str] | None:
    """``(numerator, denominator, stat)`` of a ratio feature ``"a/b__stat"``; None for a plain one."""
    metric, _, stat = name.rpartition("__")
    num, sep, den = metric.partition("/")
    if not sep:
        return None
    if stat not in RATIO_STATS:
        raise ValueError(f"{name}: a ratio feature has no statistic {stat!r}")
    return num, den, stat


def _ratio(num: str, den: str, stat: str, get: Callable[[str], Any], div: Callable[[Any, Any], Any]) -> Any:
    """A ratio feature from the statistics of ``num`` and ``den`` (``get``), for arrays or floats.

    ``last``: last a / last b; ``mean``: mean a / mean b; ``std``: std a / mean b; ``slope_per_day``:
    the quotient rule on the two slopes; ``delta``: the ratio of the means minus that of the
    baselines (mean - delta). NaN where a part is missing or a denominator is zero (``div``).
    """
    if stat == "last":
        return div(get(feature_name(num, "last")), get(feature_name(den, "last")))
    mean_a, mean_b = get(feature_name(num, "mean")), get(feature_name(den, "mean"))
    if stat == "mean":
        return div(mean_a, mean_b)
    if stat == "std":
        return div(get(feature_name(num, "std")), mean_b)
    if stat == "slope_per_day":
        slope_a, slope_b = get(feature_name(num, "slope_per_day")), get(feature_name(den, "slope_per_day"))
        return div(slope_a * mean_b - mean_a * slope_b, mean_b * mean_b)
    base_a = mean_a - get(feature_name(num, "delta"))
    base_b = mean_b - get(feature_name(den, "delta"))
    return div(mean_a, mean_b) - div(base_a, base_b)


def _div_scalar(a: float, b: float) -> float:
    return a / b if abs(b) > 1e-12 else math.nan  # NaN propagates: abs(nan) > x is False


def _div_array(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = np.abs(b) > 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, a / np.where(ok, b, 1.0), np.nan)


def feature_value(values: Mapping[str, float], name: str) -> float | None:
    """One model input from a feature vector's values: a stored statistic, or a ratio feature
    (``FailureMode.ratios``) derived from two. None when missing."""
    parts = _ratio_parts(name) if "/" in name else None
    if parts is None:
        return values.get(name)
    out = _ratio(*parts, lambda n: values.get(n, math.nan), _div_scalar)
    return None if math.isnan(out) else float(out)


def input_matrix(rows: Sequence[Mapping[str, object]], names: Sequence[str]) -> np.ndarray:
    """Model inputs ``(len(rows), len(names))`` from feature-vector values, ratio features derived
    column-wise (as ``feature_value`` does per value); NaN where missing or not a number."""
    parts = {n: _ratio_parts(n) if "/" in n else None for n in names}
    needed = {n for n, p in parts.items() if p is None}
    for p in parts.values():
        if p is not None:
            needed.update(feature_name(m, st) for m in p[:2] for st in RATIO_STATS)
    cols = {n: np.fromiter((_number(r.get(n)) for r in rows), float, len(rows)) for n in needed}
    out = np.empty((len(rows), len(names)))
    for j, n in enumerate(names):
        p = parts[n]
        out[:, j] = cols[n] if p is None else _ratio(*p, cols.__getitem__, _div_array)
    return out


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def device_feature_matrix(profile: ApplianceProfile, readings: Sequence[Reading]) -> np.ndarray:
    """Features as of each of one device's readings (already in time order): ``(n, len(all names))``.

    Row ``i`` equals ``compute_features`` over the trailing window ending at reading ``i`` with the
    point-in-time baseline; NaN where the metric is absent from the window.
    """
    n, w = len(readings), profile.window
    names = [spec.name for spec in profile.metrics]
    m = len(names)
    out = np.full((n, m, len(STATS)), np.nan)
    if n == 0:
        return out.reshape(n, -1)
    t0 = readings[0].ts
    days = np.fromiter(((r.ts - t0).total_seconds() / 86400.0 for r in readings), float, n)
    values = np.array([[r.metrics.get(k, np.nan) for k in names] for r in readings], float)
    # None or non-numeric never reach here: the wire contract rejects them.

    pad_v = np.vstack([np.full((w - 1, m), np.nan), values])
    pad_t = np.concatenate([np.full(w - 1, np.nan), days])
    win_v = sliding_window_view(pad_v, w, axis=0)            # (n, m, w)
    win_t = sliding_window_view(pad_t, w)[:, None, :]         # (n, 1, w)
    present = ~np.isnan(win_v)
    cnt = present.sum(axis=-1)                                # (n, m)
    has = cnt > 0
    safe_cnt = np.maximum(cnt, 1)

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(win_v, axis=-1) / safe_cnt
        dev = win_v - mean[..., None]
        ss = np.nansum(dev * dev, axis=-1)
        std = np.where(cnt >= 2, np.sqrt(ss / np.maximum(cnt - 1, 1)), 0.0)
        xt = np.where(present, win_t, np.nan)
        dx = xt - (np.nansum(xt, axis=-1) / safe_cnt)[..., None]
        sxx = np.nansum(dx * dx, axis=-1)
        sxy = np.nansum(dx * dev, axis=-1)
        slope = np.where((cnt >= 3) & (sxx > 1e-12), sxy / np.where(sxx > 0, sxx, 1.0), 0.0)

    # last: the latest present value in the window
    from_end = np.argmax(present[..., ::-1], axis=-1)
    last = np.take_along_axis(win_v, (w - 1 - from_end)[..., None], axis=-1)[..., 0]

    baseline = _point_in_time_baseline(values, profile.baseline_readings)
    delta = np.where(np.isnan(baseline), 0.0, mean - baseline)
    stuck = _stuck(values, cnt)
    spikes = _spikes(values, w, [spec.spike_jump for spec in profile.metrics])

    for j, stat in enumerate(STATS):
        col = {"last": last, "mean": mean, "std": std, "slope_per_day": slope, "delta": delta,
               "stuck": stuck, "spikes": spikes}[stat]
        out[:, :, j] = np.where(has, col, np.nan)
    return out.reshape(n, -1)


def _point_in_time_baseline(values: np.ndarray, n_base: int) -> np.ndarray:
    """Per row and metric: mean over the first ``min(i + 1, n_base)`` readings (NaN if none had it)."""
    head = values[:n_base]
    present = ~np.isnan(head)
    sums = np.cumsum(np.where(present, head, 0.0), axis=0)
    counts = np.cumsum(present, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        head_base = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    idx = np.minimum(np.arange(values.shape[0]), head.shape[0] - 1)
    return head_base[idx]


def _stuck(values: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Trailing run of identical present values within each window."""
    n, m = values.shape
    out = np.zeros((n, m))
    for k in range(m):
        col = values[:, k]
        present = ~np.isnan(col)
        vals = col[present]
        if vals.size == 0:
            continue
        pos = np.arange(vals.size)
        breaks = np.concatenate([[True], vals[1:] != vals[:-1]])
        run = pos - np.maximum.accumulate(np.where(breaks, pos, 0)) + 1
        last_pos = np.cumsum(present) - 1                    # latest present value up to row i
        run_at = run[np.maximum(last_pos, 0)]
        out[:, k] = np.minimum(run_at, cnt[:, k])
    return out


def _spikes(values: np.ndarray, w: int, jumps: Sequence[float]) -> np.ndarray:
    """Per row and metric: isolated spikes among the window's present values (see ``STATS``)."""
    n, m = values.shape
    out = np.zeros((n, m))
    for k in range(m):
        col = values[:, k]
        present = ~np.isnan(col)
        vals = col[present]
        flags = np.zeros(vals.size)
        if vals.size >= 3:
            prev, cur, nxt = vals[:-2], vals[1:-1], vals[2:]
            up, down = cur - prev, cur - nxt
            flags[1:-1] = ((up * down > 0) & (np.abs(up) > jumps[k] * np.abs(prev))
                           & (np.abs(down) > jumps[k] * np.abs(nxt)))
        csum = np.concatenate([[0.0], np.cumsum(flags)])          # csum[j] = flags before position j
        upto = np.cumsum(present)                                 # present values up to row i
        first = np.concatenate([np.zeros(min(w, n)), upto[:max(n - w, 0)]]).astype(int)
        last = upto - 1
        inner = last - first >= 2
        out[:, k] = np.where(inner, csum[np.maximum(last, 0)] - csum[np.minimum(first + 1, vals.size)], 0.0)
    return out


def build_frames(readings: Iterable[Reading], failures: Sequence[FailureLabel], *,
                 observed_until: datetime | Mapping[str, datetime] | None = None,
                 profiles: Mapping[str, ApplianceProfile] = PROFILES,
                 ttf_cap_h: float = DEFAULT_TTF_CAP_H) -> dict[tuple[str, str], TrainingFrame]:
    """Training frames keyed by ``(kind, mode)`` for every mode of every kind seen in ``readings``.

    Readings of kinds absent from ``profiles`` are ignored.
    """
    by_device: dict[str, list[Reading]] = defaultdict(list)
    latest: datetime | None = None
    for r in readings:
        if r.kind not in profiles:
            continue
        by_device[r.device_id].append(r)
        if latest is None or r.ts > latest:
            latest = r.ts
    if latest is None:
        return {}
    if observed_until is None:
        observed_until = latest
    per_device = observed_until if isinstance(observed_until, Mapping) else None
    fleet_end_s = None if per_device is not None else (observed_until - _EPOCH).total_seconds()

    fail_s: dict[tuple[str, str], np.ndarray] = {}
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for f in failures:
        grouped[(f.device_id, f.mode)].append((f.failed_at - _EPOCH).total_seconds())
    for key, times in grouped.items():
        fail_s[key] = np.sort(np.asarray(times, float))

    parts: dict[tuple[str, str], list[tuple[np.ndarray, ...]]] = defaultdict(list)
    for device_id in sorted(by_device):
        dev = by_device[device_id]
        dev.sort(key=lambda r: r.ts)
        profile = profiles[dev[0].kind]
        first = min_readings(profile)
        if len(dev) < first:
            continue
        feats = device_feature_matrix(profile, dev)[first - 1:]
        rows = dev[first - 1:]
        t_s = np.fromiter(((r.ts - _EPOCH).total_seconds() for r in rows), float, len(rows))
        ts64 = (t_s * 1e6).astype("datetime64[us]")
        names = all_feature_names(profile)
        col_of = {name: j for j, name in enumerate(names)}
        end_s = fleet_end_s if per_device is None else \
            (per_device.get(device_id, dev[-1].ts) - _EPOCH).total_seconds()
        for mode in profile.failure_modes:
            y, ttf, keep = _labels(t_s, fail_s.get((device_id, mode.name)), end_s=end_s,
                                   horizon_h=mode.horizon_h, cap_h=ttf_cap_h)
            if not keep.any():
                continue
            X = np.column_stack([_column(feats[keep], col_of, f) for f in mode.features])
            parts[(profile.kind, mode.name)].append(
                (X, y[keep], ttf[keep],
                 np.full(int(keep.sum()), device_id, dtype=object), ts64[keep]))

    frames: dict[tuple[str, str], TrainingFrame] = {}
    for (kind, mode_name), chunks in parts.items():
        mode = profiles[kind].mode(mode_name)
        X, y, ttf, ids, ts = (np.concatenate(c) for c in zip(*chunks, strict=True))
        frames[(kind, mode_name)] = TrainingFrame(
            kind=kind, mode=mode_name, features=mode.features, horizon_h=mode.horizon_h,
            ttf_cap_h=ttf_cap_h, X=X, y=y, ttf_h=ttf, device_ids=ids, ts=ts)
    return frames


def _column(feats: np.ndarray, col_of: Mapping[str, int], name: str) -> np.ndarray:
    """One model input column: a stored statistic, or a ratio feature derived from two."""
    if name in col_of:
        return feats[:, col_of[name]]
    parts = _ratio_parts(name)
    if parts is None:
        raise KeyError(name)
    return _ratio(*parts, lambda n: feats[:, col_of[n]], _div_array)


def _labels(t_s: np.ndarray, failures_s: np.ndarray | None, *, end_s: float, horizon_h: float,
            cap_h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label, capped time to failure and keep-mask for reading times ``t_s`` (epoch seconds)."""
    n = t_s.shape[0]
    ttf = np.full(n, np.inf)
    if failures_s is not None and failures_s.size:
        nxt = np.searchsorted(failures_s, t_s, side="left")
        known = nxt < failures_s.size
        ttf[known] = (failures_s[nxt[known]] - t_s[known]) / 3600.0
    censored = np.isinf(ttf)
    remaining_h = (end_s - t_s) / 3600.0
    keep = ~censored | (remaining_h >= horizon_h)
    y = (~censored & (ttf <= horizon_h)).astype(np.int64)
    ttf_capped = np.where(censored, np.where(remaining_h >= cap_h, cap_h, np.nan),
                          np.minimum(ttf, cap_h))
    return y, ttf_capped, keep
