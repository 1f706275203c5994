"""Retention: raw readings older than the window are rolled into daily per-metric aggregates.

A reading whose timestamp is older than ``now - retention`` is folded into ``readings_daily`` (one
row per device, UTC day and metric: count, min, max, sum) and deleted, with its point-in-time row in
``features_history``, in the same transaction, so a rerun or a crash part-way changes nothing twice.
The aggregates are built from the rows the ``DELETE … RETURNING`` removed (SQLite 3.35+ and
PostgreSQL), so two roll-ups running at once never count a reading twice: on PostgreSQL the second
waits on the first's row locks and then finds those readings gone; SQLite serialises the writers.

What the features need is never rolled up:

- each device's latest ``window`` readings older than the cutoff (and all newer ones): a late
  reading (never older than the cutoff, see below) reads back the ``window - 1`` readings before it;
- each device's first ``baseline_readings`` readings, its baseline (``delta``) for ever;
- readings the ingester could still receive: ``retention`` must be at least the ingester's
  ``max_past`` (older timestamps are refused as clock skew), so a redelivered reading is always
  still there for the ``(device_id, seq)`` check, never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, delete, func, select

from ingest.contract import PROFILES
from ingest.db import FeatureHistoryRow, ReadingDailyRow, ReadingRow
from ingest.online import upsert

__all__ = ["DailyAggregate", "RollupResult", "daily_aggregates", "roll_up"]

#: Readings kept at the head and tail of every device's timeline, whatever their age.
KEEP_NEWEST = max(p.window for p in PROFILES.values())
KEEP_OLDEST = max(p.baseline_readings for p in PROFILES.values())


@dataclass(frozen=True, slots=True)
class DailyAggregate:
    """One metric of one device over one UTC day, from readings past retention."""

    device_id: str
    kind: str
    day: date
    metric: str
    n: int
    min: float
    mean: float
    max: float


@dataclass(frozen=True, slots=True)
class RollupResult:
    """What one ``roll_up`` did."""

    cutoff: datetime
    readings_rolled_up: int
    devices: int
    daily_rows_written: int


def roll_up(engine: Engine, *, now: datetime, retention: timedelta, devices_per_transaction: int = 500) -> RollupResult:
    """Roll readings older than ``now - retention`` into ``readings_daily`` (see the module docstring)."""
    cutoff = now - retention
    with engine.connect() as conn:
            candidates = list(conn.scalars(select(ReadingRow.device_id).where(ReadingRow.ts < cutoff).distinct()
                                       .order_by(ReadingRow.device_id)))
    rolled = written = touched = 0
    for i in range(0, len(candidates), devices_per_transaction):
        with engine.begin() as conn:
            n, rows, devices = _roll_up_devices(conn, candidates[i:i + devices_per_transaction], cutoff=cutoff)
        rolled, written, touched = rolled + n, written + rows, touched + devices
    return RollupResult(cutoff=cutoff, readings_rolled_up=rolled, devices=touched, daily_rows_written=written)


def _roll_up_devices(conn: Connection, device_ids: list[str], *, cutoff: datetime) -> tuple[int, int, int]:
    newest = func.row_number().over(partition_by=ReadingRow.device_id,
                                    order_by=(ReadingRow.ts.desc(), ReadingRow.seq.desc())).label("newest")
    oldest = func.row_number().over(partition_by=ReadingRow.device_id,
                                    order_by=(ReadingRow.ts, ReadingRow.seq)).label("oldest")
    # Ranked among the readings older than the cutoff: every newer one comes after them anyway.
    ranked = (select(ReadingRow.id, newest, oldest)
              .where(ReadingRow.device_id.in_(device_ids), ReadingRow.ts < cutoff).subquery())
    # In id order, and the aggregates below in key order: two runs take their locks in one order.
    ids = list(conn.scalars(select(ranked.c.id).where(ranked.c.newest > KEEP_NEWEST, ranked.c.oldest > KEEP_OLDEST)
                            .order_by(ranked.c.id)))
    # Aggregate what this transaction deleted, not what it selected: a concurrent roll-up that
    # selected the same readings waits on their row locks and then deletes (and counts) none of them.
    picked: list[Any] = []
    for j in range(0, len(ids), 900):  # SQLite caps bound parameters per statement
        picked += conn.execute(delete(ReadingRow).where(ReadingRow.id.in_(ids[j:j + 900]))
                               .returning(ReadingRow.device_id, ReadingRow.kind, ReadingRow.seq, ReadingRow.ts,
                                          ReadingRow.metrics)).all()
    if not picked:
        return 0, 0, 0
    sums: dict[tuple[str, date, str], list[Any]] = {}
    kinds: dict[str, str] = {}
    for r in picked:
        kinds[r.device_id] = r.kind
        day = r.ts.date()
        for metric, value in r.metrics.items():
            agg = sums.get((r.device_id, day, metric))
            if agg is None:
                sums[(r.device_id, day, metric)] = [1, value, value, value]
            else:
                agg[0] += 1
                agg[1] = min(agg[1], value)
                agg[2] = max(agg[2], value)
                agg[3] += value
    stmt = upsert(conn, ReadingDailyRow)
    table = ReadingDailyRow.__table__.c
    conn.execute(stmt.on_conflict_do_update(index_elements=["device_id", "day", "metric"], set_={
        "n": table.n + stmt.excluded.n,
        "min": case((stmt.excluded.min < table.min, stmt.excluded.min), else_=table.min),
        "max": case((stmt.excluded.max > table.max, stmt.excluded.max), else_=table.max),
        "total": table.total + stmt.excluded.total,
    }), [{"device_id": d, "kind": kinds[d], "day": day, "metric": metric, "n": n, "min": lo, "max": hi, "total": tot}
         for (d, day, metric), (n, lo, hi, tot) in sorted(sums.items())])
    history = FeatureHistoryRow.__table__.c
    conn.execute(delete(FeatureHistoryRow).where(and_(history.device_id == bindparam("d"),
                                                      history.seq == bindparam("s"))),
                 [{"d": r.device_id, "s": r.seq} for r in picked])
    return len(picked), len(sums), len(kinds)


def daily_aggregates(engine: Engine, device_id: str, *, since: date | None = None) -> list[DailyAggregate]:
    """A device's rolled-up days, oldest first (per metric within a day)."""
    stmt = select(ReadingDailyRow).where(ReadingDailyRow.device_id == device_id)
    if since is not None:
        stmt = stmt.where(ReadingDailyRow.day >= since)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(ReadingDailyRow.day, ReadingDailyRow.metric)).all()
    return [DailyAggregate(device_id=r.device_id, kind=r.kind, day=r.day, metric=r.metric, n=r.n, min=r.min,
                           mean=r.total / r.n, max=r.max) for r in rows]
