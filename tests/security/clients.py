"""A paho client for the security tests that records what the broker answered."""

from __future__ import annotations

import itertools
import ssl
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import Mosquitto

__all__ = ["NOT_AUTHORIZED", "Client", "connect_client"]

NOT_AUTHORIZED = 0x87
_ids = itertools.count()


@dataclass
class Client:
    """A paho client that records its connect result, received messages and PUBACK reason codes."""

    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    #: Set when the broker closes the connection (after a successful CONNACK).
    dropped: threading.Event = field(default_factory=threading.Event)
    connect_rc: mqtt.ReasonCode | None = None
    received: list[mqtt.MQTTMessage] = field(default_factory=list)
    acks: dict[int, mqtt.ReasonCode] = field(default_factory=dict)

    def wait_for(self, predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def topics(self) -> list[str]:
        return [m.topic for m in list(self.received)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_client(broker: Mosquitto, username: str | None, password: str | None, *,
                   client_id: str | None = None, v5: bool = False, clean: bool = True,
                   port: int | None = None, tls_context: ssl.SSLContext | None = None) -> Client:
    """Connect (to ``port``, default the plain listener) and wait for the CONNACK; a refusal is
    recorded in ``connect_rc``, not retried. ``clean=False``: a persistent session (MQTT 3.1.1)."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"{username or 'anon'}-{next(_ids)}",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                         **({} if v5 else {"clean_session": clean}))
    c = Client(client)

    def on_connect(client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        c.connect_rc = reason_code
        c.connected.set()
        if reason_code.is_failure:
            client.disconnect()  # no automatic retries against a broker that said no

    def on_message(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        c.received.append(msg)

    def on_publish(client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        c.acks[mid] = reason_code

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure and c.connect_rc is not None and not c.connect_rc.is_failure:
            c.dropped.set()
            client.disconnect()  # stay down: the tests look at what the broker did, not at paho's retries

    client.on_connect, client.on_message, client.on_publish = on_connect, on_message, on_publish
    client.on_disconnect = on_disconnect
    if username is not None:
        client.username_pw_set(username, password)
    if tls_context is not None:
        client.tls_set_context(tls_context)
    client.connect(broker.host, port or broker.port)
    client.loop_start()
    assert c.connected.wait(5), "no CONNACK"
    return c
