"""Feature refresh for one write batch: the online vectors and point-in-time history of touched devices.

Set-based over the batch and vectorised: one query loads the touched devices' online rows (locked on
PostgreSQL, so two workers serialise per device), and three driver-level executemany statements
(``ingest.bulk``) write the history rows and the online rows (insert for new devices, update for
known ones).

In between, the devices are handled in groups, not one by one: a ``_Group`` is devices of one kind
whose timelines (the stored window's tail followed by the new readings) have the same length, as
arrays ``(devices, readings, metrics)``. One numpy computation per group gives every new reading's
window and vector (``feature_matrix``, stored as ``ingest.vectors`` JSON) and every device's new
packed state (``pack_many``).

In the usual case — a known device whose new readings are newer than its stored window, or a new
device — the group is built straight from the packed states (``unpack_many``) and the batch's
readings, without a Python object per device, and nothing is read back from ``readings``. A late
reading (older than the newest one stored) makes that device read its timeline back from
``readings`` from the late reading on, so the vectors after it are corrected too; that path, and
a state packed under an older profile, build the device's timeline on its own (``_Plan``) and join
a group after.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ingest.bulk import codec_for, insert_online, select_in, update_online, upsert_history
from ingest.contract import PROFILES, ApplianceProfile, Telemetry
from ingest.db import ReadingRow
from ingest.features import Reading, feature_matrix
from ingest.vectors import encode_rows
from ingest.window import OnlineState, Window, pack_many, state_header, to_us, unpack_many

__all__ = ["refresh_features"]


@dataclass(slots=True)
class _Plan:
    """One device's timeline for this batch (built on its own): rows ``start:`` get history vectors."""

    timeline: Window
    start: int
    n_total: int


@dataclass(slots=True)
class _Group:
    """Devices of one kind with timelines of the same length; rows ``start:`` are this batch's."""

    kind: str
    device_ids: list[str]
    known: list[bool]        # the device has an online row already
    ts_us: np.ndarray        # (G, n) int64
    seq: np.ndarray          # (G, n) int64
    values: np.ndarray       # (G, n, m) float64, NaN where a reading lacks a metric
    start: int
    n_total: np.ndarray      # (G,) readings the device has had, these included
    baseline: np.ndarray     # (G, m) after this batch
    complete: np.ndarray     # (G,) bool
    #: (G, baseline_readings, m): each device's first readings (NaN-padded; NaN for a device whose
    #: baseline was complete before), or None when no device's baseline is forming.
    firsts: np.ndarray | None


#: ``(device_id, seq, ts as integer microseconds, n_readings, vector as stored JSON)``
_HistoryRow = tuple[str, int, int, int, str]


def upsert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT with ON CONFLICT support."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def refresh_features(conn: Connection, inserted: Sequence[Telemetry], *, now: datetime) -> None:
    """Recompute features of every device that got new readings (see the module docstring)."""
    by_device: dict[str, list[Telemetry]] = defaultdict(list)
    for t in inserted:
        by_device[t.device_id].append(t)
    if not by_device:
        return
    for new in by_device.values():
        if len(new) > 1:
            new.sort(key=lambda t: (t.ts, t.seq))
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    # Sorted: two workers lock the devices they share in one order (chunk after chunk).
    found = select_in(conn, f"SELECT device_id, n_readings, state FROM features_online WHERE device_id IN ?*{lock}",
                      sorted(by_device))
    stored = {d: (n, state) for d, n, state in found}
    by_kind: dict[str, list[str]] = defaultdict(list)
    for device_id, new in by_device.items():
        by_kind[new[0].kind].append(device_id)
    groups: list[_Group] = []
    on_their_own: list[str] = []
    for kind, device_ids in by_kind.items():
        lane, rest = _groups_in_order(PROFILES[kind], device_ids, by_device, stored)
        groups += lane
        on_their_own += rest
    if on_their_own:
        groups += _groups_of_plans(conn, on_their_own, by_device, stored)
    history: list[_HistoryRow] = []
    online: list[tuple[str, bool, str, int, int, bytes]] = []  # device, known, kind, n_total, history row, state
    for group in groups:
        profile = PROFILES[group.kind]
        at = len(history)
        history += _history_rows(group, profile)
        per_device = group.ts_us.shape[1] - group.start
        states = _states(group, profile)
        for g, device_id in enumerate(group.device_ids):
            online.append((device_id, group.known[g], group.kind, int(group.n_total[g]), at + (g + 1) * per_device - 1,
                           states[g]))
    codec = codec_for(conn)
    # Encoded once for all rows: the online row repeats its device's newest history row.
    ts_text = codec.ts_of_us(np.fromiter((row[2] for row in history), np.int64, len(history)))
    updated_at = codec.ts(now)
    upsert_history(conn, [(d, seq, ts, n, values) for (d, seq, _, n, values), ts
                          in zip(history, ts_text, strict=True)])
    insert_online(conn, [(d, kind, ts_text[i], n, history[i][4], updated_at, state)
                         for d, known, kind, n, i, state in online if not known])
    update_online(conn, [(ts_text[i], n, history[i][4], updated_at, state, d)
                         for d, known, kind, n, i, state in online if known])


