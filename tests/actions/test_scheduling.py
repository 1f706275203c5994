"""Technician scheduling on the database: fit, capacity, availability, no double booking, moves, outcomes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from actions import (
    ActionService,
    AvailabilityWindow,
    Booking,
    HouseholdPrefs,
    InvalidState,
    NoSlot,
    SlotTaken,
    Technician,
    find_slot,
    seed_technicians,
)
from actions import scheduling
from actions.booking import availability_intervals
from actions.db import BookingRow, BookingSlotRow
from ingest.clock import ManualClock

from .helpers import HVAC_NORTH, add_device, near, set_features

MON = datetime(2026, 3, 2, tzinfo=UTC)  # the fixtures' clock: Monday 00:00 UTC
H = timedelta(hours=1)
AC = dict(device_id="ac-1", kind="air_conditioner", mode="filter_clogging")


# -- pure: capacity and availability -------------------------------------------------------------

def test_capacity_per_day_moves_the_visit_to_the_next_day() -> None:
    one_a_day = Technician(technician_id="t-1", name="One", skills=frozenset({"hvac"}),
                           service_areas=frozenset({"north"}), max_jobs_per_day=1)
    kwargs: dict[str, Any] = dict(technicians=[one_a_day], busy={}, service_area="north", skill="hvac",
                                  earliest=MON, deadline=MON + 5 * 24 * H, duration=2 * H)
    assert find_slot(**kwargs).start == MON + 8 * H  # type: ignore[union-attr]
    full = find_slot(**kwargs, jobs_per_day={("t-1", MON.date()): 1})
    assert full is not None and full.start == MON + 24 * H + 8 * H


@pytest.mark.parametrize(("windows", "zone", "start"), [
    # Monday 18:00-21:00 in Shanghai = 10:00-13:00 UTC
    ([(frozenset({0}), time(18), time(21))], "Asia/Shanghai", MON + 10 * H),
    # only Wednesdays 09:00-12:00 UTC
    ([(frozenset({2}), time(9), time(12))], "UTC", MON + 2 * 24 * H + 9 * H),
    # a window too short for a 2 h visit on Monday, a long one on Tuesday
    ([(frozenset({0}), time(8), time(9)), (frozenset({1}), time(13), time(17))], "UTC", MON + 24 * H + 13 * H),
])
def test_the_visit_fits_the_homeowners_availability(windows: list[Any], zone: str, start: datetime) -> None:
    intervals = availability_intervals(windows, timezone=zone, start=MON, end=MON + 7 * 24 * H)
    found = find_slot(technicians=[HVAC_NORTH], busy={}, service_area="north", skill="hvac", earliest=MON,
                      deadline=MON + 7 * 24 * H, duration=2 * H, availability=intervals)
    assert found is not None and found.start == start


def test_no_window_before_the_deadline_means_no_slot() -> None:
    intervals = availability_intervals([(frozenset({5}), time(9), time(12))], timezone="UTC",
                                       start=MON, end=MON + 3 * 24 * H)  # Saturdays only
    assert find_slot(technicians=[HVAC_NORTH], busy={}, service_area="north", skill="hvac", earliest=MON,
                     deadline=MON + 3 * 24 * H, duration=2 * H, availability=intervals) is None


# -- through the service ----------------------------------------------------------------------------

def test_booking_respects_availability_and_before_the_predicted_failure(service: ActionService,
                                                                        clock: ManualClock) -> None:
    service.upsert_household(HouseholdPrefs(household_id="h-2", timezone="Asia/Shanghai", availability=(
        AvailabilityWindow(weekdays=frozenset({0, 1}), start="18:00", end="21:00"),)))
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    booking = service.booking(outcome.booking_id)  # type: ignore[arg-type]
    assert booking.start == MON + 10 * H and booking.end == MON + 12 * H  # 18:00-20:00 in Shanghai
    assert outcome.decision.due_by is not None and booking.end <= outcome.decision.due_by
    assert booking.reason and "filter_clogging" in booking.reason  # the technician's starting diagnosis


def test_capacity_is_read_from_the_database(service: ActionService, clock: ManualClock, engine: Engine) -> None:
    seed_technicians(engine, [Technician(technician_id="t-anna", name="Anna", skills=frozenset({"hvac"}),
                                         service_areas=frozenset({"north"}), max_jobs_per_day=1)])
    add_device(engine, "ac-2", "air_conditioner", household_id="h-3")
    first = service.book_technician(device_id="ac-1")
    second = service.book_technician(device_id="ac-2")
    assert first.start == MON + 8 * H and second.start == MON + 24 * H + 8 * H


def test_the_database_refuses_a_second_claim_on_an_hour(service: ActionService, engine: Engine) -> None:
    booking = service.book_technician(device_id="ac-1")
    with pytest.raises(IntegrityError):
        with sessionmaker(engine).begin() as s:
            s.add(BookingSlotRow(technician_id="t-anna", slot_start=booking.start, booking_id=booking.booking_id))


def _race(n: int, call: Callable[[int], Booking], monkeypatch: pytest.MonkeyPatch) -> list[Booking | Exception]:
    """Run ``call(i)`` in ``n`` threads that all find their slot before any of them writes."""
    barrier = threading.Barrier(n, timeout=20)
    real_find = scheduling._find

    def find_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = real_find(*args, **kwargs)
        barrier.wait()  # everybody has seen the slot free; now the database decides
        return found

    monkeypatch.setattr(scheduling, "_find", find_then_wait)
    results: list[Booking | Exception] = [RuntimeError("not run")] * n

    def run(i: int) -> None:
        try:
            results[i] = call(i)
        except Exception as err:  # noqa: BLE001  (the loser's error is the result)
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.parametrize("second_start", [MON + 10 * H, MON + 11 * H], ids=["same-hour", "overlapping"])
def test_two_requests_race_for_one_slot_and_one_wins(service: ActionService, engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch, second_start: datetime) -> None:
    add_device(engine, "ac-2", "air_conditioner", household_id="h-3")
    starts = [MON + 10 * H, second_start]
    results = _race(2, lambda i: service.book_technician(device_id=("ac-1", "ac-2")[i], start=starts[i]),
                    monkeypatch)
    won = [r for r in results if isinstance(r, Booking)]
    lost = [r for r in results if not isinstance(r, Booking)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], SlotTaken), results
    with sessionmaker(engine)() as s:
        assert s.scalar(select(func.count()).select_from(BookingSlotRow)) == 2  # the winner's two hours
    assert service.bookings_for_technician("t-anna") == [won[0]]


def test_concurrent_automatic_bookings_get_separate_slots(service: ActionService, engine: Engine) -> None:
    for i in range(2, 5):
        add_device(engine, f"ac-{i}", "air_conditioner", household_id=f"h-{i + 10}")
    results: list[Booking] = []
    threads = [threading.Thread(target=lambda d=d: results.append(service.book_technician(device_id=d)))
               for d in ("ac-1", "ac-2", "ac-3", "ac-4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(b.start for b in results) == [MON + 8 * H, MON + 10 * H, MON + 12 * H, MON + 14 * H]


def test_reschedule_and_cancel_free_the_slot(service: ActionService, clock: ManualClock, engine: Engine) -> None:
    add_device(engine, "ac-2", "air_conditioner", household_id="h-3")
    first = service.book_technician(device_id="ac-1")
    assert first.start == MON + 8 * H
    moved = service.reschedule_booking(first.booking_id)
    assert moved.booking_id == first.booking_id and moved.start == MON + 10 * H
    other = service.book_technician(device_id="ac-2")
    assert other.start == MON + 8 * H  # the hour the move freed
    with pytest.raises(SlotTaken):
        service.reschedule_booking(first.booking_id, start=MON + 8 * H)
    exact = service.reschedule_booking(first.booking_id, start=MON + 24 * H + 14 * H)
    assert exact.start == MON + 24 * H + 14 * H
    notes = [n.template for n in service.notifications_for_household("h-2")]
    assert notes.count("booking_rescheduled") == 2

    cancelled = service.cancel_booking(first.booking_id, reason="away that week", by="homeowner")
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "homeowner: away that week"
    again = service.book_technician(device_id="ac-1", start=MON + 24 * H + 14 * H)
    assert again.start == exact.start
    with pytest.raises(InvalidState):
        service.cancel_booking(first.booking_id, reason="twice")
    with pytest.raises(ValueError):
        service.cancel_booking(again.booking_id, reason=" ")
    with pytest.raises(ValueError, match="by must be"):
        service.cancel_booking(again.booking_id, reason="x", by="robot")


def test_cancelling_a_needed_visit_leaves_work_for_a_person(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    service.cancel_booking(outcome.booking_id, reason="technician ill", by="technician")  # type: ignore[arg-type]
    [ticket] = service.open_tickets()
    assert ticket.category == "booking_cancelled" and ticket.case_id == outcome.case_id
    assert "booking_cancelled" in [n.template for n in service.notifications_for_household("h-2")]


def test_completion_records_outcome_and_parts_as_a_label(service: ActionService, clock: ManualClock,
                                                         engine: Engine) -> None:
    set_features(engine, "ac-1", "air_conditioner", {"filter_dp_pa__last": 240.0, "fan_current_a__last": 3.1},
                 ts=clock.now())
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    done = service.complete_booking(outcome.booking_id, "filter blocked with dust", outcome="part_replaced",  # type: ignore[arg-type]
                                    parts=["F-200 filter", " "])
    assert (done.status, done.outcome, done.parts) == ("completed", "part_replaced", ("F-200 filter",))
    [label] = service.labels(device_id="ac-1")
    assert (label.source, label.outcome, label.mode, label.parts, label.booking_id) == (
        "technician", "part_replaced", "filter_clogging", ("F-200 filter",), done.booking_id)
    assert label.features == {"filter_dp_pa__last": 240.0, "fan_current_a__last": 3.1}
    with pytest.raises(InvalidState):
        service.complete_booking(done.booking_id, "again")
    with pytest.raises(ValueError, match="unknown outcome"):
        service.complete_booking(done.booking_id, "x", outcome="fixed")


def test_reminders_and_overdue_visits(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now(), **AC)])  # visit Monday 08:00-10:00
    assert service.send_booking_reminders() == 1
    assert service.send_booking_reminders() == 0  # once
    reminder = [n for n in service.notifications_for_household("h-2") if n.template == "booking_reminder"]
    assert len(reminder) == 1 and "Anna" in reminder[0].body
    clock.advance(11 * H)  # 11:00: the visit ended an hour ago, within the 2 h grace
    assert service.mark_overdue_bookings() == 0
    clock.advance(H)
    assert service.mark_overdue_bookings() == 1
    assert service.mark_overdue_bookings() == 0
    assert service.booking(outcome.booking_id).status == "overdue"  # type: ignore[arg-type]
    [ticket] = [t for t in service.open_tickets() if t.category == "overdue_booking"]
    assert ticket.priority == "high" and ticket.context["booking"]["technician_id"] == "t-anna"
    # a late report still counts
    assert service.complete_booking(outcome.booking_id, "done late", outcome="confirmed_fault").status == "completed"  # type: ignore[arg-type]


def test_technician_jobs_carry_the_diagnosis(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    [job] = service.technician_jobs("t-anna", day=MON.date())
    assert job.booking.booking_id == outcome.booking_id and job.device["device_id"] == "ac-1"
    assert "filter_clogging" in job.diagnosis and job.prediction is not None and job.prediction["p_fail"] == 0.8
    assert service.technician_jobs("t-anna", day=(MON + 24 * H).date()) == []
    assert service.technician_jobs("t-bo") == []


def test_no_technician_means_a_failed_booking_ticket(service: ActionService, engine: Engine) -> None:
    add_device(engine, "ac-w", "air_conditioner", household_id="h-9", service_area="west")
    with pytest.raises(NoSlot) as err:
        service.book_technician(device_id="ac-w")
    ticket = service.ticket(err.value.ticket_id)  # type: ignore[arg-type]
    assert ticket.category == "failed_booking" and ticket.household_id == "h-9"


def test_a_finished_visit_frees_its_hours_for_the_next_booking(service: ActionService, engine: Engine) -> None:
    add_device(engine, "ac-2", "air_conditioner", household_id="h-3")
    first = service.book_technician(device_id="ac-1")
    service.complete_booking(first.booking_id, "cleaned the filter", outcome="confirmed_fault")
    second = service.book_technician(device_id="ac-2")  # was an IntegrityError on the old claim
    assert (second.technician_id, second.start) == (first.technician_id, first.start)
    with service._sessions.begin() as s:  # noqa: SLF001
        assert {r.booking_id for r in s.scalars(select(BookingSlotRow))} == {second.booking_id}


def test_a_claimed_hour_is_busy_whatever_the_bookings_status_says(service: ActionService, engine: Engine) -> None:
    """A claim left behind (e.g. by a race the lock now prevents) costs an hour, not a failed booking."""
    add_device(engine, "ac-2", "air_conditioner", household_id="h-3")
    first = service.book_technician(device_id="ac-1")
    with sessionmaker(engine).begin() as s:  # the booking says cancelled, its claims stayed
        s.execute(update(BookingRow).where(BookingRow.id == first.booking_id).values(status="cancelled"))
    second = service.book_technician(device_id="ac-2")
    assert second.start >= first.end  # was an IntegrityError, twice, then a 500


def test_an_explicit_move_stays_inside_the_booking_window(service: ActionService, clock: ManualClock) -> None:
    booked = service.book_technician(device_id="ac-1")
    with pytest.raises(ValueError, match="can move to between"):
        service.reschedule_booking(booked.booking_id, start=clock.now() - 48 * H)  # into the past
    with pytest.raises(ValueError, match="can move to between"):
        service.reschedule_booking(booked.booking_id, start=clock.now() + 90 * 24 * H)  # past the window
    assert service.booking(booked.booking_id).start == booked.start
