"""Faults between the ingester and its real neighbours: the network to the broker cut again and
again (the broker itself stays up), and PostgreSQL stopped for a while and started again. Each test
asserts every published (device_id, seq) is stored exactly once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from ingest.clock import SystemClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import ReadingRow, create_schema, make_engine
from tests.ingest.writers import WRITERS, make_ingester
from tests.services import Mosquitto, Postgres

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


class CuttableLink:
    """A loopback TCP relay to ``port`` whose open connections ``cut()`` drops at once (both ways),
    as a network failure would; new connections are relayed again right after."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def cut(self) -> int:
        """Drop every open connection; returns how many were cut."""
        with self._lock:
            dropped, self._open = self._open, []
        for s in dropped:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(dropped) // 2

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut()


def _publisher(broker: Mosquitto, name: str) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _publish_all(pub: mqtt.Client, expected: list[tuple[str, int]], *, during: Callable[[int], None]) -> None:
    """Publish ``expected`` (QoS 1, each acked by the broker), calling ``during(i)`` before message ``i``."""
    for i, (device, seq) in enumerate(expected):
        during(i)
        t = Telemetry(device_id=device, kind="air_conditioner", model="AC-2500", firmware="1.0", seq=seq,
                      ts=datetime.now(UTC) - timedelta(seconds=1),
                      metrics={"filter_dp_pa": 60.0 + seq % 50, "fan_current_a": 0.8})
        pub.publish(telemetry_topic(device), encode_telemetry(t), qos=1).wait_for_publish(10)


def _stored(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return sorted((d, q) for d, q in conn.execute(select(ReadingRow.device_id, ReadingRow.seq)))


def _wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto.start_new()
    yield b
    b.close()


@pytest.mark.parametrize("writer", WRITERS)
def test_connection_cut_repeatedly_loses_and_doubles_nothing(broker: Mosquitto, tmp_path: Path, writer: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cuts.db'}")
    create_schema(engine)
    link = CuttableLink(broker.port)
    ingester = make_ingester(writer, engine=engine, clock=SystemClock(), host="127.0.0.1", port=link.port,
                             client_id="cut-test-ingest", batch_size=40, batch_wait_s=0.02)
    ingester.start()
    expected = [(f"ac-cut-{d}", seq) for seq in range(80) for d in range(4)]
    cut_at = {len(expected) * k // 6 for k in range(1, 6)}  # five cuts spread over the run
    cuts = []

    def cut(i: int) -> None:
        if i in cut_at:  # the ingester back on a new connection first, so every cut drops a live one
            assert _wait_for(lambda: ingester.stats.connected and link.connections == 1, timeout_s=30)
            cuts.append(link.cut())

    pub = _publisher(broker, "cut-test-pub")
    try:
        _publish_all(pub, expected, during=cut)
        assert _wait_for(lambda: len(_stored(engine)) >= len(expected), timeout_s=60)
        assert ingester.wait_idle(timeout_s=20, settle_s=1.0)  # late redeliveries must still not double
    finally:
        pub.disconnect()
        pub.loop_stop()
        ingester.stop()
        link.close()
    assert cuts == [1] * 5  # each cut really dropped the ingester's live connection
    assert _stored(engine) == sorted(expected)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("writer", WRITERS)
def test_postgres_down_for_a_while_loses_and_doubles_nothing(broker: Mosquitto, writer: str) -> None:
    """The writer retries with backoff and acks nothing while PostgreSQL is down; with a small queue
    the ingester soon holds all it may, and the broker holds the rest (backpressure); after the
    restart everything lands once."""
    cluster = Postgres.start_new()
    queue_size, batch_size, in_flight = 20, 40, 2
    try:
        engine = make_engine(cluster.create_database())
        create_schema(engine)
        ingester = make_ingester(writer, engine=engine, clock=SystemClock(), host=broker.host, port=broker.port,
                                 client_id="pg-outage-ingest", batch_size=batch_size, batch_wait_s=0.02,
                                 queue_size=queue_size, batches_in_flight=in_flight)
        ingester.start()
        expected = [(f"ac-pg-{d}", seq) for seq in range(100) for d in range(4)]
        down_at, up_at = 100, 300
        # What the ingester can hold unacknowledged: the queue, the batch the writer thread holds, the
        # batches sent ahead to a writer process, and the one message paho's thread is blocked on.
        held = queue_size + batch_size * (1 + (in_flight if writer == "process" else 0)) + 1
        pub = _publisher(broker, "pg-outage-pub")
        errors_before_restart, outstanding = 0, 0

        def outage(i: int) -> None:
            nonlocal errors_before_restart, outstanding
            if i == down_at:
                assert _wait_for(lambda: ingester.stats.acked == ingester.stats.received == down_at, timeout_s=30)
                cluster.stop()
            elif i == up_at:
                assert _wait_for(lambda: ingester.stats.write_errors >= 2, timeout_s=30)
                errors_before_restart = ingester.stats.write_errors
                outstanding = ingester.stats.received - ingester.stats.acked
                cluster.start()

        try:
            _publish_all(pub, expected, during=outage)
            assert _wait_for(lambda: len(_stored(engine)) >= len(expected), timeout_s=60)
            assert ingester.wait_idle(timeout_s=20, settle_s=1.0)
        finally:
            pub.disconnect()
            pub.loop_stop()
            ingester.stop()
        assert errors_before_restart >= 2  # the database really was gone while messages arrived
        # Of the 200 published while it was down, the ingester took at most what it can hold and
        # acked none; the broker kept the others until the writer could store again.
        assert 0 < outstanding <= held < up_at - down_at
        assert _stored(engine) == sorted(expected)
        engine.dispose()
    finally:
        cluster.close()
