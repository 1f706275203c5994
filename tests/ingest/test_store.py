"""The ingest write path: exactly once per (device_id, seq), dead letters with reasons, features."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ingest.clock import ManualClock
from ingest.contract import MAX_PAYLOAD_BYTES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import DeviceInfo, Inbound, IngestStore
from tests.conftest import START
from tests.payloads import bad_payloads


@pytest.fixture
def engine(any_engine: Engine) -> Engine:
    """The write path runs on every backend (SQLite and PostgreSQL)."""
    return any_engine


def _msg(clock: ManualClock, *, device: str = "ac-1", seq: int, hours_ago: float, dp: float,
         kind: str = "air_conditioner") -> Inbound:
    metrics = {"filter_dp_pa": dp, "fan_current_a": 0.8 + seq / 1000} if kind == "air_conditioner" \
        else {"time_to_boil_s": 700.0 + seq}
    t = Telemetry(device_id=device, kind=kind, model="M", firmware="1.0", seq=seq,
                  ts=clock.now() - timedelta(hours=hours_ago), metrics=metrics)
    return Inbound(telemetry_topic(device), encode_telemetry(t), clock.now())


def test_redelivery_changes_nothing(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    batch = [_msg(clock, seq=i, hours_ago=40 - i, dp=60 + i) for i in range(30)]
    first = store.write_batch(batch)
    again = store.write_batch(batch[5:] + batch[:5])
    assert (first.accepted, first.duplicates) == (30, 0)
    assert (again.accepted, again.duplicates, again.touched_devices) == (0, 30, ())
    assert store.counts()["readings"] == 30
    assert len(store.feature_history("ac-1")) == 30


def test_late_reading_recomputes_features(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    in_order = [_msg(clock, seq=i, hours_ago=40 - i, dp=60 + 2 * i) for i in range(30)]
    store.write_batch([m for i, m in enumerate(in_order) if i != 27])
    store.write_batch([in_order[27]])  # arrives late
    late_store_vector = store.latest_features(["ac-1"])[0]
    history_late = {v.ts: v.values for v in store.feature_history("ac-1")}

    clock2 = ManualClock(clock.now())
    from ingest.db import create_schema, make_engine
    other = make_engine("sqlite://")
    create_schema(other)
    reference = IngestStore(other, clock=clock2)
    reference.write_batch(in_order)
    assert late_store_vector.values == reference.latest_features(["ac-1"])[0].values
    assert history_late == {v.ts: v.values for v in reference.feature_history("ac-1")}


def test_bad_messages_are_dead_lettered_and_good_ones_still_stored(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id="rc-bad", kind="rice_cooker")])
    cases = bad_payloads(clock.now())
    good = [_msg(clock, seq=i, hours_ago=3 - i, dp=70) for i in range(3)]
    batch = [Inbound(c.topic, c.payload, clock.now()) for c in cases] + good
    result = store.write_batch(batch)
    assert result.accepted == 3
    assert result.rejected == len(cases)
    letters = {d.payload: d for d in store.dead_letters(limit=1000)}
    for case in cases:
        assert letters[case.payload[:MAX_PAYLOAD_BYTES]].reason == case.reason, case.name
        assert letters[case.payload[:MAX_PAYLOAD_BYTES]].detail


def test_kind_mismatch_against_registry_is_refused(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id="ac-9", kind="rice_cooker", household_id="h1")])
    result = store.write_batch([_msg(clock, device="ac-9", seq=1, hours_ago=1, dp=60)])
    assert (result.accepted, result.rejected) == (0, 1)
    assert store.dead_letters()[0].reason == "kind_mismatch"


def test_presence_and_pending_vectors(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id="ac-1", kind="air_conditioner", household_id="h1",
                                       service_area="SE1")])
    store.write_batch([Inbound("appliances/ac-1/status", b"online", clock.now()),
                       _msg(clock, seq=1, hours_ago=1, dp=60)])
    assert store.device("ac-1").status == "online"  # type: ignore[union-attr]
    pending = store.pending_vectors()
    assert [v.device_id for v in pending] == ["ac-1"]
    store.mark_scored(pending)
    assert store.pending_vectors() == []
    store.write_batch([_msg(clock, seq=2, hours_ago=0.5, dp=61)])
    assert [v.device_id for v in store.pending_vectors()] == ["ac-1"]


def test_two_readings_with_one_timestamp_keep_their_own_history_rows(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    same = [_msg(clock, seq=i, hours_ago=1, dp=60 + i) for i in range(4)]
    assert store.write_batch(same).accepted == 4
    assert len(store.feature_history("ac-1")) == 4


def test_a_redelivered_old_reading_does_not_roll_the_device_back(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    old = _msg(clock, seq=1, hours_ago=5, dp=60)
    store.write_batch([old])
    newer = Telemetry(device_id="ac-1", kind="air_conditioner", model="M", firmware="2.0", seq=2,
                      ts=clock.now() - timedelta(hours=1), metrics={"filter_dp_pa": 61.0})
    store.write_batch([Inbound(telemetry_topic("ac-1"), encode_telemetry(newer), clock.now())])
    store.write_batch([old])  # redelivered
    device = store.device("ac-1")
    assert device is not None and device.firmware == "2.0" and device.last_seen == newer.ts


def test_a_nul_in_the_topic_is_dead_lettered_not_fatal(engine: Engine, clock: ManualClock) -> None:
    """PostgreSQL text cannot hold NUL: the refused topic is stored with it replaced."""
    store = IngestStore(engine, clock=clock)
    result = store.write_batch([Inbound("appliances/a\x00c/telemetry", b"{}", clock.now()),
                                _msg(clock, seq=1, hours_ago=1, dp=60)])
    assert (result.accepted, result.rejected) == (1, 1)
    assert store.dead_letters()[0].topic == "appliances/a\ufffdc/telemetry"


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(list(range(12, 30))), cuts=st.lists(st.integers(1, 29), max_size=5))
def test_any_arrival_order_and_batching_gives_the_in_order_features(order: list[int], cuts: list[int]) -> None:
    # The baseline is the device's first readings as received (AC: 12), so those come first, in order;
    # everything after may arrive in any order and any batching.
    clock = ManualClock(START)
    msgs = [_msg(clock, seq=i, hours_ago=40 - i, dp=60 + 2 * i + (i % 3)) for i in range(30)]
    shuffled = msgs[:12] + [msgs[i] for i in order]
    bounds = [0, *sorted(set(cuts)), 30]
    results = []
    one_by_one = [[m] for m in msgs]  # the point-in-time reference: each reading as it happened
    for batches in ([shuffled[a:b] for a, b in zip(bounds, bounds[1:], strict=False)], one_by_one):
        eng = make_engine("sqlite://")
        create_schema(eng)
        store = IngestStore(eng, clock=clock)
        for batch in batches:
            store.write_batch(batch)
        results.append((store.latest_features(["ac-1"])[0].values,
                        {(v.ts, v.n_readings): v.values for v in store.feature_history("ac-1")}))
        eng.dispose()
    assert results[0] == results[1]
