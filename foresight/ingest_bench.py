"""Ingest benchmark: one Mosquitto, one publisher process, consumers measured side by side in one run.

Each scenario gets a fresh Mosquitto on a free loopback port and a fresh database. Two phases:

- **drain** (throughput): the consumer subscribes with a persistent session and goes away; a
  publisher process sends the whole backlog (realistic QoS 1 telemetry, ``encode_telemetry``, one
  topic per device) and the broker queues it; the consumer comes back and drains it. Throughput is
  messages processed over the time from its reconnect to the last one processed, so it is the
  consumer's rate, not the publisher's.
- **paced** (latency, Foresight only): a fresh database, the consumer connected, the publisher
  sending at half the drain rate just measured, the publish wall time as each reading's ``ts``;
  latency is publish to commit (millisecond precision).

Consumers (``foresight.ingest_bench_consumers``): ``raw`` (paho, only counts), ``naive`` (ORM add +
commit per message), ``sqlite`` and ``postgres`` (Foresight's path with its default writer process),
``sqlite_thread`` (the same on SQLite with the writer thread, for comparison), ``postgres_2_workers``
(two Foresight processes on one PostgreSQL, MQTT 5 shared subscription). Peak RSS is each consumer's
own: its process plus its writer process (the sum of the two peaks). PostgreSQL runs in a throwaway
cluster with durable commits (PostgreSQL defaults). Run with ``foresight bench ingest --json PATH``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["BenchOptions", "ScenarioResult", "run_ingest_bench"]

#: name -> (consumer kind, database, workers, Foresight's writer)
SCENARIOS: dict[str, tuple[str, str, int, str]] = {
    "raw": ("raw", "none", 1, "-"),
    "naive": ("naive", "sqlite", 1, "-"),
    "sqlite": ("foresight", "sqlite", 1, "process"),
    "sqlite_thread": ("foresight", "sqlite", 1, "thread"),
    "postgres": ("foresight", "postgres", 1, "process"),
    "postgres_2_workers": ("foresight", "postgres", 2, "process"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """What to publish and how long each phase may run."""

    devices: int = 10_000
    messages: int = 40_000
    #: Per phase: stop measuring after this many seconds even if not every message arrived.
    seconds: float = 60.0
    #: Messages per second of the paced (latency) phase; 0: half the scenario's drain rate.
    rate: float = 0.0
    #: Seconds of the paced phase (its message count is ``rate * paced_seconds``).
    paced_seconds: float = 15.0
    batch_size: int = 500
    seed: int = 1
    #: Scenarios to run, in order (default: all).
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    #: Seconds of the memory soak (Foresight on SQLite, paced, RSS sampled every 5 s); 0: none.
    soak_seconds: float = 0.0


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
    #: The paced phase's publish rate (msgs/s), when there was one.
    paced_rate: float | None = None
    paced_processed: int | None = None
    #: The drain's CPU per message processed, in µs: ``consumer`` (the consumer's own process: for
    #: Foresight the MQTT process, with the writer in it for ``sqlite_thread``), ``writer`` (its
    #: writer process), ``broker``, ``postgres`` (the server, where there is one) and ``total``. On
    #: a machine whose cores are full, cores / total is the most messages per second it can take.
    #: The broker's and server's are counted from the go signal to the last report, so a phase cut
    #: off by ``seconds`` also charges them for what was delivered but not yet processed.
    cpu_us_per_msg: dict[str, float] | None = None


def run_ingest_bench(options: BenchOptions, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every scenario and return the figures (the ``--json`` document)."""
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {list(SCENARIOS)}")
    results: dict[str, ScenarioResult] = {}
    cluster = None
    try:
        if any(SCENARIOS[n][1] == "postgres" for n in options.scenarios):
            from .postgres_cluster import PostgresCluster

            cluster = PostgresCluster.start_new()
        for name in options.scenarios:
            results[name] = _run_scenario(name, options=options, cluster=cluster)
            r = results[name]
            latency = (f"; paced at {r.paced_rate:,.0f} msgs/s: p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms"
                       if r.p50_ms is not None and r.paced_rate else "")
            cpu = ("; CPU µs/msg: " + ", ".join(f"{k} {v:.0f}" for k, v in r.cpu_us_per_msg.items())
                   if r.cpu_us_per_msg else "")
            log(f"{name:>18}: {r.processed:,}/{r.published:,} msgs drained in {r.elapsed_s:.1f} s = "
                f"{r.msgs_per_s:,.0f} msgs/s{latency}, peak RSS {r.peak_rss_mb:.0f} MB{cpu}")
        soak = _soak(options, results, log=log) if options.soak_seconds > 0 else None
    finally:
        if cluster is not None:
            cluster.close()
    return _summary(results, options) | {"soak": soak}


