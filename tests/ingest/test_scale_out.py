"""Scale-out: two MQTT 5 ingest workers share the load through a shared subscription against one
database, and every (device_id, seq) is stored exactly once with the features a single worker gives."""

from __future__ import annotations

import itertools
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import IngestStore
from ingest.subscriber import Ingester
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
_ids = itertools.count()
DEVICES = [f"ac-share-{i}" for i in range(8)]
PER_DEVICE = 40


def _message(clock: ManualClock, device: str, seq: int) -> Telemetry:
    return Telemetry(device_id=device, kind="air_conditioner", model="AC-2500", firmware="1.0", seq=seq,
                     ts=clock.now() - timedelta(hours=PER_DEVICE - seq),
                     metrics={"filter_dp_pa": 60.0 + 1.5 * seq + (seq % 4), "fan_current_a": 0.8 + seq / 500})


def test_two_mqtt5_workers_split_the_load_and_store_each_reading_once(any_engine: Engine, clock: ManualClock,
                                                                        mosquitto: Mosquitto) -> None:
    group = f"foresight-{next(_ids)}"
    workers = [Ingester(store=IngestStore(any_engine, clock=clock), clock=clock, host=mosquitto.host,
                        port=mosquitto.port, client_id=f"{group}-w{i}", mqtt_version=5, shared_group=group,
                        batch_size=20, batch_wait_s=0.02)
               for i in range(2)]
    for w in workers:
        w.start()
    messages = [_message(clock, d, seq) for seq in range(PER_DEVICE) for d in DEVICES]
    try:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{group}",
                          protocol=mqtt.MQTTv5)
        pub.connect(mosquitto.host, mosquitto.port)
        pub.loop_start()
        for m in messages:
            pub.publish(telemetry_topic(m.device_id), encode_telemetry(m), qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        for w in workers:
            assert w.wait_idle(timeout_s=60, settle_s=0.5)
    finally:
        for w in workers:
            w.stop()
    telemetry_received = [w.stats.accepted + w.stats.duplicates for w in workers]
    assert all(n > 0 for n in telemetry_received), telemetry_received  # both workers did work
    store = IngestStore(any_engine, clock=clock)
    reference_engine = make_engine("sqlite://")
    create_schema(reference_engine)
    reference = IngestStore(reference_engine, clock=clock)
    for m in messages:  # one worker, one reading at a time, in order
        from ingest.store import Inbound

        reference.write_batch([Inbound(telemetry_topic(m.device_id), encode_telemetry(m), clock.now())])
    for device in DEVICES:
        stored = sorted(r.seq for r in store.recent_readings(device, limit=1000))
        assert stored == list(range(PER_DEVICE)), device
        assert store.latest_features([device])[0].values == reference.latest_features([device])[0].values
        assert store.latest_features([device])[0].n_readings == PER_DEVICE