_NAMES: dict[str, tuple[ApplianceProfile, list[str]]] = {}


def _names(profile: ApplianceProfile) -> list[str]:
    """The profile's metric names in order (built once per profile; callers must not change the list)."""
    cached = _NAMES.get(profile.kind)
    if cached is None or cached[0] is not profile:
        cached = _NAMES[profile.kind] = (profile, [spec.name for spec in profile.metrics])
    return cached[1]


def baseline_of(values: np.ndarray) -> np.ndarray:
    """Per-metric mean over the rows of ``values`` (a device's first readings; ``(n, m)``, or
    ``(devices, n, m)`` for many at once); NaN where none has it."""
    present = ~np.isnan(values)
    cnt = present.sum(axis=-2)
    sums = np.where(present, values, 0.0).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)


def _baselines(conn: Connection, plans: dict[str, _Plan], *, online: dict[str, tuple[int, OnlineState]],
               profiles: dict[str, ApplianceProfile]) -> dict[str, tuple[np.ndarray, bool, np.ndarray | None]]:
    """Each device's (baseline, complete, first readings NaN-padded): kept once complete (first
    readings None), else from its first readings."""
    out: dict[str, tuple[np.ndarray, bool, np.ndarray | None]] = {
        d: (online[d][1].baseline, online[d][1].complete, None) if d in online
        else (np.full(len(profiles[d].metrics), np.nan), False, None) for d in plans}
    forming: dict[str, list[str]] = defaultdict(list)
    for d in plans:
        if not out[d][1]:
            forming[profiles[d].kind].append(d)
    # A forming baseline needs the device's first readings: in the timeline when it holds them all.
    missing = {d: profiles[d].baseline_readings for ids in forming.values() for d in ids
               if plans[d].n_total > len(plans[d].timeline)}
    firsts = _first_readings(conn, missing) if missing else {}
    for ids in forming.values():  # one computation per kind, the devices' first readings NaN-padded
        profile = profiles[ids[0]]
        b = profile.baseline_readings
        first = [Window.of(firsts.get(d, []), _names(profile)).values if d in missing
                 else plans[d].timeline.values[:b] for d in ids]
        stacked = np.full((len(ids), b, len(profile.metrics)), np.nan)
        for i, rows in enumerate(first):
            stacked[i, :rows.shape[0]] = rows
        for d, rows, baseline, padded in zip(ids, first, baseline_of(stacked), stacked, strict=True):
            out[d] = (baseline, rows.shape[0] >= b, padded)
    return out