def _soak(options: BenchOptions, results: dict[str, ScenarioResult], *, log: Callable[[str], None]) -> dict[str, Any]:
    """Foresight on SQLite at a steady rate for ``soak_seconds``: is its memory flat?"""
    rate = options.rate or (results["sqlite"].msgs_per_s / 2 if "sqlite" in results else 1000.0)
    count = int(rate * options.soak_seconds)
    figures = _phase("soak", "paced", kind="foresight", database="sqlite", workers=1, writer="process", cluster=None,
                     options=replace(options, messages=count, rate=rate, seconds=options.soak_seconds + 30))
    samples = figures["rss_samples"]
    minute = [mb for t, mb, _, _ in samples if t <= 60] or [samples[0][1]]
    last = [mb for t, mb, _, _ in samples if t >= samples[-1][0] - 60] or [samples[-1][1]]
    out = {"rate": round(rate, 1), "seconds": options.soak_seconds, "processed": figures["processed"],
           "rss_mb_first_minute_max": round(max(minute), 1), "rss_mb_last_minute_max": round(max(last), 1),
           "p99_ms": _hist_quantile(figures["latency_ms"], 0.99),
           "rss_mb_samples": [(round(t), round(mb, 1)) for t, mb, _, _ in samples],
           # The MQTT process alone: what the writer process holds is the difference.
           "rss_mb_parent_samples": [(round(t), round(parent, 1)) for t, _, parent, _ in samples],
           # The most messages the consumer held at once (received, not yet acked) in each interval.
           "held_max_samples": [(round(t), held) for t, _, _, held in samples]}
    log(f"{'soak':>18}: {figures['processed']:,} msgs at {rate:,.0f} msgs/s over {options.soak_seconds:.0f} s, "
        f"RSS max {out['rss_mb_first_minute_max']} MB in the first minute, "
        f"{out['rss_mb_last_minute_max']} MB in the last; p99 {out['p99_ms']} ms")
    return out


def _summary(results: dict[str, ScenarioResult], options: BenchOptions) -> dict[str, Any]:
    def obj(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return None if r is None else {"msgs_per_s": r.msgs_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                                       "peak_rss_mb": r.peak_rss_mb, "paced_rate": r.paced_rate,
                                       "cpu_us_per_msg": r.cpu_us_per_msg}

    def rate(name: str) -> float | None:
        return results[name].msgs_per_s if name in results else None

    def ratio(a: str, b: str) -> float | None:
        x, y = rate(a), rate(b)
        return round(x / y, 3) if x is not None and y else None

    return {
        "raw_msgs_per_s": rate("raw"),
        "naive_msgs_per_s": rate("naive"),
        "sqlite": obj("sqlite"),
        "sqlite_thread": obj("sqlite_thread"),
        "postgres": obj("postgres"),
        "postgres_2_workers": obj("postgres_2_workers"),
        "sqlite_vs_raw": ratio("sqlite", "raw"),
        "sqlite_vs_naive": ratio("sqlite", "naive"),
        "sqlite_thread_vs_raw": ratio("sqlite_thread", "raw"),
        "sqlite_vs_sqlite_thread": ratio("sqlite", "sqlite_thread"),
        "postgres_2_workers_vs_1": ratio("postgres_2_workers", "postgres"),
        "scenarios": {n: asdict(r) for n, r in results.items()},
        "options": asdict(options),
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2),
                    "at": datetime.now(UTC).isoformat(timespec="seconds")},
    }


def _run_scenario(name: str, *, options: BenchOptions, cluster: Any) -> ScenarioResult:
    kind, database, workers, writer = SCENARIOS[name]
    drain = _phase(name, "drain", kind=kind, database=database, workers=workers, writer=writer, cluster=cluster,
                   options=replace(options, rate=0.0))
    paced: dict[str, Any] | None = None
    if kind == "foresight" and workers == 1:
        rate = options.rate or max(drain["msgs_per_s"] / 2, 1.0)
        count = max(1, min(options.messages, int(rate * options.paced_seconds)))
        paced = _phase(name, "paced", kind=kind, database=database, workers=1, writer=writer, cluster=cluster,
                       options=replace(options, messages=count, rate=rate))
    # Draining a backlog, latency is time spent queued: only the paced phase measures it.
    lat = paced["latency_ms"] if paced else Counter()
    return ScenarioResult(
        name=name, published=drain["published"], processed=drain["processed"], elapsed_s=drain["elapsed_s"],
        msgs_per_s=drain["msgs_per_s"],
        p50_ms=_hist_quantile(lat, 0.50), p99_ms=_hist_quantile(lat, 0.99),
        peak_rss_mb=round(max(drain["peak_rss_kb"], paced["peak_rss_kb"] if paced else 0) / 1024, 1),
        paced_rate=round(paced["rate"], 1) if paced else None,
        paced_processed=paced["processed"] if paced else None, cpu_us_per_msg=drain["cpu_us_per_msg"])


