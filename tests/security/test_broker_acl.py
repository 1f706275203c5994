"""Per-device logins and ACLs on a real Mosquitto, with files written by ``foresight devices provision``.

A device may write only its own topics and read nothing; the backend reads everything; strangers
and wrong passwords are refused; a payload that claims another device id is dead-lettered.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from foresight.provision import BACKEND_CREDENTIALS_FILE, CREDENTIALS_FILE, provision, read_credentials
from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, status_topic, telemetry_topic
from ingest.store import DeviceInfo, IngestStore
from ingest.subscriber import Ingester
from tests.security.clients import NOT_AUTHORIZED, Client, connect_client
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
_ids = itertools.count()
DEVICE_A, DEVICE_B, BACKEND = "sec-a", "sec-b", "foresight"


@dataclass
class Fleet:
    broker: Mosquitto
    passwords: dict[str, str]


def _device(fleet: Fleet, device_id: str, *, v5: bool = False) -> Client:
    c = connect_client(fleet.broker, device_id, fleet.passwords[device_id], client_id=device_id, v5=v5)
    assert c.connect_rc is not None and not c.connect_rc.is_failure, c.connect_rc
    return c


def _backend(fleet: Fleet) -> Client:
    c = connect_client(fleet.broker, BACKEND, fleet.passwords[BACKEND])
    assert c.connect_rc is not None and not c.connect_rc.is_failure, c.connect_rc
    c.client.subscribe("appliances/#", qos=1)
    assert c.wait_for(lambda: c.client.is_connected())
    time.sleep(0.1)  # let the SUBACK land before anything is published
    return c


def _telemetry(device_id: str, seq: int) -> bytes:
    return encode_telemetry(Telemetry(
        device_id=device_id, kind="air_conditioner", model="AC-2500", firmware="1.0", seq=seq,
        ts=datetime.now(UTC), metrics={"filter_dp_pa": 80.0, "fan_current_a": 0.9}))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    out = tmp_path_factory.mktemp("provision")
    provision([DEVICE_A, DEVICE_B], out=out, backend_users=[BACKEND])
    passwords = {**read_credentials(out / CREDENTIALS_FILE), **read_credentials(out / BACKEND_CREDENTIALS_FILE)}
    broker = Mosquitto.start_new(password_file=out / "passwd", acl_file=out / "acl")
    yield Fleet(broker=broker, passwords=passwords)
    broker.close()


def test_backend_receives_a_devices_own_telemetry_and_status(fleet: Fleet) -> None:
    backend, a = _backend(fleet), _device(fleet, DEVICE_A)
    payload = _telemetry(DEVICE_A, 1)
    a.client.publish(telemetry_topic(DEVICE_A), payload, qos=1).wait_for_publish(5)
    a.client.publish(status_topic(DEVICE_A), "online", qos=1, retain=True).wait_for_publish(5)
    assert backend.wait_for(lambda: status_topic(DEVICE_A) in backend.topics())
    got = {m.topic: m.payload for m in backend.received}
    assert got[telemetry_topic(DEVICE_A)] == payload
    a.close()
    backend.close()


def test_device_cannot_publish_as_another_device_mqtt311(fleet: Fleet) -> None:
    """MQTT 3.1.1 has no way to say no to a PUBLISH: the broker acks it and drops it."""
    backend, a = _backend(fleet), _device(fleet, DEVICE_A)
    a.client.publish(telemetry_topic(DEVICE_B), _telemetry(DEVICE_B, 2), qos=1).wait_for_publish(5)
    a.client.publish(status_topic(DEVICE_B), "offline", qos=1, retain=True).wait_for_publish(5)
    a.client.publish("appliances/sec-b/events", b"{}", qos=1).wait_for_publish(5)
    # QoS 1 from one publisher arrives in order: once the marker is here, the rest would have been.
    a.client.publish(telemetry_topic(DEVICE_A), _telemetry(DEVICE_A, 3), qos=1).wait_for_publish(5)
    assert backend.wait_for(lambda: telemetry_topic(DEVICE_A) in backend.topics())
    assert not [t for t in backend.topics() if "/sec-b/" in t]
    a.close()
    backend.close()


def test_device_cannot_publish_as_another_device_mqtt5(fleet: Fleet) -> None:
    """MQTT 5 says so: PUBACK reason code 0x87 Not authorized."""
    a = _device(fleet, DEVICE_A, v5=True)
    forged = a.client.publish(telemetry_topic(DEVICE_B), _telemetry(DEVICE_B, 4), qos=1)
    forged.wait_for_publish(5)
    own = a.client.publish(telemetry_topic(DEVICE_A), _telemetry(DEVICE_A, 5), qos=1)
    own.wait_for_publish(5)
    assert a.wait_for(lambda: forged.mid in a.acks and own.mid in a.acks)
    assert a.acks[forged.mid].value == NOT_AUTHORIZED
    assert not a.acks[own.mid].is_failure
    a.close()


def test_device_cannot_read_another_devices_topics_or_wildcards(fleet: Fleet) -> None:
    b = _device(fleet, DEVICE_B)
    b.client.publish(status_topic(DEVICE_B), "online", qos=1, retain=True).wait_for_publish(5)
    a = _device(fleet, DEVICE_A)
    for topic in (telemetry_topic(DEVICE_B), "appliances/sec-b/#", "appliances/+/telemetry", "appliances/#", "#"):
        a.client.subscribe(topic, qos=1)  # granted: Mosquitto checks read access at delivery
    backend = _backend(fleet)
    time.sleep(0.2)  # the retained status would arrive on subscribe
    b.client.publish(telemetry_topic(DEVICE_B), _telemetry(DEVICE_B, 6), qos=1).wait_for_publish(5)
    assert backend.wait_for(lambda: telemetry_topic(DEVICE_B) in backend.topics())
    time.sleep(0.3)  # A subscribed first; give any (wrong) delivery to A time to land
    assert a.received == []
    a.close()
    b.close()
    backend.close()


@pytest.mark.parametrize(("username", "password"), [
    pytest.param(None, None, id="anonymous"),
    pytest.param(DEVICE_A, "not-the-password", id="wrong-password"),
    pytest.param(DEVICE_B, "password-of-a", id="another-devices-password"),
    pytest.param("stranger", "whatever", id="unknown-user"),
])
def test_strangers_and_wrong_passwords_are_refused(fleet: Fleet, username: str | None, password: str | None) -> None:
    if password == "password-of-a":
        password = fleet.passwords[DEVICE_A]
    c = connect_client(fleet.broker, username, password)
    assert c.connect_rc is not None and c.connect_rc.is_failure
    c.client.loop_stop()


def test_forged_device_id_in_payload_is_dead_lettered(fleet: Fleet, engine: Engine, clock: ManualClock) -> None:
    """A device may only write its own topic, so a forged id shows as payload/topic disagreement."""
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id=DEVICE_A, kind="air_conditioner"),
                            DeviceInfo(device_id=DEVICE_B, kind="air_conditioner")])
    ing = Ingester(store=store, clock=clock, host=fleet.broker.host, port=fleet.broker.port,
                   client_id=f"test-ingest-sec-{next(_ids)}", username=BACKEND, password=fleet.passwords[BACKEND])
    ing.start()
    try:
        a = _device(fleet, DEVICE_A)
        ts = clock.now() - timedelta(minutes=1)
        forged = encode_telemetry(Telemetry(device_id=DEVICE_B, kind="air_conditioner", model="AC-2500",
                                            firmware="1.0", seq=100, ts=ts, metrics={"filter_dp_pa": 70.0}))
        honest = encode_telemetry(Telemetry(device_id=DEVICE_A, kind="air_conditioner", model="AC-2500",
                                            firmware="1.0", seq=101, ts=ts, metrics={"filter_dp_pa": 71.0}))
        a.client.publish(telemetry_topic(DEVICE_A), forged, qos=1).wait_for_publish(5)
        a.client.publish(telemetry_topic(DEVICE_A), honest, qos=1).wait_for_publish(5)
        assert a.wait_for(lambda: len(store.recent_readings(DEVICE_A)) == 1 and ing.wait_idle(timeout_s=1), 15)
        a.close()
        letters = [d for d in store.dead_letters() if d.payload == forged]
        assert [d.reason for d in letters] == ["device_mismatch"]
        assert store.recent_readings(DEVICE_B) == []
    finally:
        ing.stop()


def test_python_hashes_are_accepted_by_mosquitto(tmp_path: Path) -> None:
    """The fallback ``$7$`` hashing (no mosquitto_passwd binary) writes a file Mosquitto reads."""
    out = tmp_path
    provision([DEVICE_A], out=out, backend_users=[BACKEND], use_binary=False)
    password = read_credentials(out / CREDENTIALS_FILE)[DEVICE_A]
    broker = Mosquitto.start_new(password_file=out / "passwd", acl_file=out / "acl")
    try:
        ok = connect_client(broker, DEVICE_A, password, client_id=DEVICE_A)
        assert ok.connect_rc is not None and not ok.connect_rc.is_failure
        ok.close()
        bad = connect_client(broker, DEVICE_A, password + "x")
        assert bad.connect_rc is not None and bad.connect_rc.is_failure
        bad.client.loop_stop()
    finally:
        broker.close()
