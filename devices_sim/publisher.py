"""Put a simulated fleet on a real MQTT broker: one paho client per device, as real appliances would.

Each device connects with its id as client id, leaves a retained ``offline`` last will on its status
topic and announces a retained ``online`` once connected. Telemetry and events go out at QoS 1; every
publish is waited on for its PUBACK (bounded), so a message that does not make it is counted in
``failed`` rather than lost silently. Event time comes only from the injected ``now``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.contract import (
    QOS_TELEMETRY,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    Telemetry,
    encode_event,
    encode_telemetry,
    events_topic,
    status_topic,
    telemetry_topic,
)

from .errors import PublisherError
from .fleet import Fleet, GroundTruth, Message

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


class _DeviceClient:
    """One device's MQTT session."""

    __slots__ = ("device_id", "client", "connected", "refused")

    def __init__(self, device_id: str, client: mqtt.Client) -> None:
        self.device_id, self.client = device_id, client
        self.connected = threading.Event()
        self.refused: str | None = None


class Publisher:
    """Publishes a ``Fleet`` to an MQTT broker, driven by an injected clock."""

    def __init__(self, *, fleet: Fleet, host: str, port: int, now: Callable[[], datetime],
                 credentials: Callable[[str], tuple[str, str | None]] | None = None,
                 tick_s: float = 0.1,
                 on_ground_truth: Callable[[GroundTruth], None] | None = None,
                 publish_timeout_s: float = 10.0, connect_timeout_s: float = 10.0,
                 keepalive_s: int = 30, tls_context: ssl.SSLContext | None = None) -> None:
        """Store settings only; nothing connects before ``start``.

        ``credentials(device_id) -> (username, password)`` when the broker wants per-device logins;
        ``tls_context``: every device connects over TLS with it (None: plain TCP).
        """
        self._fleet, self._host, self._port, self._now = fleet, host, port, now
        self._credentials, self._tick_s, self._on_ground_truth = credentials, tick_s, on_ground_truth
        self._publish_timeout_s, self._connect_timeout_s = publish_timeout_s, connect_timeout_s
        self._keepalive_s, self._tls_context = keepalive_s, tls_context
        self._clients: dict[str, _DeviceClient] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._truth_seen = 0
        self._published = 0
        self._failed = 0

    @property
    def published(self) -> int:
        """Telemetry and event messages acknowledged by the broker (PUBACK received)."""
        return self._published

    @property
    def failed(self) -> int:
        """Messages refused by the client or not acknowledged within ``publish_timeout_s``."""
        return self._failed

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> None:
        """Connect every device (raises ``PublisherError`` if any cannot), then tick in the background.

        ``background=False`` only connects; drive it with ``publish_until`` (tests with a manual clock).
        """
        self.connect()
        if background and self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="devices-sim-publisher", daemon=True)
            self._thread.start()

    def connect(self) -> None:
        """Connect every device and wait until each has announced itself online."""
        if self._clients:
            return
        for spec in self._fleet.devices:
            self._clients[spec.device_id] = self._make_client(spec.device_id)
        deadline = time.monotonic() + self._connect_timeout_s
        clients = list(self._clients.values())
        while time.monotonic() < deadline:  # stop early once all are in, or one is refused
            if all(dc.connected.is_set() for dc in clients) or any(dc.refused for dc in clients):
                break
            time.sleep(0.01)
        missing = {d: dc.refused or "no CONNACK" for d, dc in self._clients.items() if not dc.connected.is_set()}
        if missing:
            self._close_all(announce=False)
            shown = ", ".join(f"{d} ({why})" for d, why in list(missing.items())[:5])
            raise PublisherError(f"{len(missing)} device(s) could not connect to "
                                 f"{self._host}:{self._port}: {shown}")

    def publish_until(self, until: datetime) -> int:
        """Advance the fleet to ``until`` and publish what is due, waiting for the PUBACKs.

        Returns how many messages were acknowledged. Connects first if needed.
        """
        self.connect()
        with self._lock:
            return self._advance_and_publish(until)

    def stop(self) -> None:
        """Stop ticking, publish each device's retained ``offline`` status, and disconnect cleanly."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._close_all(announce=True)

    # ---------------------------------------------------------------------------------------------
    def _make_client(self, device_id: str) -> _DeviceClient:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=device_id,
                             protocol=mqtt.MQTTv311)
        dc = _DeviceClient(device_id, client)
        client.user_data_set(dc)
        client.will_set(status_topic(device_id), STATUS_OFFLINE, qos=1, retain=True)
        if self._credentials is not None:
            username, password = self._credentials(device_id)
            client.username_pw_set(username, password)
        if self._tls_context is not None:
            client.tls_set_context(self._tls_context)
        client.on_connect = _on_connect
        client.on_disconnect = _on_disconnect
        client.connect_async(self._host, self._port, keepalive=self._keepalive_s)
        client.loop_start()
        return dc

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_s):
            try:
                with self._lock:
                    self._advance_and_publish(self._now())
            except Exception:  # keep ticking; a broken tick must not silence the whole fleet
                log.exception("simulator tick failed")

    def _advance_and_publish(self, until: datetime) -> int:
        messages = self._fleet.advance(until)
        pending: list[mqtt.MQTTMessageInfo] = []
        for msg in messages:
            info = self._publish(msg)
            if info is not None:
                pending.append(info)
        acked = self._await(pending)
        self._report_truth()
        return acked

    def _publish(self, msg: Message) -> mqtt.MQTTMessageInfo | None:
        dc = self._clients.get(msg.device_id)
        if dc is None:
            self._failed += 1
            return None
        if isinstance(msg, Telemetry):
            topic, payload = telemetry_topic(msg.device_id), encode_telemetry(msg)
        else:
            topic, payload = events_topic(msg.device_id), encode_event(msg)
        return dc.client.publish(topic, payload, qos=QOS_TELEMETRY)

    def _await(self, pending: list[mqtt.MQTTMessageInfo]) -> int:
        deadline = time.monotonic() + self._publish_timeout_s
        acked = 0
        for info in pending:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (ValueError, RuntimeError) as exc:
                log.warning("publish mid=%s failed: %s", info.mid, exc)
            if info.is_published():
                acked += 1
            else:
                self._failed += 1
        self._published += acked
        return acked

    def _report_truth(self) -> None:
        if self._on_ground_truth is None:
            return
        truth = self._fleet.ground_truth
        for record in truth[self._truth_seen:]:
            try:
                self._on_ground_truth(record)
            except Exception:
                log.exception("on_ground_truth callback failed")
        self._truth_seen = len(truth)

    def _close_all(self, *, announce: bool) -> None:
        infos = []
        if announce:
            for dc in self._clients.values():
                if dc.connected.is_set():
                    infos.append(dc.client.publish(status_topic(dc.device_id), STATUS_OFFLINE, qos=1,
                                                   retain=True))
        deadline = time.monotonic() + self._publish_timeout_s
        for info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (ValueError, RuntimeError) as exc:
                log.warning("offline status not published: %s", exc)
        for dc in self._clients.values():
            dc.client.disconnect()
            dc.client.loop_stop()
        self._clients.clear()


def _on_connect(client: mqtt.Client, dc: _DeviceClient, flags: Any, reason_code: Any,
                properties: Any) -> None:
    # Only enqueues (paho sends from its loop thread); re-announces after every reconnect too.
    if reason_code.is_failure:
        dc.refused = str(reason_code)
        return
    client.publish(status_topic(dc.device_id), STATUS_ONLINE, qos=1, retain=True)
    dc.connected.set()


def _on_disconnect(client: mqtt.Client, dc: _DeviceClient, flags: Any, reason_code: Any,
                   properties: Any) -> None:
    if reason_code.is_failure:
        log.info("device %s disconnected: %s", dc.device_id, reason_code)