def _phase(name: str, phase: str, *, kind: str, database: str, workers: int, writer: str, options: BenchOptions,
           cluster: Any) -> dict[str, Any]:
    """One phase of one scenario on a fresh broker and database; its raw figures."""
    from .mosquitto import Mosquitto
    from .procstat import cpu_s

    broker = Mosquitto.start_new(max_inflight_messages=5_000, max_queued_messages=10_000_000,
                                 extra_config=["max_queued_bytes 0"])
    workdir = Path(tempfile.mkdtemp(prefix=f"foresight-bench-{name}-"))
    url = None
    if database == "postgres":
        from ingest.db import create_schema, make_engine

        url = cluster.create_database(f"bench_{name}_{phase}_{time.monotonic_ns()}")
        engine = make_engine(url)
        create_schema(engine)  # here, not in each worker: two CREATE TABLEs at once collide
        engine.dispose()
    consumers = [_spawn("consume", kind, broker.port, str(workdir), url, options, i, workers > 1, phase, writer)
                 for i in range(workers)]
    try:
        for _, end in consumers:
            if not end.poll(120) or end.recv() != "ready":
                raise RuntimeError(f"{name} consumer did not subscribe")
        publisher, publisher_end = _spawn("publish", broker.port, options)
        try:
            published = None
            if phase == "drain":  # the whole backlog is queued
                if not publisher_end.poll(300):
                    raise RuntimeError("the publisher did not get the backlog into the broker")
                published = publisher_end.recv()
            go_at = time.time()
            assert broker.proc is not None and (url is None or cluster is not None)
            broker_cpu = cpu_s(broker.proc.pid)
            server_ticks = cluster.cpu_ticks() if url is not None else {}
            for _, end in consumers:
                end.send(go_at)
            reports = []
            for _, end in consumers:
                if not end.poll(options.seconds + 120):
                    raise RuntimeError(f"{name} consumer did not report")
                reports.append(end.recv())
            broker_cpu = cpu_s(broker.proc.pid) - broker_cpu
            server_cpu = cluster.cpu_s_since(server_ticks) if url is not None else None
            for _, end in consumers:  # measured: now they may exit (and their server backends with them)
                with contextlib.suppress(OSError):
                    end.send("bye")
            publisher_end.send("stop")
            if published is None:
                published = publisher_end.recv() if publisher_end.poll(30) else -1
        finally:
            _reap(publisher)
    finally:
        for proc, end in consumers:
            end.close()  # a consumer waiting for "bye" sees the end and exits
            _reap(proc)
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)
    started = reports[0]["started_at"] if phase == "paced" else go_at
    elapsed = max(max(r["last_at"] for r in reports) - started, 1e-9)
    processed = sum(r["processed"] for r in reports)
    return {"published": published, "processed": processed, "elapsed_s": round(elapsed, 2),
            "msgs_per_s": round(processed / elapsed, 1), "rate": options.rate,
            "latency_ms": sum((Counter(r["latency_ms"]) for r in reports), Counter()),
            "rss_samples": reports[0]["rss_samples"],
            "peak_rss_kb": max(r["peak_rss_kb"] for r in reports),
            "per_worker": [r["processed"] for r in reports],
            "cpu_us_per_msg": _per_msg({"consumer": sum(r["cpu_s"][0] for r in reports),
                                        "writer": sum(r["cpu_s"][1] for r in reports), "broker": broker_cpu,
                                        "postgres": server_cpu}, processed, writer=writer)}


def _per_msg(cpu_s: dict[str, float | None], processed: int, *, writer: str) -> dict[str, float] | None:
    """CPU seconds as µs per message processed (the writer's only where it is a process of its own,
    PostgreSQL's where there is a server)."""
    if not processed:
        return None
    out = {k: round(v / processed * 1e6, 1) for k, v in cpu_s.items()
           if v is not None and (k != "writer" or writer == "process")}
    return out | {"total": round(sum(out.values()), 1)}


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


