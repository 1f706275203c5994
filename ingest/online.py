"""Feature refresh for one write batch: the online vectors and point-in-time history of touched devices.

Set-based over the batch and vectorised: one query loads the touched devices' online rows (locked on
PostgreSQL, so two workers serialise per device), every new reading's window goes into one numpy
computation per appliance kind (``features_of_windows``), and three driver-level executemany
statements (``ingest.bulk``) write the history rows and the online rows (insert for new devices,
update for known ones). New readings and forming baselines are also built one array per kind, so
the per-device Python work is a few slices, not a few numpy constructions.

In the usual case — readings newer than the device's stored window — nothing is read back from
``readings``. A late reading (older than the newest one stored) makes that device read its timeline
back from ``readings`` from the late reading on, so the vectors after it are corrected too.
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
from ingest.features import Reading, features_of_windows
from ingest.window import OnlineState, Window, to_us

__all__ = ["refresh_features"]

@dataclass(slots=True)
class _Plan:
    """One device's timeline for this batch: rows ``start:`` get history vectors."""

    timeline: Window
    start: int
    n_total: int


#: ``(device_id, seq, ts as integer microseconds, n_readings, vector)``
_HistoryRow = tuple[str, int, int, int, dict[str, float]]


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
    profiles = {d: PROFILES[new[0].kind] for d, new in by_device.items()}
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    found = select_in(conn, f"SELECT device_id, n_readings, state FROM features_online WHERE device_id IN ?*{lock}",
                      list(by_device))
    online = {d: (n, OnlineState.unpack(state, _names(profiles[d]))) for d, n, state in found}
    plans: dict[str, _Plan] = {}
    slow: list[str] = []
    windows = _fresh_windows(by_device, profiles)
    for device_id, new in by_device.items():
        profile = profiles[device_id]
        fresh = windows[device_id]
        if device_id not in online:  # the device's first readings ever: nothing earlier exists
            plans[device_id] = _Plan(fresh, 0, len(fresh))
            continue
        n_readings, state = online[device_id]
        recent = state.window
        if len(recent) and fresh.key(0) > recent.key(-1):
            tail = recent.tail(profile.window - 1)
            plans[device_id] = _Plan(tail.then(fresh), len(tail), n_readings + len(fresh))
        else:
            slow.append(device_id)
    if slow:
        # Counted, not read back: retention may have rolled the device's oldest readings up.
        totals = {d: online[d][0] + len(by_device[d]) for d in slow}
        for device_id in slow:
            oldest = min((t.ts, t.seq) for t in by_device[device_id])
            timeline = _timeline_from(conn, device_id, oldest, profiles[device_id].window)
            key = (to_us(oldest[0]), oldest[1])
            before = sum(1 for r in timeline if (to_us(r.ts), r.seq) < key)
            plans[device_id] = _Plan(Window.of(timeline, _names(profiles[device_id])), before, totals[device_id])
    baselines = _baselines(conn, plans, online=online, profiles=profiles)
    history = _history_rows(plans, baselines=baselines, profiles=profiles)
    codec = codec_for(conn)
    # Encoded once for all rows: the online row repeats its device's newest history row.
    ts_text = codec.ts_of_us(np.fromiter((row[2] for row in history), np.int64, len(history)))
    values_json = [codec.json(row[4]) for row in history]
    newest = {row[0]: i for i, row in enumerate(history)}
    updated_at = codec.ts(now)
    fresh_rows, known_rows = [], []
    for device_id, plan in plans.items():
        profile = profiles[device_id]
        baseline, complete = baselines[device_id]
        state = OnlineState(plan.timeline.tail(profile.window), baseline, complete).pack(_names(profile))
        i = newest[device_id]
        if device_id in online:
            known_rows.append((ts_text[i], plan.n_total, values_json[i], updated_at, state, device_id))
        else:
            fresh_rows.append((device_id, profile.kind, ts_text[i], plan.n_total, values_json[i], updated_at, state))
    upsert_history(conn, [(d, seq, ts, n, values) for (d, seq, _, n, _), ts, values
                          in zip(history, ts_text, values_json, strict=True)])
    insert_online(conn, fresh_rows)
    update_online(conn, known_rows)


_NAMES: dict[str, tuple[ApplianceProfile, list[str]]] = {}


def _names(profile: ApplianceProfile) -> list[str]:
    """The profile's metric names in order (built once per profile; callers must not change the list)."""
    cached = _NAMES.get(profile.kind)
    if cached is None or cached[0] is not profile:
        cached = _NAMES[profile.kind] = (profile, [spec.name for spec in profile.metrics])
    return cached[1]


