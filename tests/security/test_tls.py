"""TLS between the Python clients and a real Mosquitto TLS listener, configured from ``FORESIGHT_MQTT_TLS_*``.

The broker has the listener block of docs/deployment.md (``foresight.mosquitto.tls_listener_config``)
next to a plain one, and per-device logins from ``foresight devices provision``. The simulated
fleet and the ingester both connect over TLS and readings land in the database; a client that
does not trust the broker's CA, or speaks plain MQTT to the TLS port, gets nowhere.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from devices_sim import Fleet, Publisher, Scenario
from foresight.mosquitto import TlsListener
from foresight.provision import BACKEND_CREDENTIALS_FILE, CREDENTIALS_FILE, provision, read_credentials
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.store import DeviceInfo, IngestStore
from ingest.subscriber import Ingester
from tests.security.certs import Certificates, make_certificates
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
BACKEND = "foresight"
DEVICES = ("tls-rc-1", "tls-ac-1")


@dataclass
class TlsBroker:
    broker: Mosquitto
    certs: Certificates
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        assert self.broker.tls_port is not None
        return self.broker.tls_port


def _start(folder: Path, *, require_certificate: bool) -> TlsBroker:
    certs = make_certificates(folder / "certs")
    provision(DEVICES, out=folder / "broker", backend_users=[BACKEND])
    passwords = {**read_credentials(folder / "broker" / CREDENTIALS_FILE),
                 **read_credentials(folder / "broker" / BACKEND_CREDENTIALS_FILE)}
    broker = Mosquitto.start_new(password_file=folder / "broker" / "passwd", acl_file=folder / "broker" / "acl",
                                 tls=TlsListener(cafile=certs.ca, certfile=certs.server_cert,
                                                 keyfile=certs.server_key, require_certificate=require_certificate))
    return TlsBroker(broker=broker, certs=certs, passwords=passwords)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    b = _start(tmp_path_factory.mktemp("tls"), require_certificate=False)
    yield b
    b.broker.close()


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A listener with ``require_certificate true``: a password alone does not connect."""
    b = _start(tmp_path_factory.mktemp("mtls"), require_certificate=True)
    yield b
    b.broker.close()


def _settings(b: TlsBroker, **tls: object) -> Settings:
    return Settings(mqtt_url=f"mqtts://{BACKEND}:{b.passwords[BACKEND]}@127.0.0.1:{b.port}", **tls)  # type: ignore[arg-type]


def _ingester(store: IngestStore, clock: ManualClock, settings: Settings, name: str) -> Ingester:
    host, port, user, password = settings.mqtt_endpoint()
    return Ingester(store=store, clock=clock, host=host, port=port, client_id=f"test-ingest-{name}",
                    username=user, password=password, tls_context=settings.mqtt_tls_context())


def _fleet(clock: ManualClock) -> Fleet:
    return Fleet.from_scenarios(start=clock.now() - timedelta(days=3), seed=3, scenarios=[
        Scenario(device_id=DEVICES[0], kind="rice_cooker"), Scenario(device_id=DEVICES[1], kind="air_conditioner")])


def test_fleet_and_ingester_over_tls_store_readings_end_to_end(tls_broker: TlsBroker, engine: Engine,
                                                                clock: ManualClock) -> None:
    settings = _settings(tls_broker, mqtt_tls_ca_file=tls_broker.certs.ca)
    assert settings.mqtt_tls and settings.mqtt_endpoint()[1] == tls_broker.port
    store = IngestStore(engine, clock=clock)
    fleet = _fleet(clock)
    store.register_devices(DeviceInfo(**row) for row in fleet.manifest())  # type: ignore[arg-type]
    ing = _ingester(store, clock, settings, "tls")
    ing.start()
    publisher = Publisher(fleet=fleet, host="127.0.0.1", port=tls_broker.port, now=clock.now,
                          credentials=lambda d: (d, tls_broker.passwords[d]), tls_context=settings.mqtt_tls_context())
    try:
        publisher.start(background=False)
        acked = publisher.publish_until(clock.now())
        assert acked > 10 and publisher.failed == 0
        assert ing.wait_idle(timeout_s=15)
        stored = sum(len(store.recent_readings(d, limit=1000)) for d in DEVICES)
        assert store.dead_letters() == []
        assert stored == ing.stats.accepted > 10 and stored + store.counts()["events"] == acked
    finally:
        publisher.stop()
        ing.stop()


@pytest.mark.parametrize("trust", ["other-ca", "system-cas"])
def test_a_client_that_does_not_trust_the_brokers_ca_is_refused(tls_broker: TlsBroker, engine: Engine,
                                                                clock: ManualClock, trust: str) -> None:
    ca = {"other-ca": {"mqtt_tls_ca_file": tls_broker.certs.other_ca}, "system-cas": {}}[trust]
    settings = _settings(tls_broker, **ca)
    context = settings.mqtt_tls_context()
    assert context is not None
    with socket.create_connection(("127.0.0.1", tls_broker.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    ing = _ingester(IngestStore(engine, clock=clock), clock, settings, f"untrusting-{trust}")
    with pytest.raises(ConnectionError):
        ing.start(wait_connected_s=2)
    assert not ing.stats.connected


def test_a_certificate_for_another_host_is_refused(tls_broker: TlsBroker) -> None:
    """The hostname is checked: the server certificate names 127.0.0.1 and localhost, nothing else."""
    context = _settings(tls_broker, mqtt_tls_ca_file=tls_broker.certs.ca).mqtt_tls_context()
    assert context is not None
    with socket.create_connection(("127.0.0.1", tls_broker.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
            context.wrap_socket(raw, server_hostname="mqtt.example.com")


def test_plain_mqtt_to_the_tls_port_gets_no_connack(tls_broker: TlsBroker) -> None:
    connacks: list[object] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="plain-to-tls",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(BACKEND, tls_broker.passwords[BACKEND])
    client.on_connect = lambda c, u, f, rc, p: connacks.append(rc)
    client.connect("127.0.0.1", tls_broker.port)
    client.loop_start()
    try:
        time.sleep(2)
        assert connacks == [] and not client.is_connected()
    finally:
        client.loop_stop()
        client.disconnect()
    # The same login on the plain listener works: it was the missing TLS, not the password.
    ok = threading.Event()
    plain = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="plain-to-plain",
                        protocol=mqtt.MQTTv311)
    plain.username_pw_set(BACKEND, tls_broker.passwords[BACKEND])
    plain.on_connect = lambda c, u, f, rc, p: ok.set() if not rc.is_failure else None
    plain.connect("127.0.0.1", tls_broker.broker.port)
    plain.loop_start()
    try:
        assert ok.wait(5)
    finally:
        plain.disconnect()
        plain.loop_stop()


def test_a_listener_requiring_certificates_takes_the_client_certificate(mtls_broker: TlsBroker, engine: Engine,
                                                                        clock: ManualClock) -> None:
    certs = mtls_broker.certs
    with_cert = _settings(mtls_broker, mqtt_tls_ca_file=certs.ca, mqtt_tls_cert_file=certs.client_cert,
                          mqtt_tls_key_file=certs.client_key)
    store = IngestStore(engine, clock=clock)
    ing = _ingester(store, clock, with_cert, "mtls")
    ing.start()
    try:
        assert ing.stats.connected
    finally:
        ing.stop()
    password_only = _ingester(store, clock, _settings(mtls_broker, mqtt_tls_ca_file=certs.ca), "mtls-no-cert")
    with pytest.raises(ConnectionError):
        password_only.start(wait_connected_s=2)
