"""Retention: readings past the window become daily aggregates, losing nothing the features need."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import FeatureHistoryRow, ReadingRow, create_schema, make_engine
from ingest.retention import KEEP_NEWEST, KEEP_OLDEST, RollupResult, roll_up
from ingest.store import Inbound, IngestStore
from tests.conftest import START

DAYS = 45
EVERY_H = 6
DEVICES = ("ac-1", "ac-2")
RETENTION = timedelta(days=30)


@pytest.fixture
def engine(any_engine: Engine) -> Engine:
    return any_engine


def _telemetry(device: str, seq: int) -> Telemetry:
    ts = START + timedelta(hours=EVERY_H * seq)
    return Telemetry(device_id=device, kind="air_conditioner", model="M", firmware="1.0", seq=seq, ts=ts,
                     metrics={"filter_dp_pa": 60 + seq * 0.5 + (seq % 5), "fan_current_a": 0.8 + (seq % 3) / 10})


def _msg(t: Telemetry, clock: ManualClock) -> Inbound:
    return Inbound(telemetry_topic(t.device_id), encode_telemetry(t), clock.now())


def _ingest(store: IngestStore, clock: ManualClock, seqs: range, *, skip: frozenset[int] = frozenset(),
            roll_up_daily: bool = False) -> None:
    """Each day's readings as that day's batch, the clock at the end of that day (as live)."""
    per_day = 24 // EVERY_H
    for start in range(seqs.start, seqs.stop, per_day):
        day = [s for s in range(start, min(start + per_day, seqs.stop)) if s not in skip]
        clock.set(START + timedelta(hours=EVERY_H * (start + per_day)))
        store.write_batch([_msg(_telemetry(d, s), clock) for s in day for d in DEVICES])
        if roll_up_daily:
            store.roll_up(retention=RETENTION)


def _fresh_store(clock: ManualClock) -> IngestStore:
    eng = make_engine("sqlite://")
    create_schema(eng)
    return IngestStore(eng, clock=clock)


def test_roll_up_keeps_features_and_aggregates_add_up(engine: Engine) -> None:
    clock = ManualClock(START)
    store = IngestStore(engine, clock=clock)
    n = DAYS * 24 // EVERY_H
    _ingest(store, clock, range(n))
    before = store.latest_features(list(DEVICES))
    done = store.roll_up(retention=RETENTION)

    cutoff = clock.now() - RETENTION
    old = [s for s in range(n) if _telemetry("ac-1", s).ts < cutoff]
    rolled = old[KEEP_OLDEST:len(old) - KEEP_NEWEST]
    assert done.readings_rolled_up == len(rolled) * len(DEVICES) > 0
    assert store.latest_features(list(DEVICES)) == before
    with engine.connect() as conn:
        kept = conn.scalar(select(func.count()).select_from(ReadingRow).where(ReadingRow.device_id == "ac-1"))
        history = conn.scalar(select(func.count()).select_from(FeatureHistoryRow)
                              .where(FeatureHistoryRow.device_id == "ac-1"))
    assert kept == history == n - len(rolled)

    # Every rolled-up reading is in its day's aggregate: count, min, mean and max per metric.
    expected: dict[tuple[object, str], list[float]] = defaultdict(list)
    for s in rolled:
        t = _telemetry("ac-1", s)
        for metric, value in t.metrics.items():
            expected[(t.ts.date(), metric)].append(value)
    got = {(a.day, a.metric): a for a in store.daily_aggregates("ac-1")}
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        a = got[key]
        assert (a.n, a.min, a.max) == (len(values), min(values), max(values))
        assert a.mean == pytest.approx(sum(values) / len(values))

    again = store.roll_up(retention=RETENTION)  # idempotent: nothing left to roll, nothing changes
    assert again.readings_rolled_up == 0
    assert {(a.day, a.metric): a for a in store.daily_aggregates("ac-1")} == got


def test_late_reading_after_roll_up_equals_a_store_that_kept_everything() -> None:
    """The recomputation a late reading triggers reads back only readings retention kept."""
    n = DAYS * 24 // EVERY_H
    late = n - 100  # 25 days old when it arrives: inside max_past, its window reaches past the cutoff
    clock_a, clock_b = ManualClock(START), ManualClock(START)
    rolled, reference = _fresh_store(clock_a), _fresh_store(clock_b)
    _ingest(rolled, clock_a, range(n), skip=frozenset({late}), roll_up_daily=True)
    _ingest(reference, clock_b, range(n), skip=frozenset({late}))
    for store, clock in ((rolled, clock_a), (reference, clock_b)):
        assert store.write_batch([_msg(_telemetry(d, late), clock) for d in DEVICES]).accepted == 2
    assert rolled.latest_features(list(DEVICES)) == reference.latest_features(list(DEVICES))
    kept = {(v.ts, v.n_readings): v.values for v in rolled.feature_history("ac-1", limit=10_000)}
    full = {(v.ts, v.n_readings): v.values for v in reference.feature_history("ac-1", limit=10_000)}
    assert kept and all(full[key] == values for key, values in kept.items())


def test_daily_roll_ups_merge_into_the_same_aggregates_as_one() -> None:
    """A day split over several runs (and a run per day) gives what one run at the end gives."""
    n = DAYS * 24 // EVERY_H
    clock_a, clock_b = ManualClock(START), ManualClock(START)
    daily, once = _fresh_store(clock_a), _fresh_store(clock_b)
    _ingest(daily, clock_a, range(n), roll_up_daily=True)
    _ingest(once, clock_b, range(n))
    once.roll_up(retention=RETENTION)

    def view(store: IngestStore) -> dict[tuple[object, str], tuple[int, float, float, float]]:
        return {(a.day, a.metric): (a.n, a.min, round(a.mean, 9), a.max) for a in store.daily_aggregates("ac-2")}

    assert view(daily) == view(once) != {}


def test_retention_shorter_than_accepted_past_is_refused(clock: ManualClock) -> None:
    store = _fresh_store(clock)
    with pytest.raises(ValueError, match="counted twice"):
        store.roll_up(retention=timedelta(days=7))


@pytest.mark.parametrize("any_engine", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_concurrent_roll_ups_count_each_reading_once(engine: Engine) -> None:
    """Two roll-ups racing on PostgreSQL (no jobs lease between them) give what one gives.

    A third session holds ``readings_daily`` locked until both runs are waiting on a lock, so both
    have read the same candidate readings before either writes: the race, every time.
    """
    clock = ManualClock(START)
    store = IngestStore(engine, clock=clock)
    n = DAYS * 24 // EVERY_H
    _ingest(store, clock, range(n))
    cutoff = clock.now() - RETENTION
    old = [s for s in range(n) if _telemetry("ac-1", s).ts < cutoff]
    expected_rolled = len(old[KEEP_OLDEST:len(old) - KEEP_NEWEST]) * len(DEVICES)

    results: list[RollupResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(roll_up(engine, now=clock.now(), retention=RETENTION))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE readings_daily IN EXCLUSIVE MODE"))
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            blocker.execute(text("SELECT pg_stat_clear_snapshot()"))  # activity is cached per transaction
            waiting = blocker.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                          "AND wait_event_type = 'Lock'"))
            if waiting == 2:
                break
            time.sleep(0.05)
        assert waiting == 2, "the two roll-ups did not both reach a lock"
        blocker.commit()  # releases the table lock: both proceed
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.readings_rolled_up for r in results) == [0, expected_rolled]

    with engine.connect() as conn:
        left = {d: conn.scalar(select(func.count()).select_from(ReadingRow).where(ReadingRow.device_id == d))
                for d in DEVICES}
    for d in DEVICES:
        counts: dict[str, int] = defaultdict(int)
        for a in store.daily_aggregates(d):
            counts[a.metric] += a.n
        assert set(counts) == {"filter_dp_pa", "fan_current_a"}
        assert all(c + left[d] == n for c in counts.values()), (d, counts, left[d])  # each reading once
