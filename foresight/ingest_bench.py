"""Ingest benchmark: one Mosquitto, one publisher process, three consumers measured side by side.

Each scenario gets a fresh Mosquitto on a free loopback port and a fresh SQLite file. A publisher
process sends realistic QoS 1 telemetry (``encode_telemetry``, one topic per device, the publish
wall time as the reading's ``ts``) as fast as it can (or at ``rate``), while one consumer process
takes it in:

- ``raw``: a paho subscriber that only counts (the ceiling of this machine's broker + Python client);
- ``naive``: what a first version would do: ``json.loads``, ORM ``session.add`` and ``commit`` per
  message in ``on_message``, SQLAlchemy and SQLite defaults;
- ``sqlite``: Foresight's path: ``Ingester`` + ``IngestStore`` (validate, dedupe, one transaction per
  batch, features, ack after commit) on SQLite in WAL mode.

Throughput is messages processed over the time from the first publish to the last processed message;
latency is publish (``ts``, millisecond precision) to commit; peak RSS is the consumer process's.
Run with ``foresight bench ingest --json PATH``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["BenchOptions", "ScenarioResult", "run_ingest_bench"]

SCENARIOS: tuple[str, ...] = ("raw", "naive", "sqlite")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """What to publish and how long each scenario may run."""

    devices: int = 10_000
    messages: int = 40_000
    #: Per scenario: stop measuring after this many seconds even if not every message arrived.
    seconds: float = 25.0
    #: Messages per second the publisher aims for; 0 publishes as fast as it can.
    rate: float = 0.0
    batch_size: int = 500
    seed: int = 1


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One consumer's figures."""

    name: str
    published: int
    processed: int
    elapsed_s: float
    msgs_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    peak_rss_mb: float


