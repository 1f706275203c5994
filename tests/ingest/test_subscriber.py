"""The ingester against a real Mosquitto: bad input dead-lettered, good traffic flows, no loss.

Each behaviour a user sees runs over both writers (thread and process). The fake of a failing
database lives in this process, so its test drives the writer thread; a refusal by the database
itself is a real trigger, met by either writer."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from ingest.clock import ManualClock
from ingest.contract import MAX_PAYLOAD_BYTES, Telemetry, encode_telemetry, telemetry_topic
from ingest.store import BatchResult, DeviceInfo, Inbound, IngestStore
from ingest.subscriber import Ingester
from tests.ingest.writers import WRITERS, make_ingester, refuse_reading
from tests.payloads import bad_payloads
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
_ids = itertools.count()


def _publisher(broker: Mosquitto) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-pub-{next(_ids)}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _telemetry(clock: ManualClock, device: str, seq: int) -> bytes:
    return encode_telemetry(Telemetry(device_id=device, kind="air_conditioner", model="AC-2500", firmware="1.0",
                                      seq=seq, ts=clock.now() - timedelta(minutes=1000 - seq),
                                      metrics={"filter_dp_pa": 60.0 + seq, "fan_current_a": 0.8}))


@pytest.fixture(params=WRITERS)
def ingester(request: pytest.FixtureRequest, engine: Engine, clock: ManualClock,
             mosquitto: Mosquitto) -> Iterator[tuple[Ingester, IngestStore]]:
    ing = make_ingester(request.param, engine=engine, clock=clock, host=mosquitto.host, port=mosquitto.port,
                        client_id=f"test-ingest-{next(_ids)}")
    ing.start()
    yield ing, IngestStore(engine, clock=clock)
    ing.stop()


def test_bad_payloads_dead_lettered_while_good_traffic_continues(ingester, clock, mosquitto) -> None:  # type: ignore[no-untyped-def]
    ing, store = ingester
    store.register_devices([DeviceInfo(device_id="rc-bad", kind="rice_cooker")])
    pub = _publisher(mosquitto)
    cases = bad_payloads(clock.now())
    seq = 0
    for case in cases:
        seq += 1
        pub.publish(telemetry_topic("ac-good"), _telemetry(clock, "ac-good", seq), qos=1).wait_for_publish(5)
        pub.publish(case.topic, case.payload, qos=1).wait_for_publish(5)
    assert ing.wait_idle(timeout_s=15)
    pub.disconnect()
    pub.loop_stop()
    # The broker is shared by the session: count only this test's topics (other tests leave
    # retained statuses behind, which arrive here as unknown devices).
    ours = {c.topic for c in cases}
    letters = {d.payload: d.reason for d in store.dead_letters(limit=1000) if d.topic in ours}
    for case in cases:
        assert letters.get(case.payload[:MAX_PAYLOAD_BYTES]) == case.reason, case.name
    assert len(letters) == len(cases)
    assert len(store.recent_readings("ac-good", limit=1000)) == seq


def test_redelivered_messages_are_stored_once(ingester, clock, mosquitto) -> None:  # type: ignore[no-untyped-def]
    ing, store = ingester
    pub = _publisher(mosquitto)
    for _ in range(3):  # the same 20 messages, three times over
        for seq in range(20):
            pub.publish(telemetry_topic("ac-dup"), _telemetry(clock, "ac-dup", seq), qos=1).wait_for_publish(5)
    assert ing.wait_idle(timeout_s=15)
    pub.disconnect()
    pub.loop_stop()
    assert len(store.recent_readings("ac-dup", limit=1000)) == 20
    assert ing.stats.duplicates == 40


class FlakyStore:
    """Wraps a real store; the first ``failures`` writes raise as a database outage would."""

    def __init__(self, inner: IngestStore, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def write_batch(self, batch: Sequence[Inbound], *, now: datetime) -> BatchResult:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database unavailable")
        return self.inner.write_batch(batch, now=now)


def test_database_outage_is_retried_without_loss(engine, clock, mosquitto) -> None:  # type: ignore[no-untyped-def]
    store = IngestStore(engine, clock=clock)
    flaky = FlakyStore(store, failures=3)
    ing = Ingester(store=flaky, clock=clock, host=mosquitto.host, port=mosquitto.port,  # type: ignore[arg-type]
                   client_id=f"test-ingest-{next(_ids)}")
    ing.start()
    try:
        pub = _publisher(mosquitto)
        for seq in range(50):
            pub.publish(telemetry_topic("ac-outage"), _telemetry(clock, "ac-outage", seq), qos=1).wait_for_publish(5)
        assert ing.wait_idle(timeout_s=20, settle_s=1.0)
        pub.disconnect()
        pub.loop_stop()
    finally:
        ing.stop()
    assert ing.stats.write_errors == 3
    assert len(store.recent_readings("ac-outage", limit=1000)) == 50


@pytest.mark.parametrize("writer", WRITERS)
def test_messages_published_while_ingester_is_down_arrive_after_restart(engine, clock, mosquitto,  # type: ignore[no-untyped-def]
                                                                        writer) -> None:
    store = IngestStore(engine, clock=clock)
    client_id = f"test-ingest-{next(_ids)}"
    first = make_ingester(writer, engine=engine, clock=clock, host=mosquitto.host, port=mosquitto.port,
                          client_id=client_id)
    first.start()
    first.stop()  # persistent session stays on the broker
    # More than Mosquitto's default max_queued_messages (1000), which would silently drop the rest:
    # the broker config (tests/services.py, docs/deployment.md) raises it, so the broker holds them.
    pub = _publisher(mosquitto)
    infos = [pub.publish(telemetry_topic(f"ac-offline-{seq % 10}"), _telemetry(clock, f"ac-offline-{seq % 10}", seq // 10),
                         qos=1) for seq in range(3000)]
    for info in infos:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    second = make_ingester(writer, engine=engine, clock=clock, host=mosquitto.host, port=mosquitto.port,
                           client_id=client_id)
    second.start()
    try:
        assert second.wait_idle(timeout_s=60, settle_s=1.0)
    finally:
        second.stop()
    assert store.counts()["readings"] >= 3000
    for d in range(10):
        assert sorted(r.seq for r in store.recent_readings(f"ac-offline-{d}", limit=1000)) == list(range(300))


@pytest.mark.parametrize("writer", WRITERS)
def test_a_reading_the_database_refuses_is_dead_lettered_by_either_writer(  # type: ignore[no-untyped-def]
        any_engine, clock, mosquitto, writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.writing")
    refuse_reading(any_engine, device_id="ac-refused", seq=5)
    store = IngestStore(any_engine, clock=clock)
    refused = _telemetry(clock, "ac-refused", 5)
    ing = make_ingester(writer, engine=any_engine, clock=clock, host=mosquitto.host, port=mosquitto.port,
                        client_id=f"test-ingest-{next(_ids)}", batch_wait_s=0.3)
    ing.start()
    writer_pid = ing.writer_pid
    try:
        pub = _publisher(mosquitto)
        for seq in range(12):
            pub.publish(telemetry_topic("ac-refused"), _telemetry(clock, "ac-refused", seq), qos=1).wait_for_publish(5)
        assert ing.wait_idle(timeout_s=30, settle_s=1.0)
        pub.disconnect()
        pub.loop_stop()
    finally:
        ing.stop()
    assert sorted(r.seq for r in store.recent_readings("ac-refused", limit=100)) == [s for s in range(12) if s != 5]
    [letter] = [d for d in store.dead_letters() if d.topic == telemetry_topic("ac-refused")]
    assert letter.reason == "store_error" and letter.payload == refused
    assert "reading refused by the database" in letter.detail
    # Only the refused reading is a store error (the shared broker may also replay other tests'
    # retained statuses, dead-lettered as unknown devices).
    assert ing.stats.write_errors >= 3 and store.rejected_by_reason().get("store_error") == 1
    # The writer's account of it reached this process's logging, from whichever process wrote.
    failed = [r for r in caplog.records if r.name == "ingest.writing" and "dead-lettering" in r.getMessage()]
    assert failed and "reading refused by the database" in (failed[0].exc_text or "")
    if writer == "process":
        assert failed[0].process == writer_pid != os.getpid()
