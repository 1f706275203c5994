"""The write path alone (benchmark, not a test): ``IngestStore.write_batch`` msgs per CPU second.

No broker, no paho: the messages of ``foresight bench ingest`` (round-robin over ``--devices`` ids,
the same ~270-byte ``encode_telemetry`` payloads) are built first, then written in batches of
``--batch`` to a fresh SQLite (or ``--database-url``) database, the way the ingester's writer
thread writes them. Prints wall and CPU msgs/s; CPU time is the figure to compare, since it moves
least with what else the machine is doing. ``--rounds`` repeats on a fresh database each time.
``--profile N`` prints the N costliest functions (cProfile, cumulative) of one more round.

``--postgres`` writes to a throwaway PostgreSQL cluster instead (a fresh database per round) and
also prints the server's CPU seconds per round (its postmaster and children, from ``/proc``): on PostgreSQL
much of a message's cost is the server's.

``--soak-seconds S --rate R`` instead writes for S seconds at R msgs/s (the fleet reporting on,
one minute of event time per round of devices) and prints the process's RSS every 15 s: the
write path's own memory over time, apart from paho, the broker and the queue.

    .venv/bin/python benchmarks/ingest_store.py [--devices 10000 --messages 40000 --batch 500 --rounds 3]
    .venv/bin/python benchmarks/ingest_store.py --postgres --messages 20000
    .venv/bin/python benchmarks/ingest_store.py --soak-seconds 600 --rate 2000
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import json
import os
import pstats
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from foresight.postgres_cluster import PostgresCluster
from ingest.clock import ManualClock
from ingest.contract import PROFILES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import Inbound, IngestStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def messages(*, devices: int, count: int, seed: int = 1) -> list[Inbound]:
    """``count`` telemetry messages round-robin over ``devices`` ids, one minute apart per round."""
    stream = message_stream(devices=devices, seed=seed)
    return [next(stream) for _ in range(count)]


def message_stream(*, devices: int, seed: int = 1) -> Iterator[Inbound]:
    """``messages`` without an end."""
    rng = random.Random(seed)
    kinds = sorted(PROFILES)
    fleet = []
    for i in range(devices):
        profile = PROFILES[kinds[i % len(kinds)]]
        base = {m.name: m.low + (m.high - m.low) * rng.uniform(0.2, 0.6) for m in profile.metrics}
        fleet.append((f"bench-{i:06d}", profile.kind, base))
    for n in itertools.count():
        device_id, kind, base = fleet[n % devices]
        ts = START + timedelta(minutes=n // devices)
        metrics = {k: round(v * rng.uniform(0.98, 1.02), 2) for k, v in base.items()}
        t = Telemetry(device_id=device_id, kind=kind, model="BENCH-1", firmware="1.0.0", seq=n // devices,
                      ts=ts, metrics=metrics)
        yield Inbound(telemetry_topic(device_id), encode_telemetry(t), ts)


def soak(*, devices: int, batch: int, seconds: float, rate: float, workdir: Path) -> list[dict[str, float]]:
    """Write ``rate`` msgs/s for ``seconds``; the RSS every 15 s."""
    engine = make_engine(f"sqlite:///{workdir / 'soak.db'}")
    create_schema(engine)
    stream = message_stream(devices=devices)
    store = IngestStore(engine, clock=ManualClock(START))
    samples: list[dict[str, float]] = []
    written, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if elapsed >= 15 * len(samples):
            samples.append({"s": round(elapsed), "messages": written, "rss_mb": round(_rss_mb(), 1)})
            print(f"{samples[-1]['s']:>5} s  {written:>9,} messages  RSS {samples[-1]['rss_mb']:.1f} MB", flush=True)
        msgs = list(itertools.islice(stream, batch))
        store.write_batch(msgs, now=msgs[-1].received_at)
        written += len(msgs)
        time.sleep(max(written / rate - (time.monotonic() - started), 0))
    engine.dispose()
    return samples


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def one_round(batch_msgs: list[Inbound], *, url: str | None, batch: int, workdir: Path,
              profiler: cProfile.Profile | None = None, cluster: PostgresCluster | None = None) -> dict[str, float]:
    """One fresh database's figures; with ``cluster`` (the server written to) its CPU seconds too."""
    engine = make_engine(url or f"sqlite:///{workdir / f'store-{time.monotonic_ns()}.db'}")
    create_schema(engine)
    clock = ManualClock(batch_msgs[-1].received_at)
    store = IngestStore(engine, clock=clock)
    server = None if cluster is None else cluster.cpu_ticks()
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    accepted = 0
    for at in range(0, len(batch_msgs), batch):
        accepted += store.write_batch(batch_msgs[at:at + batch]).accepted
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_s = None if cluster is None else cluster.cpu_s_since(server or {})  # before its backend exits
    engine.dispose()
    if accepted != len(batch_msgs):
        raise SystemExit(f"only {accepted} of {len(batch_msgs)} accepted")
    figures = {"wall_msgs_per_s": round(len(batch_msgs) / wall), "cpu_msgs_per_s": round(len(batch_msgs) / cpu)}
    if server_s is not None:
        figures |= {"server_cpu_s": round(server_s, 2), "client_cpu_s": round(cpu, 2),
                    "total_cpu_us_per_msg": round((cpu + server_s) / len(batch_msgs) * 1e6)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per round in a temp dir")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL, a fresh database per round")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--soak-seconds", type=float, default=0)
    parser.add_argument("--rate", type=float, default=2000, help="msgs/s of the soak")
    args = parser.parse_args()
    if args.soak_seconds:
        with tempfile.TemporaryDirectory() as tmp:
            samples = soak(devices=args.devices, batch=args.batch, seconds=args.soak_seconds, rate=args.rate,
                           workdir=Path(tmp))
        if args.json:
            args.json.write_text(json.dumps({"soak": samples}, indent=2))
        return
    msgs = messages(devices=args.devices, count=args.messages)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls: Iterator[str | None] = itertools.repeat(args.database_url)
        cluster = None
        if args.postgres:
            cluster = stack.enter_context(contextlib.closing(PostgresCluster.start_new()))
            urls = (cluster.create_database(f"store_{i}") for i in itertools.count(1))
        rounds = [one_round(msgs, url=next(urls), batch=args.batch, workdir=Path(tmp), cluster=cluster)
                  for _ in range(args.rounds)]
        for i, r in enumerate(rounds, 1):
            server = (f"; client {r['client_cpu_s']} CPU s + server {r['server_cpu_s']} CPU s = "
                      f"{r['total_cpu_us_per_msg']} µs per message" if "server_cpu_s" in r else "")
            print(f"round {i}: {r['cpu_msgs_per_s']:,} msgs per CPU second, {r['wall_msgs_per_s']:,} msgs/s wall{server}")
        best = {k: (min if k.endswith(("_cpu_s", "_per_msg")) else max)(r[k] for r in rounds) for k in rounds[0]}
        print(f"best: {best['cpu_msgs_per_s']:,} msgs per CPU second ({best['wall_msgs_per_s']:,} wall), "
              f"{args.messages:,} messages of {args.devices:,} devices in batches of {args.batch}")
        if args.json:
            args.json.write_text(json.dumps({"rounds": rounds, "best": best}, indent=2))
        if args.profile:
            profiler = cProfile.Profile()
            one_round(msgs, url=next(urls), batch=args.batch, workdir=Path(tmp), profiler=profiler)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