def _groups_in_order(profile: ApplianceProfile, device_ids: list[str], by_device: dict[str, list[Telemetry]],
                     stored: dict[str, tuple[int, bytes | None]]) -> tuple[list[_Group], list[str]]:
    """The usual case as groups, straight from the packed states: new devices, and known ones whose
    new readings all follow their stored window, with a complete baseline or a window that still
    holds every reading they ever had. Returns the groups and the devices left for ``_Plan``."""
    names = _names(profile)
    names_bytes = "\x1f".join(names).encode()
    w, m = profile.window, len(names)
    readings = [t for d in device_ids for t in by_device[d]]
    r_ts = np.fromiter((to_us(t.ts) for t in readings), np.int64, len(readings))
    r_seq = np.fromiter((t.seq for t in readings), np.int64, len(readings))
    r_values = np.array([[t.metrics.get(k, np.nan) for k in names] for t in readings], float).reshape(-1, m)
    # Devices keyed by (stored window length, new readings): each key becomes a group.
    keyed: dict[tuple[int, int], list[tuple[str, int, int, bytes | None]]] = defaultdict(list)
    rest: list[str] = []
    at = 0
    for device_id in device_ids:
        k = len(by_device[device_id])
        n_readings, state = stored.get(device_id, (0, None))
        if device_id not in stored:
            keyed[0, k].append((device_id, at, 0, None))
        elif state:
            stored_names, length, complete = state_header(state)
            if stored_names == names_bytes and length > 0 and (complete or n_readings == length < w):
                keyed[length, k].append((device_id, at, n_readings, state))
            else:
                rest.append(device_id)
        else:
            rest.append(device_id)
        at += k
    groups = []
    for (length, k), members in keyed.items():
        new_at = np.array([a for _, a, _, _ in members])[:, None] + np.arange(k)[None, :]  # (G, k)
        n_ts, n_seq, n_values = r_ts[new_at], r_seq[new_at], r_values[new_at]
        n_readings = np.array([n for _, _, n, _ in members], np.int64)
        ids = [d for d, _, _, _ in members]
        if length == 0:
            groups.append(_with_baselines(profile, ids, [False] * len(ids), n_ts, n_seq, n_values, start=0,
                                          n_total=n_readings + k, baseline=np.full((len(ids), m), np.nan),
                                          complete=np.zeros(len(ids), bool)))
            continue
        rec = unpack_many([s for _, _, _, s in members], len(names_bytes), length, m)
        s_ts, s_seq = rec["ts"].astype(np.int64), rec["seq"].astype(np.int64)
        after = (n_ts[:, 0] > s_ts[:, -1]) | ((n_ts[:, 0] == s_ts[:, -1]) & (n_seq[:, 0] > s_seq[:, -1]))
        rest += [d for d, ok in zip(ids, after.tolist(), strict=True) if not ok]
        if not after.all():
            ids = [d for d, ok in zip(ids, after.tolist(), strict=True) if ok]
            rec, n_ts, n_seq, n_values, n_readings = rec[after], n_ts[after], n_seq[after], n_values[after], n_readings[after]
            s_ts, s_seq = s_ts[after], s_seq[after]
            if not ids:
                continue
        keep = min(length, w - 1)  # the stored readings the new ones' windows reach back to
        s_values = rec["values"].reshape(len(ids), length, m).astype(float)
        groups.append(_with_baselines(
            profile, ids, [True] * len(ids), np.concatenate([s_ts[:, length - keep:], n_ts], axis=1),
            np.concatenate([s_seq[:, length - keep:], n_seq], axis=1),
            np.concatenate([s_values[:, length - keep:], n_values], axis=1), start=keep, n_total=n_readings + k,
            baseline=rec["baseline"].astype(float), complete=rec["complete"].astype(bool)))
    return groups, rest


def _with_baselines(profile: ApplianceProfile, device_ids: list[str], known: list[bool], ts_us: np.ndarray,
                    seq: np.ndarray, values: np.ndarray, *, start: int, n_total: np.ndarray, baseline: np.ndarray,
                    complete: np.ndarray) -> _Group:
    """A group of ``_groups_in_order``: a forming baseline is the mean of the device's first
    readings, all of which its timeline holds (kept once complete)."""
    forming = ~complete
    firsts = None
    if forming.any():
        b = profile.baseline_readings
        firsts = np.full((len(device_ids), b, values.shape[2]), np.nan)
        firsts[forming, :min(b, values.shape[1])] = values[forming, :b]
        baseline = baseline.copy()
        baseline[forming] = baseline_of(firsts[forming])
        complete = complete | (forming & (values.shape[1] >= b))
    return _Group(profile.kind, device_ids, known, ts_us, seq, values, start, n_total, baseline, complete, firsts)