def run_ingest_bench(options: BenchOptions, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every scenario and return the figures (the ``--json`` document)."""
    from .mosquitto import Mosquitto

    results: dict[str, ScenarioResult] = {}
    for name in SCENARIOS:
        broker = Mosquitto.start_new(max_inflight_messages=5_000, max_queued_messages=1_000_000,
                                     extra_config=["max_queued_bytes 0"])
        workdir = Path(tempfile.mkdtemp(prefix=f"foresight-bench-{name}-"))
        try:
            results[name] = _run_scenario(name, port=broker.port, workdir=workdir, options=options)
        finally:
            broker.close()
            shutil.rmtree(workdir, ignore_errors=True)
        r = results[name]
        latency = f", p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms" if r.p50_ms is not None else ""
        log(f"{name:>6}: {r.processed:,}/{r.published:,} msgs in {r.elapsed_s:.1f} s = {r.msgs_per_s:,.0f} msgs/s"
            f"{latency}, peak RSS {r.peak_rss_mb:.0f} MB")
    raw, naive, full = results["raw"], results["naive"], results["sqlite"]
    return {
        "raw_msgs_per_s": round(raw.msgs_per_s, 1),
        "naive_msgs_per_s": round(naive.msgs_per_s, 1),
        "sqlite": {"msgs_per_s": round(full.msgs_per_s, 1), "p50_ms": full.p50_ms, "p99_ms": full.p99_ms,
                   "peak_rss_mb": full.peak_rss_mb},
        "postgres": None,
        "sqlite_vs_raw": round(full.msgs_per_s / raw.msgs_per_s, 3) if raw.msgs_per_s else None,
        "scenarios": {n: asdict(r) for n, r in results.items()},
        "options": asdict(options),
        "machine": {"cpus": os.cpu_count(), "at": datetime.now(UTC).isoformat(timespec="seconds")},
    }


def _run_scenario(name: str, *, port: int, workdir: Path, options: BenchOptions) -> ScenarioResult:
    consumer, consumer_end = _spawn("consume", name, port, str(workdir), options)
    try:
        if not consumer_end.poll(60) or consumer_end.recv() != "ready":
            raise RuntimeError(f"{name} consumer did not subscribe")
        publisher, publisher_end = _spawn("publish", port, options)
        try:
            started_at = publisher_end.recv()  # wall time of the first publish
            consumer_end.send(started_at)
            if not consumer_end.poll(options.seconds + 120):
                raise RuntimeError(f"{name} consumer did not report")
            report: dict[str, Any] = consumer_end.recv()
            publisher_end.send("stop")
            published = publisher_end.recv() if publisher_end.poll(30) else -1
        finally:
            _reap(publisher)
    finally:
        _reap(consumer)
    elapsed = max(report["last_at"] - started_at, 1e-9)
    lat = sorted(report["latencies_s"])
    return ScenarioResult(
        name=name, published=published, processed=report["processed"], elapsed_s=round(elapsed, 2),
        msgs_per_s=round(report["processed"] / elapsed, 1),
        p50_ms=round(_quantile(lat, 0.50) * 1000, 1) if lat else None,
        p99_ms=round(_quantile(lat, 0.99) * 1000, 1) if lat else None,
        peak_rss_mb=round(report["peak_rss_kb"] / 1024, 1))


def _spawn(role: str, *args: Any) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``role`` in a fresh interpreter (RSS is its own, not a copy of this CLI process's)."""
    ours, theirs = socket.socketpair()
    with theirs:
        proc = subprocess.Popen([sys.executable, "-m", __name__, role, str(theirs.fileno())],
                                pass_fds=[theirs.fileno()], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(args))
    proc.stdin.close()
    return proc, Connection(ours.detach())


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _child_main(role: str, fd: str) -> None:
    args = pickle.loads(sys.stdin.buffer.read())
    conn = Connection(int(fd))
    {"publish": _publish, "consume": _consume}[role](*args, conn)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted, non-empty list."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- publisher process ------------------------------------------------------------------------------

#: Messages the publisher may have in flight (published, PUBACK not yet received).
_PUBLISH_WINDOW = 500


def _publish(port: int, options: BenchOptions, conn: Connection) -> None:
    """Publish ``messages`` QoS 1 telemetry messages round-robin over ``devices`` device ids."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from ingest.contract import PROFILES, Telemetry, encode_telemetry, format_ts, telemetry_topic

    rng = random.Random(options.seed)
    kinds = sorted(PROFILES)
    fleet = []
    for i in range(options.devices):
        profile = PROFILES[kinds[i % len(kinds)]]
        device_id = f"bench-{i:06d}"
        # A plausible operating point per device, inside each metric's valid range.
        base = {m.name: m.low + (m.high - m.low) * rng.uniform(0.2, 0.6) for m in profile.metrics}
        fleet.append((device_id, telemetry_topic(device_id), profile.kind, base))
    # Encoded before the clock starts, with a placeholder timestamp of the same length that is
    # replaced by the publish time: the publisher's speed is then the client's, not json.dumps'.
    placeholder = format_ts(datetime(2000, 1, 1, tzinfo=UTC)).encode()
    messages = []
    for n in range(options.messages):
        device_id, topic, kind, base = fleet[n % options.devices]
        metrics = {k: round(v * rng.uniform(0.98, 1.02), 2) for k, v in base.items()}
        messages.append((topic, encode_telemetry(Telemetry(
            device_id=device_id, kind=kind, model="BENCH-1", firmware="1.0.0", seq=n // options.devices,
            ts=datetime(2000, 1, 1, tzinfo=UTC), metrics=metrics))))
    acked = 0
    window = threading.Condition()

    def on_publish(client: mqtt.Client, userdata: object, mid: int, rc: mqtt.ReasonCode,
                   props: mqtt.Properties | None) -> None:
        nonlocal acked
        with window:
            acked += 1
            window.notify()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(_PUBLISH_WINDOW)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    stop = threading.Event()
    threading.Thread(target=lambda: (conn.recv(), stop.set()), daemon=True).start()
    start = time.time()
    conn.send(start)
    interval = 1.0 / options.rate if options.rate > 0 else 0.0
    for n, (topic, template) in enumerate(messages):
        if stop.is_set():
            break
        with window:  # a message must leave when it is stamped, not wait in paho's own queue
            while n - acked >= _PUBLISH_WINDOW and not stop.is_set():
                window.wait(0.1)
        payload = template.replace(placeholder, format_ts(datetime.now(UTC)).encode(), 1)
        client.publish(topic, payload, qos=1)
        if interval:
            delay = start + (n + 1) * interval - time.time()
            if delay > 0:
                time.sleep(delay)
    stop.wait()
    client.disconnect()
    client.loop_stop()
    conn.send(acked)


# -- consumer processes ----------------------------------------------------------------------------


def _consume(name: str, port: int, workdir: str, options: BenchOptions, conn: Connection) -> None:
    """Run one consumer until every message is processed or ``seconds`` passed; report over ``conn``."""
    consumer = {"raw": _RawConsumer, "naive": _NaiveConsumer, "sqlite": _ForesightConsumer}[name](
        port=port, workdir=Path(workdir), options=options)
    consumer.start()
    conn.send("ready")
    started_at: float = conn.recv()
    deadline = started_at + options.seconds
    while consumer.processed < options.messages and time.time() < deadline:
        time.sleep(0.01)
    report = {"processed": consumer.processed, "last_at": consumer.last_at or time.time(),
              "latencies_s": list(consumer.latencies_s),
              "peak_rss_kb": _peak_rss_kb()}
    conn.send(report)
    conn.close()
    os._exit(0)  # no orderly drain: what is still queued is not part of the measurement


class _NaiveBase(DeclarativeBase):
    """The naive consumer's own metadata, so Foresight's shared ``Base`` stays untouched."""


class _NaiveReading(_NaiveBase):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)


def _peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that across
    fork + exec, so a child would report the (much larger) CLI parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _PahoConsumer:
    """A QoS 1 subscriber with paho's automatic acks (after ``on_message`` returns)."""

    def __init__(self, *, port: int, workdir: Path, options: BenchOptions) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.port, self.workdir, self.options = port, workdir, options
        self.processed = 0
        self.last_at: float | None = None
        self.latencies_s: list[float] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-{type(self).__name__}", protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: c.subscribe("appliances/+/telemetry", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda c, u, msg: self.handle(msg.payload)

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("benchmark subscriber could not subscribe")

    def handle(self, payload: bytes) -> None:
        raise NotImplementedError


class _RawConsumer(_PahoConsumer):
    def handle(self, payload: bytes) -> None:
        self.processed += 1
        self.last_at = time.time()


class _NaiveConsumer(_PahoConsumer):
    """ORM ``add`` + ``commit`` per message, in the callback, with every default."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        engine = create_engine(f"sqlite:///{self.workdir / 'naive.db'}")
        _NaiveBase.metadata.create_all(engine)
        self._session = Session(engine)

    def handle(self, payload: bytes) -> None:
        body = json.loads(payload)
        ts = datetime.fromisoformat(body["ts"])
        self._session.add(_NaiveReading(device_id=body["device_id"], seq=body["seq"], ts=ts, kind=body["kind"],
                                    metrics=body["metrics"]))
        self._session.commit()
        now = time.time()
        self.latencies_s.append(now - ts.timestamp())
        self.processed += 1
        self.last_at = now


class _ForesightConsumer:
    """The production path: ``Ingester`` + ``IngestStore`` on SQLite, acks after commit."""

    def __init__(self, *, port: int, workdir: Path, options: BenchOptions) -> None:
        from ingest.clock import SystemClock
        from ingest.db import create_schema, make_engine
        from ingest.store import BatchResult, IngestStore
        from ingest.subscriber import Ingester

        self.processed = 0
        self.last_at: float | None = None
        self.latencies_s: list[float] = []
        engine = make_engine(f"sqlite:///{workdir / 'foresight.db'}")
        create_schema(engine)
        clock = SystemClock()

        def on_batch(result: BatchResult) -> None:
            self.latencies_s.extend(result.lags_s)
            self.processed += result.accepted + result.duplicates + result.rejected
            self.last_at = time.time()

        self.ingester = Ingester(store=IngestStore(engine, clock=clock), clock=clock, host="127.0.0.1", port=port,
                                 client_id="bench-foresight", batch_size=options.batch_size, on_batch=on_batch)

    def start(self) -> None:
        self.ingester.start()


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
