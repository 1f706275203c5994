"""The write path's driver-level statements: chunked, padded, so their texts do not follow the batch size."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, select

from ingest.bulk import _CHUNK, _chunks
from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import FeatureHistoryRow, ReadingRow
from ingest.store import Inbound, IngestStore


@pytest.fixture
def engine(any_engine: Engine) -> Engine:
    return any_engine


def _reading(clock: ManualClock, device: int, seq: int) -> Inbound:
    t = Telemetry(device_id=f"rc-{device}", kind="rice_cooker", model="M", firmware="1.0", seq=seq,
                  ts=clock.now() - timedelta(hours=100 - seq), metrics={"time_to_boil_s": 700.0 + seq})
    return Inbound(telemetry_topic(t.device_id), encode_telemetry(t), clock.now())


@given(st.lists(st.integers(), max_size=3 * _CHUNK + 5))
def test_chunks_cover_the_rows_in_order_and_pad_only_the_last_to_a_power_of_two(rows: list[int]) -> None:
    chunks = _chunks(rows)
    sizes = [min(_CHUNK, len(rows) - at) for at in range(0, len(rows), _CHUNK)]
    assert [c[:n] for c, n in zip(chunks, sizes, strict=True)] == [rows[at:at + _CHUNK] for at in range(0, len(rows), _CHUNK)]
    for chunk, n in zip(chunks, sizes, strict=True):
        assert len(chunk) & (len(chunk) - 1) == 0 and n <= len(chunk) < 2 * n  # a power of two, under twice the rows
        assert chunk[n:] == [chunk[n - 1]] * (len(chunk) - n)
    assert all(len(c) == _CHUNK for c in chunks[:-1])


@pytest.fixture
def statements(engine: Engine) -> Iterator[set[str]]:
    """The SQL texts the engine runs while the test does."""
    seen: set[str] = set()

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.add(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_statement_texts_do_not_follow_the_batch_size(engine: Engine, clock: ManualClock,
                                                      statements: set[str]) -> None:
    """Batches of 1 to 300 readings run at most eight texts of each multi-row insert and IN-list
    select on SQLite (a text per batch size fills the driver's statement cache and the writer's
    memory); on PostgreSQL one text of each insert (arrays, whatever the batch size) and no IN-list
    select is a prepared statement (its generic plan can scan the table)."""
    store = IngestStore(engine, clock=clock)
    for seq, size in enumerate(range(1, 301, 3)):
        store.write_batch([_reading(clock, device, seq) for device in range(size)])

    def texts(fragment: str) -> int:
        return sum(fragment in s for s in statements)

    if engine.dialect.name == "sqlite":
        assert 1 < texts("INSERT INTO readings") <= 8
        assert 1 < texts("FROM devices WHERE device_id IN") <= 8
        assert 1 < texts("FROM features_online WHERE device_id IN") <= 8
        return
    for table in ("readings", "devices", "features_history", "features_online"):
        assert texts(f"INSERT INTO {table} ") == 1
    # The IN-list selects run on the raw psycopg cursor, unprepared (SQLAlchemy's events do not see
    # them): ask the server. The prepared insert shows this is the connection the store used.
    with engine.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
    assert any("INSERT INTO readings" in s for s in prepared)  # psycopg prepares what repeats...
    assert not any("WHERE device_id IN" in s for s in prepared)  # ...but not the IN-list selects


def test_a_batch_over_many_chunks_stores_each_reading_once(engine: Engine, clock: ManualClock) -> None:
    """Stored readings again at a chunk's end and in a padded last chunk are duplicates, not doubles."""
    store = IngestStore(engine, clock=clock)
    first = [_reading(clock, device, 1) for device in range(2 * _CHUNK + 3)]
    assert store.write_batch(first).accepted == len(first)
    new = [_reading(clock, device, 2) for device in range(2 * _CHUNK)]
    # Chunks on SQLite: new[:127] + first[5] | new[127:255] | first[130], new[255], first[7] padded
    # with first[7] again: the padding repeats a reading already stored.
    again = [*new[:127], first[5], *new[127:255], first[130], new[255], first[7]]
    result = store.write_batch(again)
    assert (result.accepted, result.duplicates) == (len(new), 3)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ReadingRow)) == len(first) + len(new)
        assert conn.scalar(select(func.count()).select_from(FeatureHistoryRow)) == len(first) + len(new)
    assert [v.n_readings for v in store.latest_features(["rc-0", "rc-255", "rc-256"])] == [2, 2, 1]