def _groups_of_plans(conn: Connection, device_ids: list[str], by_device: dict[str, list[Telemetry]],
                     stored: dict[str, tuple[int, bytes | None]]) -> list[_Group]:
    """Known devices outside the usual case, each timeline built on its own, then grouped."""
    profiles = {d: PROFILES[by_device[d][0].kind] for d in device_ids}
    online = {d: (stored[d][0], OnlineState.unpack(stored[d][1], _names(profiles[d]))) for d in device_ids}
    plans: dict[str, _Plan] = {}
    for device_id in device_ids:
        new = by_device[device_id]
        profile = profiles[device_id]
        fresh = Window.of(new, _names(profile))
        n_readings, state = online[device_id]
        recent = state.window
        if len(recent) and fresh.key(0) > recent.key(-1):
            tail = recent.tail(profile.window - 1)
            plans[device_id] = _Plan(tail.then(fresh), len(tail), n_readings + len(fresh))
            continue
        # Counted, not read back: retention may have rolled the device's oldest readings up.
        oldest = (new[0].ts, new[0].seq)
        timeline = _timeline_from(conn, device_id, oldest, profile.window)
        key = (to_us(oldest[0]), oldest[1])
        before = sum(1 for r in timeline if (to_us(r.ts), r.seq) < key)
        plans[device_id] = _Plan(Window.of(timeline, _names(profile)), before, n_readings + len(new))
    baselines = _baselines(conn, plans, online=online, profiles=profiles)
    keyed: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for device_id, plan in plans.items():
        keyed[profiles[device_id].kind, len(plan.timeline), plan.start].append(device_id)
    groups = []
    for (kind, _, start), ids in keyed.items():
        tls = [plans[d].timeline for d in ids]
        groups.append(_Group(kind, ids, [True] * len(ids), np.stack([t.ts_us for t in tls]),
                             np.stack([t.seq for t in tls]), np.stack([t.values for t in tls]), start,
                             np.array([plans[d].n_total for d in ids], np.int64),
                             np.stack([baselines[d][0] for d in ids]), np.array([baselines[d][1] for d in ids]),
                             _firsts([baselines[d][2] for d in ids], PROFILES[kind])))
    return groups


def _firsts(per_device: list[np.ndarray | None], profile: ApplianceProfile) -> np.ndarray | None:
    """``_Group.firsts`` of devices whose first readings are known where their baseline forms."""
    if all(f is None for f in per_device):
        return None
    empty = np.full((profile.baseline_readings, len(profile.metrics)), np.nan)
    return np.stack([empty if f is None else f for f in per_device])


