"""Faults against real parts: the ingester SIGKILLed at random points, its writer process SIGKILLed or
hung, the broker restarted. Each test asserts every published (device_id, seq) is stored exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.clock import SystemClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import ReadingRow, create_schema, make_engine
from ingest.store import IngestStore
from tests.ingest.writers import WRITERS, make_ingester
from tests.services import Mosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A broker of the test's own, with persistence, that the test may restart."""
    b = Mosquitto.start_new()
    yield b
    b.close()


def _publisher(broker: Mosquitto, name: str) -> mqtt.Client:
    # A persistent publisher session: what is in flight when the broker goes away is resent.
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
    client.reconnect_delay_set(min_delay=0.2, max_delay=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _payload(device: str, seq: int) -> bytes:
    return encode_telemetry(Telemetry(device_id=device, kind="air_conditioner", model="AC-2500", firmware="1.0",
                                      seq=seq, ts=datetime.now(UTC) - timedelta(seconds=1),
                                      metrics={"filter_dp_pa": 60.0 + seq % 50, "fan_current_a": 0.8}))


def _publish_in_background(pub: mqtt.Client, expected: list[tuple[str, int]]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def publish() -> None:
        for device, seq in expected:
            pub.publish(telemetry_topic(device), _payload(device, seq), qos=1)
            time.sleep(0.002)
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    return thread, done


def _stored(database_url: str) -> list[tuple[str, int]]:
    engine = make_engine(database_url)
    with Session(engine) as s:
        rows = list(s.execute(select(ReadingRow.device_id, ReadingRow.seq)))
    engine.dispose()
    return sorted((d, q) for d, q in rows)


def _wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _spawn_worker(url: str, broker: Mosquitto, client_id: str, writer: str) -> tuple[subprocess.Popen[str], int | None]:
    """``tests.ingest.ingest_worker`` in its own process, once subscribed; and its writer process's id."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.ingest.ingest_worker", url, broker.host, str(broker.port),
                             client_id, writer], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, child = proc.stdout.readline().split()
    assert ready == "ready"
    return proc, None if child == "-" else int(child)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("writer", WRITERS)
def test_ingester_sigkilled_at_random_points_loses_and_doubles_nothing(broker: Mosquitto, tmp_path: Path,
                                                                       writer: str) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    create_schema(make_engine(url))
    rng = random.Random(7)
    expected = [(f"ac-kill-{d}", seq) for seq in range(150) for d in range(4)]
    orphans: list[int] = []

    def spawn() -> subprocess.Popen[str]:
        proc, child = _spawn_worker(url, broker, "kill-test-ingest", writer)
        if child is not None:
            orphans.append(child)
        return proc

    worker = spawn()
    pub = _publisher(broker, "kill-test-pub")
    thread, done = _publish_in_background(pub, expected)
    kills = 0
    try:
        while not done.is_set() or kills < 3:
            time.sleep(rng.uniform(0.1, 0.6))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = spawn()
        thread.join()
        assert _wait_for(lambda: len(_stored(url)) >= len(expected), timeout_s=60)
        time.sleep(1.0)  # anything redelivered late must still not double
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        if worker.stdout:
            worker.stdout.close()
        pub.disconnect()
        pub.loop_stop()
    assert kills >= 3
    assert _stored(url) == sorted(expected)
    # A killed worker's writer process notices the end of its connection and exits.
    assert _wait_for(lambda: all(_gone(pid) for pid in orphans), timeout_s=30)


def test_writer_process_exits_when_the_ingester_is_killed(broker: Mosquitto, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    create_schema(make_engine(url))
    worker, child = _spawn_worker(url, broker, "orphan-test-ingest", "process")
    try:
        assert child is not None and not _gone(child)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert _wait_for(lambda: _gone(child), timeout_s=30)
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout:
            worker.stdout.close()


def test_writer_process_sigkilled_repeatedly_loses_and_doubles_nothing(broker: Mosquitto, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'child-kill.db'}")
    create_schema(engine)
    ingester = make_ingester("process", engine=engine, clock=SystemClock(), host=broker.host, port=broker.port,
                             client_id="child-kill-test-ingest", batch_size=50, batch_wait_s=0.02)
    ingester.start()
    rng = random.Random(11)
    expected = [(f"ac-child-{d}", seq) for seq in range(150) for d in range(4)]
    pub = _publisher(broker, "child-kill-test-pub")
    thread, done = _publish_in_background(pub, expected)
    kills, killed = 0, []
    try:
        while not done.is_set() or kills < 3:
            time.sleep(rng.uniform(0.1, 0.5))
            pid = ingester.writer_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            kills += 1
            # The next kill must hit the replacement, not the corpse.
            assert _wait_for(lambda: ingester.stats.writer_restarts == kills and ingester.writer_pid not in killed,
                             timeout_s=30)
        thread.join()
        assert _wait_for(lambda: len(_stored(str(engine.url))) >= len(expected), timeout_s=60)
        assert ingester.wait_idle(timeout_s=20, settle_s=1.0)
    finally:
        pub.disconnect()
        pub.loop_stop()
        ingester.stop()
    assert ingester.stats.writer_restarts >= 3
    assert ingester.stats.acked == ingester.stats.received
    assert _stored(str(engine.url)) == sorted(expected)
    engine.dispose()


def test_hung_writer_process_is_killed_and_replaced(broker: Mosquitto, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hung.db'}")
    create_schema(engine)
    ingester = make_ingester("process", engine=engine, clock=SystemClock(), host=broker.host, port=broker.port,
                             client_id="hung-test-ingest", batch_size=50, batch_wait_s=0.02, writer_timeout_s=2.0)
    ingester.start()
    expected = [(f"ac-hung-{d}", seq) for seq in range(60) for d in range(4)]
    pub = _publisher(broker, "hung-test-pub")
    hung = ingester.writer_pid
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)  # alive, silent: what a deadlocked driver would look like
    try:
        thread, _ = _publish_in_background(pub, expected)
        thread.join()
        assert _wait_for(lambda: len(_stored(str(engine.url))) >= len(expected), timeout_s=60)
        assert ingester.wait_idle(timeout_s=20, settle_s=1.0)
    finally:
        if not _gone(hung):
            os.kill(hung, signal.SIGKILL)
        pub.disconnect()
        pub.loop_stop()
        ingester.stop()
    assert ingester.stats.writer_restarts >= 1 and ingester.writer_pid != hung
    assert _stored(str(engine.url)) == sorted(expected)
    engine.dispose()


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("restarts", [1, 3], ids=["one restart", "connections cut three times"])
def test_broker_restart_with_persistence_loses_and_doubles_nothing(broker: Mosquitto, tmp_path: Path,
                                                                   restarts: int, writer: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'restart.db'}")
    create_schema(engine)
    clock = SystemClock()
    store = IngestStore(engine, clock=clock)
    ingester = make_ingester(writer, engine=engine, clock=clock, host=broker.host, port=broker.port,
                             client_id="restart-test-ingest", batch_size=50)
    ingester.start()
    expected = [(f"ac-restart-{d}", seq) for seq in range(100) for d in range(3)]
    pub = _publisher(broker, "restart-test-pub")
    cut_at = {len(expected) * (k + 1) // (restarts + 1) for k in range(restarts)}
    try:
        for i, (device, seq) in enumerate(expected):
            if i in cut_at:
                broker.restart()  # SIGTERM: Mosquitto saves sessions and queued messages, then starts again
            info = pub.publish(telemetry_topic(device), _payload(device, seq), qos=1)
            if i < min(cut_at):
                info.wait_for_publish(5)
        assert _wait_for(lambda: len(store.recent_readings("ac-restart-0", limit=1000)) == 100
                         and len(store.recent_readings("ac-restart-2", limit=1000)) == 100, timeout_s=60)
        assert ingester.wait_idle(timeout_s=20, settle_s=1.0)
    finally:
        pub.disconnect()
        pub.loop_stop()
        ingester.stop()
    with Session(engine) as s:
        rows = sorted((d, q) for d, q in s.execute(select(ReadingRow.device_id, ReadingRow.seq)))
        assert s.scalar(select(func.count()).select_from(ReadingRow)) == len(expected)
    assert rows == sorted(expected)
    engine.dispose()