def _fresh_windows(by_device: dict[str, list[Telemetry]],
                   profiles: dict[str, ApplianceProfile]) -> dict[str, Window]:
    """Each device's new readings as a window in (ts, seq) order: one array per kind, sliced per device."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for device_id in by_device:
        by_kind[profiles[device_id].kind].append(device_id)
    out: dict[str, Window] = {}
    for device_ids in by_kind.values():
        ordered = [new if len(new) == 1 else sorted(new, key=lambda t: (t.ts, t.seq))
                   for new in (by_device[d] for d in device_ids)]
        window = Window.of([t for new in ordered for t in new], _names(profiles[device_ids[0]]))
        at = 0
        for device_id, new in zip(device_ids, ordered, strict=True):
            out[device_id] = window.rows(at, at + len(new))
            at += len(new)
    return out


def baseline_of(values: np.ndarray) -> np.ndarray:
    """Per-metric mean over the rows of ``values`` (a device's first readings; ``(n, m)``, or
    ``(devices, n, m)`` for many at once); NaN where none has it."""
    present = ~np.isnan(values)
    cnt = present.sum(axis=-2)
    sums = np.where(present, values, 0.0).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)


def _baselines(conn: Connection, plans: dict[str, _Plan], *, online: dict[str, tuple[int, OnlineState]],
               profiles: dict[str, ApplianceProfile]) -> dict[str, tuple[np.ndarray, bool]]:
    """Each device's (baseline, complete): kept once complete, else from its first readings."""
    out = {d: (online[d][1].baseline, online[d][1].complete) if d in online
           else (np.full(len(profiles[d].metrics), np.nan), False) for d in plans}
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
        for d, rows, baseline in zip(ids, first, baseline_of(stacked), strict=True):
            out[d] = (baseline, rows.shape[0] >= b)
    return out


def _history_rows(plans: dict[str, _Plan], *, baselines: dict[str, tuple[np.ndarray, bool]],
                  profiles: dict[str, ApplianceProfile]) -> list[_HistoryRow]:
    """Every new reading's point-in-time history row, one vectorised computation per appliance kind;
    a device's rows are consecutive and in (ts, seq) order."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for device_id in plans:
        by_kind[profiles[device_id].kind].append(device_id)
    out: list[_HistoryRow] = []
    for kind, device_ids in by_kind.items():
        profile = PROFILES[kind]
        w, m = profile.window, len(profile.metrics)
        # All devices' timelines in one array, each behind w - 1 padding rows so no window reaches
        # into the previous device: a history row's window is then one fancy index.
        pad_v, pad_t = np.full((w - 1, m), np.nan), np.zeros(w - 1, np.int64)
        parts_v, parts_t, ends, firsts, base, meta = [], [], [], [], [], []
        no_baseline = np.full(m, np.nan)
        offset = 0
        for device_id in device_ids:
            plan = plans[device_id]
            tl, n = plan.timeline, len(plan.timeline)
            parts_v += [pad_v, tl.values]
            parts_t += [pad_t, tl.ts_us]
            rows = range(plan.start, n)
            at = offset + w - 1
            ends.extend(at + i for i in rows)
            firsts.extend(at + max(i - w + 1, 0) for i in rows)
            offset += w - 1 + n
            device_base = baselines[device_id][0]
            for i in rows:
                position = plan.n_total - (n - 1 - i)
                if position <= profile.baseline_readings and position == i + 1:
                    # The baseline is still forming: this row sees only the readings up to it. Those
                    # are its whole window (the baseline is shorter than the window): delta 0.
                    base.append(no_baseline if i + 1 <= w else baseline_of(tl.values[: i + 1]))
                else:
                    base.append(device_base)
                meta.append((device_id, int(tl.seq[i]), int(tl.ts_us[i]), position))
        all_v, all_t = np.concatenate(parts_v), np.concatenate(parts_t)
        index = np.asarray(ends)[:, None] + np.arange(-w + 1, 1)[None, :]      # (r, w)
        # Days since each window's first reading, so a vector does not depend on where the
        # timeline it was computed from happened to start.
        days = (all_t[index] - all_t[np.asarray(firsts)][:, None]) / 1e6 / 86400.0
        vectors = features_of_windows(profile, days=days, values=all_v[index], baseline=np.vstack(base))
        out.extend((*row, vector) for row, vector in zip(meta, vectors, strict=True))
    return out


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