def _history_rows(group: _Group, profile: ApplianceProfile) -> list[_HistoryRow]:
    """Every new reading's point-in-time history row, device by device in (ts, seq) order."""
    w, b = profile.window, profile.baseline_readings
    g, n, m = group.values.shape
    # Each timeline behind w - 1 padding rows, so every window is one fancy index.
    values = np.concatenate([np.full((g, w - 1, m), np.nan), group.values], axis=1)
    ts_us = np.concatenate([np.zeros((g, w - 1), np.int64), group.ts_us], axis=1)
    rows = np.arange(group.start, n)                                   # (r,) timeline rows with a vector
    window = rows[:, None] + np.arange(w)[None, :]                     # (r, w) into the padded arrays
    first = np.maximum(rows - w + 1, 0) + w - 1                        # each window's first real reading
    # Days since each window's first reading, so a vector does not depend on where the timeline
    # it was computed from happened to start.
    days = (ts_us[:, window] - ts_us[:, first][:, :, None]) / 1e6 / 86400.0   # (G, r, w)
    position = group.n_total[:, None] - (n - 1 - rows)[None, :]        # (G, r) the reading's rank
    # While the baseline forms, a reading's baseline is the mean of the readings up to it. When
    # those all lie in its window its delta is 0 (no baseline); only a profile whose baseline is
    # longer than its window has forming readings beyond it.
    base = np.where((position <= min(b, w))[:, :, None], np.nan, group.baseline[:, None, :])
    if b > w:
        for i, j in zip(*np.nonzero((position > w) & (position <= b)), strict=True):
            base[i, j] = baseline_of(group.firsts[i, :position[i, j]])
    r = len(rows)
    matrix, has = feature_matrix(profile, days=days.reshape(g * r, w), values=values[:, window].reshape(g * r, w, m),
                                 baseline=base.reshape(g * r, m))
    vectors = encode_rows(profile, matrix, has)
    ids = np.repeat(np.arange(g), r).tolist()
    seqs, stamps = group.seq[:, group.start:].ravel().tolist(), group.ts_us[:, group.start:].ravel().tolist()
    return [(group.device_ids[i], seq, ts, n_readings, vector) for i, seq, ts, n_readings, vector
            in zip(ids, seqs, stamps, position.ravel().tolist(), vectors, strict=True)]


def _states(group: _Group, profile: ApplianceProfile) -> list[bytes]:
    """Each device's new packed state: its latest ``window`` readings and its baseline."""
    keep = min(group.ts_us.shape[1], profile.window)
    return pack_many(group.ts_us[:, -keep:], group.seq[:, -keep:], group.values[:, -keep:], group.baseline,
                     group.complete, _names(profile))


def _first_readings(conn: Connection, limits: dict[str, int]) -> dict[str, list[Reading]]:
    """Each device's first ``limits[device]`` readings, oldest first (one windowed query per limit)."""
    by_limit: dict[int, list[str]] = defaultdict(list)
    for device_id, limit in limits.items():
        by_limit[limit].append(device_id)
    out: dict[str, list[Reading]] = defaultdict(list)
    for limit, ids in by_limit.items():
        rank = func.row_number().over(partition_by=ReadingRow.device_id,
                                      order_by=(ReadingRow.ts, ReadingRow.seq)).label("rank")
        ranked = (select(ReadingRow.device_id, ReadingRow.kind, ReadingRow.seq, ReadingRow.ts, ReadingRow.metrics, rank)
                  .where(ReadingRow.device_id.in_(ids)).subquery())
        for r in conn.execute(select(ranked).where(ranked.c.rank <= limit)):
            out[r.device_id].append(Reading(device_id=r.device_id, kind=r.kind, seq=r.seq, ts=r.ts,
                                            metrics=dict(r.metrics)))
    return {d: sorted(rs, key=lambda r: (r.ts, r.seq)) for d, rs in out.items()}


def _timeline_from(conn: Connection, device_id: str, oldest: tuple[datetime, int], window: int) -> list[Reading]:
    """A device's readings from ``oldest`` (ts, seq) on, with the ``window - 1`` readings before it."""
    ts, seq = oldest
    at_or_after = (ReadingRow.ts > ts) | ((ReadingRow.ts == ts) & (ReadingRow.seq >= seq))
    mine = ReadingRow.device_id == device_id
    cols = (ReadingRow.device_id, ReadingRow.kind, ReadingRow.seq, ReadingRow.ts, ReadingRow.metrics)
    since = conn.execute(select(*cols).where(mine, at_or_after).order_by(ReadingRow.ts, ReadingRow.seq)).all()
    before = conn.execute(select(*cols).where(mine, ~at_or_after)
                          .order_by(ReadingRow.ts.desc(), ReadingRow.seq.desc()).limit(window - 1)).all()
    return [Reading(device_id=r.device_id, kind=r.kind, seq=r.seq, ts=r.ts, metrics=dict(r.metrics))
            for r in [*reversed(before), *since]]
