"""People-side benchmark (not a test): the live-stream poll and booking placement, each against a baseline.

    .venv/bin/python benchmarks/people_feed_booking.py [--households 2000] [--per-household 25]
                                                      [--bookings 300] [--polls 500]

1. **Feed poll.** A web client streaming a household's notifications polls every second. Prints
   p50/p99 of ``feed_after(household, cursor)`` at the head of the feed (nothing new: the common
   case) next to the baseline a stream without a cursor would need: the household's whole list
   (``notifications_for_household``) each poll. SQLite, ``households × per_household`` notifications.
2. **Booking placement.** ``book_technician`` as the calendar fills (one technician pool, 2 h
   visits), first 10 against the last 10 — the cost of reading the busy hours grows with the
   bookings in the window; with the ``booking_slots`` claim included.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import sessionmaker

import actions.db  # noqa: F401  (all tables on the metadata)
from actions import ActionService, Technician, seed_technicians
from actions.db import FeedRow, NotificationRow
from ingest.clock import ManualClock
from ingest.db import DeviceRow, create_schema, make_engine

START = datetime(2026, 3, 2, tzinfo=UTC)


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def feed(engine_dir: Path, *, households: int, per_household: int, polls: int) -> None:
    engine = make_engine(f"sqlite:///{engine_dir / 'feed.db'}")
    create_schema(engine)
    rows = [(n, f"h-{n % households}", START + timedelta(minutes=n)) for n in range(1, households * per_household + 1)]
    with sessionmaker(engine).begin() as s:
        s.add_all(NotificationRow(id=n, household_id=h, device_id=f"d-{h}", mode="scale_buildup",
                                  title="Rice cooker: scale build-up expected", body="x" * 300,
                                  created_at=t, status="new", delivered_at=t) for n, h, t in rows)
        s.flush()
        s.add_all(FeedRow(household_id=h, notification_id=n, event="created", at=t) for n, h, t in rows)
    service = ActionService(engine, clock=ManualClock(START))
    target = f"h-{households // 2}"
    cursor = service.feed_after(target, 0, limit=10_000)[-1].feed_id
    head, full = [], []
    for _ in range(polls):
        t0 = time.perf_counter()
        assert service.feed_after(target, cursor) == []
        head.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert len(service.notifications_for_household(target)) == per_household
        full.append(time.perf_counter() - t0)
    print(f"feed poll over {households * per_household:,} notifications ({households:,} households, SQLite):")
    print(f"  feed_after(cursor), nothing new          {_ms(head)}")
    print(f"  baseline: whole household list each poll {_ms(full)}")
    engine.dispose()


def booking(engine_dir: Path, *, bookings: int) -> None:
    engine = make_engine(f"sqlite:///{engine_dir / 'booking.db'}")
    create_schema(engine)
    techs = [Technician(technician_id=f"t-{i:02d}", name=f"T{i}", skills=frozenset({"hvac"}),
                        service_areas=frozenset({"north"}), working_days=frozenset(range(7)),
                        max_jobs_per_day=4) for i in range(10)]
    seed_technicians(engine, techs)
    with sessionmaker(engine).begin() as s:
        for i in range(bookings):
            s.add(DeviceRow(device_id=f"ac-{i}", kind="air_conditioner", model="AC-2500", firmware="1",
                            household_id=f"h-{i}", service_area="north", status="online"))
    service = ActionService(engine, clock=ManualClock(START), booking_window=timedelta(days=60))
    times = []
    for i in range(bookings):
        t0 = time.perf_counter()
        service.book_technician(device_id=f"ac-{i}")
        times.append(time.perf_counter() - t0)
    print(f"booking placement, 10 technicians x 4 visits/day, {bookings} bookings (SQLite):")
    print(f"  first 10 bookings  {_ms(times[:10])}")
    print(f"  last 10 bookings   {_ms(times[-10:])}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--per-household", type=int, default=25)
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--bookings", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foresight-bench-people-") as d:
        feed(Path(d), households=args.households, per_household=args.per_household, polls=args.polls)
        booking(Path(d), bookings=args.bookings)


if __name__ == "__main__":
    main()
