"""Storage per device per month (benchmark, not a test): raw readings kept forever vs retention + daily roll-ups.

Writes months of hourly telemetry for a small fleet through ``IngestStore.write_batch`` (the real
write path: readings, features history, online rows), once keeping everything and once with the
retention roll-up run daily (``--retention-days``, default 30). Prints, side by side, the SQLite
database size (after VACUUM) per device, and the growth per device per month over the last months:
with retention that growth is the daily aggregates only, so it stays bounded.

    .venv/bin/python benchmarks/ingest_retention.py [--devices 20 --months 4 --retention-days 30]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from ingest.clock import ManualClock
from ingest.contract import PROFILES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import Inbound, IngestStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def _size_mb(engine, path: Path) -> float:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        conn.exec_driver_sql("VACUUM")
    return path.stat().st_size / 1e6


def run(*, devices: int, months: int, retention_days: int | None, workdir: Path) -> dict[str, float]:
    """Simulate ``months`` of telemetry; return sizes (MB) at each month end."""
    path = workdir / f"retention-{retention_days}.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    clock = ManualClock(START)
    store = IngestStore(engine, clock=clock)
    rng = random.Random(1)
    kinds = sorted(PROFILES)
    fleet = []
    for i in range(devices):
        profile = PROFILES[kinds[i % len(kinds)]]
        base = {m.name: m.low + (m.high - m.low) * rng.uniform(0.2, 0.6) for m in profile.metrics}
        fleet.append((f"dev-{i:04d}", profile, base))
    sizes: dict[str, float] = {}
    seq = 0
    for day in range(months * 30):
        batch = []
        for hour in range(24):
            ts = START + timedelta(days=day, hours=hour)
            for device_id, profile, base in fleet:
                metrics = {k: round(v * rng.uniform(0.97, 1.03), 2) for k, v in base.items()}
                t = Telemetry(device_id=device_id, kind=profile.kind, model="M", firmware="1", seq=seq, ts=ts,
                              metrics=metrics)
                batch.append(Inbound(telemetry_topic(device_id), encode_telemetry(t), ts))
            seq += 1
        clock.set(START + timedelta(days=day + 1))
        store.write_batch(batch)
        if retention_days is not None:
            store.roll_up(retention=timedelta(days=retention_days))
        if (day + 1) % 30 == 0:
            sizes[f"month_{(day + 1) // 30}"] = round(_size_mb(engine, path), 3)
    engine.dispose()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--retention-days", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="foresight-retention-"))
    try:
        figures = {}
        for label, retention in (("keep_everything", None), (f"retention_{args.retention_days}d", args.retention_days)):
            sizes = run(devices=args.devices, months=args.months, retention_days=retention, workdir=workdir)
            last, before = sizes[f"month_{args.months}"], sizes[f"month_{args.months - 1}"]
            figures[label] = {"db_mb_by_month": sizes,
                              "kb_per_device": round(last * 1000 / args.devices, 1),
                              "kb_per_device_per_month_last_month": round((last - before) * 1000 / args.devices, 1)}
            print(f"{label:>18}: {last:.2f} MB for {args.devices} devices after {args.months} months = "
                  f"{figures[label]['kb_per_device']:,.0f} kB/device; growth in the last month "
                  f"{figures[label]['kb_per_device_per_month_last_month']:,.1f} kB/device/month")
        figures["options"] = vars(args) | {"json": str(args.json) if args.json else None,
                                           "readings_per_device_per_day": 24}
        text_out = json.dumps(figures, indent=2)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text_out + "\n")
        print(text_out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
