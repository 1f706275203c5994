"""The MQTT ingester: paho callbacks only enqueue; a writer stores in batches, then acks.

``on_message`` converts the paho message into an ``Inbound`` and puts it on a bounded queue — no
I/O in the network thread. The writer thread drains the queue in batches and has each one stored in
one transaction, either itself (``writer="thread"``: ``IngestStore.write_batch`` in this process) or
by a child process (``writer="process"``, ``ingest.writer_process``: the decoding and storing then
run on a core and a GIL of their own, with up to ``batches_in_flight`` batches sent ahead). Only
after the commit are the messages acknowledged (paho ``manual_ack=True``, QoS 1, persistent
session), in order. When the database fails, the same batch is retried with backoff and nothing is
acked meanwhile, so the broker keeps the messages: no loss (``ingest.writing``).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.clock import Clock
from ingest.store import BatchResult, Inbound
from ingest.writer_process import ProcessWriter, StoreSpec
from ingest.writing import BatchStore, write_with_retry

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
    #: Writer processes started again after one died or hung (``writer="process"``).
    writer_restarts: int = 0


class Ingester:
    """Subscribes to appliance topics and writes what arrives through an ``IngestStore``."""

    def __init__(self, *, clock: Clock, host: str, port: int, store: BatchStore | None = None,
                 writer: Literal["thread", "process"] = "thread", store_spec: StoreSpec | None = None,
                 batches_in_flight: int = 2, writer_timeout_s: float = 60.0,
                 client_id: str = "foresight-ingest", username: str | None = None,
                 password: str | None = None, queue_size: int = 10_000, batch_size: int = 500,
                 batch_wait_s: float = 0.05, keepalive: int = 30, mqtt_version: int = 3,
                 session_expiry_s: int = 7 * 24 * 3600, shared_group: str | None = None,
                 on_batch: Callable[[BatchResult], None] | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        """``writer="thread"`` stores through ``store`` in a thread of this process; ``"process"``
        through a child process that builds its own store from ``store_spec``, with up to
        ``batches_in_flight`` batches sent ahead and a child silent for ``writer_timeout_s`` while a
        batch waits taken for hung (killed and started again).

        ``mqtt_version`` 3 (3.1.1, ``clean_session=False``) or 5 (``clean_start=False`` with a
        ``session_expiry_s`` session, without which an MQTT 5 broker drops the session at
        disconnect). ``shared_group`` subscribes as ``$share/<group>/...`` so several workers split
        the traffic (MQTT 5 shared subscriptions; Mosquitto also honours them for 3.1.1 clients).
        ``tls_context``: connect over TLS with it (None: plain TCP)."""
        if writer not in ("thread", "process"):
            raise ValueError('writer must be "thread" or "process"')
        if (writer == "thread" and store is None) or (writer == "process" and store_spec is None):
            raise ValueError('writer="thread" needs a store, writer="process" a store_spec')
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
        # Messages taken off the queue, and those settled after their commit (each counted by one
        # thread only): the writer is idle when the two are equal.
        self._taken = 0
        self._settled = 0
        self._process_started = False
        self._process = None if store_spec is None or writer == "thread" else ProcessWriter(
            store_spec, on_result=self._settle, on_write_error=self._count_write_error,
            on_restart=self._count_restart, batches_in_flight=batches_in_flight, reply_timeout_s=writer_timeout_s)
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
        self.start_writer()
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

    def start_writer(self) -> None:
        """Start the writer process and wait until it is ready (``start`` does it if not done yet);
        nothing to do for the writer thread. Raises ``RuntimeError`` if the process cannot start."""
        if self._process is not None and not self._process_started:
            self._process.start()
            self._process_started = True

    def stop(self, *, drain_s: float = 5.0) -> None:
        """Stop receiving, store what is queued (up to ``drain_s``), then disconnect."""
        deadline = time.monotonic() + drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=drain_s + 5)
        if self._process is not None:
            # What the child is committing is acked if it finishes in time; the rest is redelivered.
            self._process.wait_settled(max(deadline - time.monotonic(), 0.0))
            self._process.close()
        self._client.disconnect()
        self._client.loop_stop()

    def queue_depth(self) -> int:
        """Messages received and waiting for the writer."""
        return self._queue.qsize()

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (``writer="process"``; None otherwise)."""
        return None if self._process is None else self._process.pid

    def wait_idle(self, timeout_s: float = 10.0, settle_s: float = 0.2) -> bool:
        """Block until nothing has arrived for ``settle_s`` and the queue is empty (for tests)."""
        deadline = time.monotonic() + timeout_s
        last = (-1, -1)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            state = (self.stats.received, self.stats.accepted + self.stats.duplicates + self.stats.rejected)
            if state != last:
                last, stable_since = state, time.monotonic()
            elif (self._queue.empty() and self._taken == self._settled
                  and time.monotonic() - stable_since >= settle_s):
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

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if not batch:
                continue
            # The batch's event time, from the one clock (a writer process has none of its own).
            now = self._clock.now()
            inbound = [m for m, _, _, _ in batch]
            if self._process is not None:
                if not self._process.submit(inbound, now=now, token=(batch, now)):
                    return  # closing: left unacked for redelivery
                continue
            assert self._store is not None
            result = write_with_retry(self._store, inbound, now=now, stop=self._stop,
                                      on_error=self._count_write_error)
            if result is None:  # stopping while the database is down: leave unacked for redelivery
                return
            self._settle((batch, now), result)

    def _next_batch(self) -> list[tuple[Inbound, int, int, int]]:
        """Up to ``batch_size`` messages, waiting at most ``batch_wait_s`` after the first."""
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        self._taken += 1
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
            self._taken += 1
        return batch

    def _settle(self, token: tuple[list[tuple[Inbound, int, int, int]], datetime], result: BatchResult) -> None:
        """After the commit: ack the batch, count it, tell the hook (the writer's or its reader's thread)."""
        batch, now = token
        result = _lags_to(result, sent_at=now, settled_at=self._clock.now())
        for _, mid, qos, generation in batch:
            if qos > 0 and generation == self._generation:
                self._client.ack(mid, qos)
        self.stats.acked += len(batch)
        self.stats.batches += 1
        self.stats.accepted += result.accepted
        self.stats.duplicates += result.duplicates
        self.stats.rejected += result.rejected
        self._settled += len(batch)
        if self._on_batch is not None:
            try:
                self._on_batch(result)
            except Exception:  # a downstream hook must never stop ingestion
                log.exception("on_batch hook failed")

    def _count_write_error(self) -> None:
        self.stats.write_errors += 1

    def _count_restart(self) -> None:
        self.stats.writer_restarts += 1


def _lags_to(result: BatchResult, *, sent_at: datetime, settled_at: datetime) -> BatchResult:
    """The batch's lags measured to ``settled_at`` (this process's clock once the commit is known).

    The store measures them to ``sent_at + commit_s`` (it is given the event time, and a writer
    process has no clock); the queueing behind another batch, decoding and retries happen outside
    ``commit_s``, and a reading's lag includes them.
    """
    if not result.lags_s:
        return result
    shift = (settled_at - sent_at - timedelta(seconds=result.commit_s)).total_seconds()
    return replace(result, lags_s=tuple(lag + shift for lag in result.lags_s))