def _hist_quantile(counts: Counter[int], q: float) -> float | None:
    """Nearest-rank quantile of a ``{milliseconds: count}`` histogram; None when empty."""
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = min(total - 1, int(q * total)), 0
    for ms in sorted(counts):
        seen += counts[ms]
        if seen > rank:
            return float(ms)
    return float(max(counts))


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

    def generate() -> Iterator[tuple[str, bytes]]:
        for n in range(options.messages):
            device_id, topic, kind, base = fleet[n % options.devices]
            metrics = {k: round(v * rng.uniform(0.98, 1.02), 2) for k, v in base.items()}
            yield topic, encode_telemetry(Telemetry(
                device_id=device_id, kind=kind, model="BENCH-1", firmware="1.0.0", seq=n // options.devices,
                ts=datetime(2000, 1, 1, tzinfo=UTC), metrics=metrics))

    # Encoded before the clock starts, except for a soak's millions, encoded as they go.
    messages = generate() if options.messages > 200_000 else list(generate())
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
    paced = options.rate > 0
    # Our own window in front of paho's: paho rescans its whole outgoing queue on every PUBACK, so
    # a backlog left in its queue publishes in quadratic time; and paced, a message must leave
    # when it is stamped, not wait there.
    window_size = _PUBLISH_WINDOW if paced else 2_000
    client.max_inflight_messages_set(window_size)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    stop = threading.Event()
    start = time.time()
    interval = 1.0 / options.rate if paced else 0.0
    if paced:
        threading.Thread(target=lambda: (conn.recv(), stop.set()), daemon=True).start()
    for n, (topic, template) in enumerate(messages):
        if stop.is_set():
            break
        with window:
            while n - acked >= window_size and not stop.is_set():
                window.wait(0.1)
        payload = template.replace(placeholder, format_ts(datetime.now(UTC)).encode(), 1)
        client.publish(topic, payload, qos=1)
        if interval:
            delay = start + (n + 1) * interval - time.time()
            if delay > 0:
                time.sleep(delay)
    if not paced:  # report once the broker holds the whole backlog
        with window:
            deadline = time.time() + 120
            while acked < options.messages and time.time() < deadline:
                window.wait(0.5)
        conn.send(acked)
        conn.recv()
    else:
        stop.wait()
    client.disconnect()
    client.loop_stop()
    if paced:
        conn.send(acked)


# -- consumer processes ----------------------------------------------------------------------------


def _consume(kind: str, port: int, workdir: str, database_url: str | None, options: BenchOptions, worker: int,
             shared: bool, phase: str, writer: str, conn: Connection) -> None:
    """Subscribe; in ``drain``, go away until the backlog is queued, then come back and drain it.

    Runs until every message is processed, ``seconds`` passed, or (several workers) nothing arrived
    for two seconds after the first; reports over ``conn``. Memory is this process's plus its
    writer process's.
    """
    from .ingest_bench_consumers import make_consumer, peak_rss_kb
    from .procstat import cpu_s

    consumer = make_consumer(kind, port=port, workdir=Path(workdir), database_url=database_url,
                             batch_size=options.batch_size, worker=worker, shared=shared,
                             writer=writer)
    consumer.connect()
    if phase == "drain":
        consumer.disconnect()
        consumer.prepare()  # a writer process is started before the clock, as a running service has one
    conn.send("ready")
    conn.recv()  # the backlog is queued (drain) or the publisher is starting (paced)
    started_at = time.time()
    cpu_at_start = (cpu_s(), sum(cpu_s(pid) for pid in consumer.helper_pids()))
    if phase == "drain":
        consumer.connect()
    deadline = started_at + options.seconds
    last_change, seen = time.time(), 0
    samples, next_sample = [], started_at
    held = 0  # the most messages the consumer held at once since the last sample
    while consumer.processed < options.messages and time.time() < deadline:
        time.sleep(0.01)
        held = max(held, consumer.outstanding())
        if time.time() >= next_sample:
            samples.append((*_rss_sample(consumer, started_at), held))
            next_sample, held = next_sample + 5.0, 0
        if consumer.processed != seen:
            last_change, seen = time.time(), consumer.processed
        elif shared and seen and time.time() - last_change > 2.0:
            break
    cpu = (cpu_s() - cpu_at_start[0], sum(cpu_s(pid) for pid in consumer.helper_pids()) - cpu_at_start[1])
    conn.send({"processed": consumer.processed, "started_at": started_at, "cpu_s": cpu,
               "last_at": consumer.last_at or time.time(), "latency_ms": consumer.latency_ms.counts(),
               "peak_rss_kb": peak_rss_kb(consumer.helper_pids()),
               "rss_samples": [*samples, (*_rss_sample(consumer, started_at), held)]})
    try:  # connected until the server's CPU is read (a backend that ended is not counted), or the end
        conn.recv()
    except (EOFError, OSError):
        pass
    conn.close()
    os._exit(0)  # no orderly drain: what is still queued is not part of the measurement


def _rss_sample(consumer: Any, started_at: float) -> tuple[float, float, float]:
    """(seconds in, RSS of the consumer with its writer process, RSS of the consumer alone) in MB."""
    from .ingest_bench_consumers import rss_mb

    return time.time() - started_at, rss_mb(consumer.helper_pids()), rss_mb()


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
