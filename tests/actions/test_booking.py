"""Slot finding, pure and under concurrent booking."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from actions import ActionService, DecisionAction, Slot, Technician, find_slot, seed_technicians
from actions.db import BookingRow
from ingest.clock import ManualClock

from .helpers import HVAC_NORTH, HVAC_SOUTH, RICE_NORTH, add_device, near

MON = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
TECHS = [HVAC_NORTH, HVAC_SOUTH, RICE_NORTH]
ALSO_NORTH = Technician(technician_id="t-aaron", name="Aaron", skills=frozenset({"hvac", "rice_cooker"}),
                        service_areas=frozenset({"north", "east"}))


def slot(*, techs: list[Technician] = TECHS, busy: dict[str, list[tuple[datetime, datetime]]] | None = None,
         area: str = "north", skill: str = "hvac", earliest: datetime = MON + 6.5 * H,
         deadline: datetime = MON + 30 * 24 * H, duration: timedelta = 2 * H) -> Slot | None:
    return find_slot(technicians=techs, busy=busy or {}, service_area=area, skill=skill,
                     earliest=earliest, deadline=deadline, duration=duration)


def test_earliest_on_the_hour_in_working_hours_with_skill_and_area() -> None:
    assert slot() == Slot(technician_id="t-anna", start=MON + 8 * H, end=MON + 10 * H)
    assert slot(area="south").technician_id == "t-bo"  # type: ignore[union-attr]
    assert slot(skill="rice_cooker").technician_id == "t-cy"  # type: ignore[union-attr]
    assert slot(earliest=MON + 10.25 * H).start == MON + 11 * H  # type: ignore[union-attr]


def test_ties_go_to_the_lowest_technician_id() -> None:
    assert slot(techs=[HVAC_NORTH, ALSO_NORTH]).technician_id == "t-aaron"  # type: ignore[union-attr]


def test_respects_existing_bookings() -> None:
    busy = {"t-anna": [(MON + 8 * H, MON + 10 * H), (MON + 11 * H, MON + 12 * H)]}
    # 10:00-12:00 would overlap the 11:00 visit; 12:00 is the first free two hours.
    assert slot(busy=busy) == Slot(technician_id="t-anna", start=MON + 12 * H, end=MON + 14 * H)
    # Another qualified technician free at 08:00 wins over waiting.
    assert slot(techs=[HVAC_NORTH, ALSO_NORTH], busy={"t-aaron": busy["t-anna"]}).technician_id == "t-anna"  # type: ignore[union-attr]


def test_skips_evenings_and_weekends() -> None:
    assert slot(earliest=MON + 15.5 * H).start == MON + 24 * H + 8 * H  # type: ignore[union-attr]
    saturday = MON + 5 * 24 * H
    assert slot(earliest=saturday + 10 * H).start == MON + 7 * 24 * H + 8 * H  # type: ignore[union-attr]


def test_none_before_the_deadline() -> None:
    assert slot(deadline=MON + 9 * H) is None
    assert slot(deadline=MON + 10 * H) == Slot(technician_id="t-anna", start=MON + 8 * H, end=MON + 10 * H)
    assert slot(area="west") is None
    assert slot(skill="plumbing") is None
    assert slot(duration=10 * H) is None  # longer than a working day


def test_technician_validates_its_week() -> None:
    with pytest.raises(ValueError):
        Technician(technician_id="x", name="X", skills=frozenset(), service_areas=frozenset(),
                   working_hours=(17, 8))
    with pytest.raises(ValueError):
        Technician(technician_id="x", name="X", skills=frozenset(), service_areas=frozenset(),
                   working_days=frozenset({7}))


def test_concurrent_handles_never_double_book(engine: Engine) -> None:
    """Four ACs compete for one technician with two free slots before their deadline."""
    seed_technicians(engine, [HVAC_NORTH])
    devices = [f"ac-{i}" for i in range(4)]
    for device_id in devices:
        add_device(engine, device_id, "air_conditioner", household_id=f"h-{device_id}")
    clock = ManualClock(MON + 6 * H)
    service = ActionService(engine, clock=clock, booking_lead=H)
    # earliest 07:00 -> slots 08-10 and 10-12 end before the 12:00 deadline (ttf_low 6 h).
    barrier = threading.Barrier(len(devices))
    outcomes: dict[str, object] = {}
    errors: list[BaseException] = []

    def run(device_id: str) -> None:
        try:
            barrier.wait()
            [outcomes[device_id]] = service.handle([near(
                device_id=device_id, kind="air_conditioner", mode="filter_clogging",
                ts=clock.now(), ttf_low_h=6.0, ttf_h=20.0)])
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    with sessionmaker(engine)() as s:
        bookings = list(s.scalars(select(BookingRow).order_by(BookingRow.start_at)))
    assert [(b.start_at, b.end_at) for b in bookings] == [(MON + 8 * H, MON + 10 * H),
                                                         (MON + 10 * H, MON + 12 * H)]
    booked = [o for o in outcomes.values() if o.booking_id is not None]  # type: ignore[attr-defined]
    ticketed = [o for o in outcomes.values() if o.ticket_id is not None]  # type: ignore[attr-defined]
    assert len(booked) == 2 and len(ticketed) == 2
    assert all(o.decision.action is DecisionAction.BOOK_TECHNICIAN for o in outcomes.values())  # type: ignore[attr-defined]
    assert {t.category for t in service.open_tickets()} == {"no_slot"}
