"""The write path alone (benchmark, not a test): ``IngestStore.write_batch`` msgs per CPU second.

No broker, no paho: the messages of ``foresight bench ingest`` (round-robin over ``--devices`` ids,
the same ~270-byte ``encode_telemetry`` payloads) are built first, then written in batches of
``--batch`` to a fresh SQLite (or ``--database-url``) database, the way the ingester's writer
thread writes them. Prints wall and CPU msgs/s; CPU time is the figure to compare, since it moves
least with what else the machine is doing. ``--rounds`` repeats on a fresh database each time.
``--profile N`` prints the N costliest functions (cProfile, cumulative) of one more round.

    .venv/bin/python benchmarks/ingest_store.py [--devices 10000 --messages 40000 --batch 500 --rounds 3]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.clock import ManualClock
from ingest.contract import PROFILES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import Inbound, IngestStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def messages(*, devices: int, count: int, seed: int = 1) -> list[Inbound]:
    """``count`` telemetry messages round-robin over ``devices`` ids, one minute apart per round."""
    rng = random.Random(seed)
    kinds = sorted(PROFILES)
    fleet = []
    for i in range(devices):
        profile = PROFILES[kinds[i % len(kinds)]]
        base = {m.name: m.low + (m.high - m.low) * rng.uniform(0.2, 0.6) for m in profile.metrics}
        fleet.append((f"bench-{i:06d}", profile.kind, base))
    out = []
    for n in range(count):
        device_id, kind, base = fleet[n % devices]
        ts = START + timedelta(minutes=n // devices)
        metrics = {k: round(v * rng.uniform(0.98, 1.02), 2) for k, v in base.items()}
        t = Telemetry(device_id=device_id, kind=kind, model="BENCH-1", firmware="1.0.0", seq=n // devices,
                      ts=ts, metrics=metrics)
        out.append(Inbound(telemetry_topic(device_id), encode_telemetry(t), ts))
    return out


def one_round(batch_msgs: list[Inbound], *, url: str | None, batch: int, workdir: Path,
              profiler: cProfile.Profile | None = None) -> dict[str, float]:
    engine = make_engine(url or f"sqlite:///{workdir / f'store-{time.monotonic_ns()}.db'}")
    create_schema(engine)
    clock = ManualClock(batch_msgs[-1].received_at)
    store = IngestStore(engine, clock=clock)
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    accepted = 0
    for at in range(0, len(batch_msgs), batch):
        accepted += store.write_batch(batch_msgs[at:at + batch]).accepted
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.dispose()
    if accepted != len(batch_msgs):
        raise SystemExit(f"only {accepted} of {len(batch_msgs)} accepted")
    return {"wall_msgs_per_s": round(len(batch_msgs) / wall), "cpu_msgs_per_s": round(len(batch_msgs) / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per round in a temp dir")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    msgs = messages(devices=args.devices, count=args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        rounds = [one_round(msgs, url=args.database_url, batch=args.batch, workdir=Path(tmp))
                  for _ in range(args.rounds)]
        for i, r in enumerate(rounds, 1):
            print(f"round {i}: {r['cpu_msgs_per_s']:,} msgs per CPU second, {r['wall_msgs_per_s']:,} msgs/s wall")
        best = {k: max(r[k] for r in rounds) for k in rounds[0]}
        print(f"best: {best['cpu_msgs_per_s']:,} msgs per CPU second ({best['wall_msgs_per_s']:,} wall), "
              f"{args.messages:,} messages of {args.devices:,} devices in batches of {args.batch}")
        if args.json:
            args.json.write_text(json.dumps({"rounds": rounds, "best": best}, indent=2))
        if args.profile:
            profiler = cProfile.Profile()
            one_round(msgs, url=args.database_url, batch=args.batch, workdir=Path(tmp), profiler=profiler)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
