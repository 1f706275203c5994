"""The MQTT ingester: paho callbacks only enqueue; a writer thread stores in batches, then acks.

``on_message`` converts the paho message into an ``Inbound`` and puts it on a bounded queue — no
I/O in the network thread. The writer drains the queue in batches, hands each batch to
``IngestStore.write_batch`` (one transaction) and only after the commit acknowledges the messages
(paho ``manual_ack=True``, QoS 1, persistent session). When the database fails, the writer retries
the same batch with backoff and acks nothing meanwhile, so the broker keeps the messages: no loss.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.clock import Clock
from ingest.contract import Reason
from ingest.store import BatchResult, Inbound, IngestStore

__all__ = ["Ingester", "IngesterStats", "SUBSCRIPTIONS"]

log = logging.getLogger(__name__)

SUBSCRIPTIONS: tuple[str, ...] = ("appliances/+/telemetry", "appliances/+/events", "appliances/+/status")


@dataclass(slots=True)
class IngesterStats:
    """Running counters, read by the demo summary and health endpoint."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    write_errors: int = 0
    #: Messages settled after their batch committed: acked, or needing no ack (QoS 0, or delivered
    #: on an older connection, which the broker redelivers). ``received - acked`` is outstanding.
    acked: int = 0
    connected: bool = False


