"""Client-id takeover: a device that connects with the ingester's client id must not kick it off.

MQTT gives a client id one connection: a second CONNECT with the same id disconnects the first and
takes its session over (a clean one wipes it). With ``use_username_as_clientid true`` on every
listener Mosquitto replaces each client's id with its username, so a device's login can only ever
hold the device's own id. Tested on a real Mosquitto with a plain and a TLS listener.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from foresight.mosquitto import TlsListener
from foresight.provision import BACKEND_CREDENTIALS_FILE, CREDENTIALS_FILE, provision, read_credentials
from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.store import IngestStore
from ingest.subscriber import Ingester
from tests.security.certs import make_certificates
from tests.security.clients import connect_client
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
DEVICE, BACKEND, INGEST_ID = "cid-dev", "foresight", "foresight-ingest"


@dataclass
class Broker:
    broker: Mosquitto
    passwords: dict[str, str]
    tls: ssl.SSLContext


def _start(folder: Path, *, use_username_as_clientid: bool, extra_config: tuple[str, ...] = ()) -> Broker:
    certs = make_certificates(folder / "certs")
    provision([DEVICE], out=folder, backend_users=[BACKEND])
    broker = Mosquitto.start_new(password_file=folder / "passwd", acl_file=folder / "acl",
                                 tls=TlsListener(cafile=certs.ca, certfile=certs.server_cert, keyfile=certs.server_key),
                                 use_username_as_clientid=use_username_as_clientid, extra_config=extra_config)
    return Broker(broker=broker, tls=ssl.create_default_context(cafile=str(certs.ca)),
                  passwords={**read_credentials(folder / CREDENTIALS_FILE),
                             **read_credentials(folder / BACKEND_CREDENTIALS_FILE)})


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = _start(tmp_path_factory.mktemp("clientid"), use_username_as_clientid=True)
    yield b
    b.broker.close()


def test_by_default_a_device_can_kick_the_ingester_off(tmp_path: Path) -> None:
    """The threat, on Mosquitto's defaults: any valid login may claim any client id."""
    b = _start(tmp_path, use_username_as_clientid=False)
    try:
        ingester = connect_client(b.broker, BACKEND, b.passwords[BACKEND], client_id=INGEST_ID, clean=False)
        device = connect_client(b.broker, DEVICE, b.passwords[DEVICE], client_id=INGEST_ID)
        assert device.connect_rc is not None and not device.connect_rc.is_failure
        assert ingester.dropped.wait(5), "the broker did not hand the ingester's client id to the device"
        device.close()
    finally:
        b.broker.close()


def test_the_setting_is_per_listener_so_it_must_be_on_every_one(tmp_path: Path) -> None:
    """Set under the plain listener only: the backend's id there becomes its username, and a device
    on the TLS listener, which keeps client ids as given, claims exactly that id."""
    b = _start(tmp_path, use_username_as_clientid=False, extra_config=("use_username_as_clientid true",))
    try:
        ingester = connect_client(b.broker, BACKEND, b.passwords[BACKEND], client_id=INGEST_ID, clean=False)
        device = connect_client(b.broker, DEVICE, b.passwords[DEVICE], client_id=BACKEND,
                                port=b.broker.tls_port, tls_context=b.tls)
        assert device.connect_rc is not None and not device.connect_rc.is_failure
        assert ingester.dropped.wait(5)
        device.close()
    finally:
        b.broker.close()


def _reading(clock: ManualClock, seq: int) -> bytes:
    return encode_telemetry(Telemetry(device_id=DEVICE, kind="air_conditioner", model="AC-2500", firmware="1.0",
                                      seq=seq, ts=clock.now() - timedelta(minutes=1),
                                      metrics={"filter_dp_pa": 80.0, "fan_current_a": 0.9}))


def test_with_use_username_as_clientid_the_ingester_stays_and_keeps_its_session(
        guarded: Broker, engine: Engine, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ingest.subscriber")
    store = IngestStore(engine, clock=clock)

    def ingester() -> Ingester:
        return Ingester(store=store, clock=clock, host=guarded.broker.host, port=guarded.broker.port,
                        client_id=INGEST_ID, username=BACKEND, password=guarded.passwords[BACKEND])

    ing = ingester()
    ing.start()
    try:
        # Every id the ingester's session could be known by, on both listeners, clean and persistent.
        attempts = [connect_client(guarded.broker, DEVICE, guarded.passwords[DEVICE], client_id=cid, clean=clean,
                                   port=port, tls_context=tls)
                    for cid in (INGEST_ID, BACKEND) for clean in (True, False)
                    for port, tls in ((guarded.broker.port, None), (guarded.broker.tls_port, guarded.tls))]
        # Each connects (as itself: its id is replaced by its username) and one after the other they
        # take over *each other's* connection, which is the same device: the ingester is untouched.
        assert all(a.connect_rc is not None and not a.connect_rc.is_failure for a in attempts)
        last = attempts[-1]
        last.client.publish(telemetry_topic(DEVICE), _reading(clock, 1), qos=1).wait_for_publish(5)
        assert last.wait_for(lambda: len(store.recent_readings(DEVICE)) == 1, 10)
        assert ing.stats.connected
        assert not [r for r in caplog.records if "disconnected" in r.getMessage()]  # not even for a moment
    finally:
        ing.stop()
    for a in attempts:
        a.close()

    # The persistent session survived all that: what arrives while the ingester is away is kept for it.
    device = connect_client(guarded.broker, DEVICE, guarded.passwords[DEVICE], client_id=INGEST_ID)
    device.client.publish(telemetry_topic(DEVICE), _reading(clock, 2), qos=1).wait_for_publish(5)
    device.close()
    time.sleep(0.2)
    again = ingester()
    again.start()
    try:
        assert device.wait_for(lambda: len(store.recent_readings(DEVICE)) == 2, 10)
        assert [r.seq for r in store.recent_readings(DEVICE)] == [1, 2]
        assert "session present: True" in caplog.text
    finally:
        again.stop()