class Ingester:
    """Subscribes to appliance topics and writes what arrives through an ``IngestStore``."""

    def __init__(self, *, store: IngestStore, clock: Clock, host: str, port: int,
                 client_id: str = "foresight-ingest", username: str | None = None,
                 password: str | None = None, queue_size: int = 10_000, batch_size: int = 500,
                 batch_wait_s: float = 0.05, keepalive: int = 30, mqtt_version: int = 3,
                 session_expiry_s: int = 7 * 24 * 3600, shared_group: str | None = None,
                 on_batch: Callable[[BatchResult], None] | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        """``mqtt_version`` 3 (3.1.1, ``clean_session=False``) or 5 (``clean_start=False`` with a
        ``session_expiry_s`` session, without which an MQTT 5 broker drops the session at
        disconnect). ``shared_group`` subscribes as ``$share/<group>/...`` so several workers split
        the traffic (MQTT 5 shared subscriptions; Mosquitto also honours them for 3.1.1 clients).
        ``tls_context``: connect over TLS with it (None: plain TCP)."""
        if mqtt_version not in (3, 5):
            raise ValueError("mqtt_version must be 3 or 5")
        self._mqtt_version, self._session_expiry_s = mqtt_version, session_expiry_s
        self._topics = tuple(f"$share/{shared_group}/{t}" if shared_group else t for t in SUBSCRIPTIONS)
        self._store = store
        self._clock = clock
        self._host, self._port, self._keepalive = host, port, keepalive
        self._queue: queue.Queue[tuple[Inbound, int, int, int]] = queue.Queue(maxsize=queue_size)
        # Incremented on every (re)connect: a packet id is only meaningful on the connection that
        # delivered it, so acks of messages from an older connection are dropped (the broker
        # redelivers those, and the store's (device_id, seq) key makes the redelivery harmless).
        self._generation = 0
        self._subscribed = threading.Event()
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self.stats = IngesterStats()
        if mqtt_version == 5:
            self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                       protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                       clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls_context is not None:
            self._client.tls_set_context(tls_context)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, *, wait_connected_s: float = 10.0) -> None:
        """Connect, subscribe and start the writer; returns once the broker confirmed the subscription."""
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        if self._mqtt_version == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(self._host, self._port, keepalive=self._keepalive, clean_start=False,
                                       properties=props)
        else:
            self._client.connect_async(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()
        if not self._subscribed.wait(wait_connected_s):
            self.stop(drain_s=0)
            raise ConnectionError(f"could not connect and subscribe to MQTT broker {self._host}:{self._port}")

    def stop(self, *, drain_s: float = 5.0) -> None:
        """Stop receiving, store what is queued (up to ``drain_s``), then disconnect."""
        deadline = time.monotonic() + drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=drain_s + 5)
        self._client.disconnect()
        self._client.loop_stop()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def wait_idle(self, timeout_s: float = 10.0, settle_s: float = 0.2) -> bool:
        """Block until nothing has arrived for ``settle_s`` and the queue is empty (for tests)."""
        deadline = time.monotonic() + timeout_s
        last = (-1, -1)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            state = (self.stats.received, self.stats.accepted + self.stats.duplicates + self.stats.rejected)
            if state != last:
                last, stable_since = state, time.monotonic()
            elif self._queue.empty() and not self._busy and time.monotonic() - stable_since >= settle_s:
                return True
            time.sleep(0.02)
        return False

    # -- paho callbacks (network thread: no I/O here) -----------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: mqtt.Properties | None) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._generation += 1
        client.subscribe([(topic, 1) for topic in self._topics])
        self.stats.connected = True
        log.info("ingester connected to %s:%s (session present: %s)", self._host, self._port,
                 flags.session_present)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[mqtt.ReasonCode], properties: mqtt.Properties | None) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused subscriptions: %s", refused)
            return
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: mqtt.ReasonCode, properties: mqtt.Properties | None) -> None:
        self.stats.connected = False
        if not self._stop.is_set():
            log.warning("ingester disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        inbound = Inbound(topic=msg.topic, payload=bytes(msg.payload), received_at=self._clock.now())
        self.stats.received += 1
        item = (inbound, msg.mid, msg.qos, self._generation)
        # Blocking here is the backpressure: with manual acks the broker's in-flight window
        # fills and it holds the rest of the messages for us. Unacked, a message left behind
        # at stop is redelivered to the persistent session later.
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- writer thread ------------------------------------------------------------------------

    _busy = False

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._busy = True
            batch = [first]
            deadline = time.monotonic() + self._batch_wait_s
            while len(batch) < self._batch_size:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=max(remaining, 0)) if remaining > 0
                                 else self._queue.get_nowait())
                except queue.Empty:
                    break
            result = self._write_with_retry([m for m, _, _, _ in batch])
            if result is None:  # stopping while the database is down: leave unacked for redelivery
                self._busy = False
                return
            for _, mid, qos, generation in batch:
                if qos > 0 and generation == self._generation:
                    self._client.ack(mid, qos)
            self.stats.acked += len(batch)
            self.stats.batches += 1
            self.stats.accepted += result.accepted
            self.stats.duplicates += result.duplicates
            self.stats.rejected += result.rejected
            self._busy = False
            if self._on_batch is not None:
                try:
                    self._on_batch(result)
                except Exception:  # a downstream hook must never stop ingestion
                    log.exception("on_batch hook failed")

    def _write_with_retry(self, batch: list[Inbound]) -> BatchResult | None:
        """Write the batch, retrying with backoff while the database fails; None when stopping.

        After a few failures, if the database answers, one message may be the cause (a value the
        database refuses): the batch is then written one message at a time and a message that
        still fails on its own goes to the dead-letter table, so it cannot block the fleet.
        """
        delay = 0.1
        failures = 0
        while True:
            try:
                return self._store.write_batch(batch)
            except Exception:
                failures += 1
                self.stats.write_errors += 1
                log.exception("writing a batch of %d failed; retrying in %.1fs (nothing acked)", len(batch), delay)
            if failures >= 3 and self._database_answers():
                return self._write_one_by_one(batch)
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def _database_answers(self) -> bool:
        try:
            self._store.ping()
        except Exception:
            return False
        return True

    def _write_one_by_one(self, batch: list[Inbound]) -> BatchResult:
        results = []
        for msg in batch:
            try:
                results.append(self._store.write_batch([msg]))
            except Exception as exc:
                log.exception("message on %s cannot be stored; dead-lettering it", msg.topic)
                self._store.dead_letter(msg, reason=Reason.STORE_ERROR, detail=f"{type(exc).__name__}: {exc}")
                results.append(BatchResult(accepted=0, duplicates=0, rejected=1, events=0, status_updates=0,
                                           touched_devices=(), rejected_by_reason=((str(Reason.STORE_ERROR), 1),)))
        reasons: dict[str, int] = {}
        for r in results:
            for reason, n in r.rejected_by_reason:
                reasons[reason] = reasons.get(reason, 0) + n
        return BatchResult(
            accepted=sum(r.accepted for r in results), duplicates=sum(r.duplicates for r in results),
            rejected=sum(r.rejected for r in results), events=sum(r.events for r in results),
            status_updates=sum(r.status_updates for r in results),
            touched_devices=tuple(sorted({d for r in results for d in r.touched_devices})),
            rejected_by_reason=tuple(sorted(reasons.items())), commit_s=sum(r.commit_s for r in results),
            lags_s=tuple(lag for r in results for lag in r.lags_s))
