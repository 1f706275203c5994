"""The actions service end to end on SQLite: what homeowners, technicians and support staff see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from actions import (
    ActionService,
    DecisionAction,
    InvalidState,
    NotFound,
    UnknownFailureMode,
)
from actions.db import BookingRow, CaseRow, DecisionLogRow, NotificationRow, TicketRow
from ingest.clock import ManualClock
from ingest.contract import get_profile

from .helpers import add_device, add_readings, near, prediction

H = timedelta(hours=1)
AC = dict(device_id="ac-1", kind="air_conditioner", mode="filter_clogging")


def counts(engine: Engine) -> dict[str, int]:
    with sessionmaker(engine)() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (CaseRow, NotificationRow, BookingRow, TicketRow, DecisionLogRow)}


def test_near_failure_notifies_the_homeowner_once(service: ActionService, clock: ManualClock,
                                                  engine: Engine) -> None:
    p = near(ts=clock.now())
    [outcome] = service.handle([p])
    assert outcome.decision.action is DecisionAction.NOTIFY_HOMEOWNER
    [note] = service.notifications_for_household("h-1")
    assert note.notification_id == outcome.notification_id and note.status == "new"
    assert get_profile("rice_cooker").mode("scale_buildup").homeowner_tip in note.body
    assert "60 and 110 hours" in note.body
    assert note.device_id == "rc-1" and note.case_id == outcome.case_id
    before = counts(engine)
    assert before == {"cases": 1, "notifications": 1, "bookings": 0, "tickets": 0, "decisions_log": 1}

    [again] = service.handle([p])
    assert again.duplicate and again.decision.action is DecisionAction.NONE
    clock.advance(8 * H)
    [later] = service.handle([near(ts=clock.now())])  # a new prediction, same open case
    assert later.decision.rule == "open_case" and later.case_id == outcome.case_id
    assert counts(engine) == before


def test_ac_filter_clogging_books_an_hvac_technician_in_the_area(service: ActionService,
                                                                 clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    assert outcome.decision.action is DecisionAction.BOOK_TECHNICIAN
    booking = service.booking(outcome.booking_id)  # type: ignore[arg-type]
    assert booking.technician_id == "t-anna"  # hvac + north; t-bo is south, t-cy has no hvac
    assert outcome.decision.due_by is not None and booking.end <= outcome.decision.due_by
    assert booking.start >= clock.now() and booking.start.minute == 0
    assert booking.household_id == "h-2" and booking.status == "scheduled"
    assert service.bookings_for_technician("t-anna") == [booking]
    [note] = service.notifications_for_household("h-2")
    assert "Anna" in note.title + note.body and "visit" in note.title


def test_no_slot_before_the_deadline_opens_a_ticket(service: ActionService, clock: ManualClock) -> None:
    # Monday 00:00 with 4 h left: no technician works before 08:00.
    [outcome] = service.handle([near(ts=clock.now(), ttf_low_h=4.0, ttf_h=10.0, **AC)])
    assert outcome.decision.action is DecisionAction.BOOK_TECHNICIAN and outcome.booking_id is None
    ticket = service.ticket(outcome.ticket_id)  # type: ignore[arg-type]
    assert ticket.category == "no_slot" and ticket.priority == "urgent"
    assert service.device_cases("ac-1")[0].action is DecisionAction.BOOK_TECHNICIAN


def test_a_rescore_after_a_late_reading_is_not_a_duplicate(service: ActionService, clock: ManualClock) -> None:
    calm = prediction(ts=clock.now(), n_readings=20)
    [first] = service.handle([calm])
    assert first.decision.action is DecisionAction.NONE and not first.duplicate
    assert service.handle([calm])[0].duplicate  # the very same vector again
    # A late reading: same newest timestamp, one more reading, and now the failure is near.
    [late] = service.handle([prediction(ts=clock.now(), n_readings=21, p_fail=0.8, ttf_h=40.0,
                                        ttf_low_h=30.0, ttf_high_h=60.0)])
    assert not late.duplicate and late.decision.action is DecisionAction.NOTIFY_HOMEOWNER


def test_one_stuck_sensor_feeding_two_modes_opens_one_ticket(service: ActionService, clock: ManualClock) -> None:
    both = [prediction(ts=clock.now(), mode=m, sensor_faults=("time_to_boil_s",))
            for m in ("scale_buildup", "heating_element_wear")]
    first, second = service.handle(both)
    assert first.decision.action is DecisionAction.OPEN_TICKET
    assert second.decision.action is DecisionAction.NONE and second.decision.rule == "covered"
    assert len(service.open_tickets()) == 1


def test_sensor_fault_ticket_carries_the_context(service: ActionService, clock: ManualClock,
                                                 engine: Engine) -> None:
    add_readings(engine, "rc-1", "rice_cooker", start=clock.now() - 40 * H, n=5,
                 step=8 * H, metrics=lambda i: {"time_to_boil_s": 600.0 + 10 * i, "peak_temp_c": 130.0})
    p = prediction(ts=clock.now(), sensor_faults=("peak_temp_c",))
    [outcome] = service.handle([p])
    assert outcome.decision.action is DecisionAction.OPEN_TICKET
    [ticket] = service.open_tickets()
    assert ticket.ticket_id == outcome.ticket_id and ticket.category == "sensor_fault"
    assert ticket.device_id == "rc-1" and ticket.household_id == "h-1"
    ctx = ticket.context
    assert ctx["device"]["kind"] == "rice_cooker" and ctx["device"]["service_area"] == "north"
    readings = ctx["readings"]
    assert readings["count"] == 5 and readings["total"] == 5
    assert readings["first_ts"] == (clock.now() - 40 * H).isoformat()
    assert readings["last_ts"] == (clock.now() - 8 * H).isoformat()
    assert readings["metrics"]["time_to_boil_s"] == {"min": 600.0, "mean": 620.0, "max": 640.0, "last": 640.0}
    assert ctx["prediction"]["p_fail"] == p.p_fail and ctx["prediction"]["model_version"] == "test-1"
    assert ctx["prediction"]["sensor_faults"] == ["peak_temp_c"]
    assert [f["name"] for f in ctx["prediction"]["top_features"]] == [
        "time_to_boil_s__slope_per_day", "peak_temp_c__delta"]
    assert "peak_temp_c" in ctx["reason"] and ctx["similar_cases"] == []


def test_similar_past_cases_appear_in_new_tickets(service: ActionService, clock: ManualClock,
                                                  engine: Engine) -> None:
    [first] = service.handle([prediction(ts=clock.now(), ood=True)])
    service.resolve_ticket(first.ticket_id, "descaled, readings normal again")  # type: ignore[arg-type]
    add_device(engine, "rc-2", "rice_cooker", household_id="h-3")
    [second] = service.handle([prediction(device_id="rc-2", ts=clock.now(), ood=True)])
    [similar] = service.ticket(second.ticket_id).context["similar_cases"]  # type: ignore[arg-type]
    assert similar["device_id"] == "rc-1" and similar["resolution"] == "descaled, readings normal again"
    assert similar["outcome"] == "no_fault_found" and similar["source"] == "agent"


def test_talk_to_a_person_always_opens_a_ticket(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now())])  # an open case exists
    ticket = service.open_ticket_on_request(device_id="rc-1", message="It smells burnt, call me")
    assert ticket.category == "customer_request" and ticket.household_id == "h-1"
    assert ticket.context["message"] == "It smells burnt, call me"
    assert [c["case_id"] for c in ticket.context["open_cases"]] == [outcome.case_id]
    by_household = service.open_ticket_on_request(household_id="h-2", message="hello?")
    assert [d["device_id"] for d in by_household.context["devices"]] == ["ac-1"]
    assert len(service.open_tickets()) == 2
    with pytest.raises(NotFound):
        service.open_ticket_on_request(device_id="nope", message="?")
    with pytest.raises(ValueError):
        service.open_ticket_on_request(message="?")


def test_ticket_queue_is_by_priority_then_age(service: ActionService, clock: ManualClock) -> None:
    low = service.handle([prediction(ts=clock.now(), ood=True)])[0].ticket_id  # normal
    clock.advance(H)
    high = service.open_ticket_on_request(device_id="rc-1", message="help").ticket_id
    clock.advance(H)
    urgent = service.handle([near(ts=clock.now(), ttf_low_h=3.0, **AC)])[0].ticket_id  # no slot
    clock.advance(H)
    high2 = service.open_ticket_on_request(device_id="ac-1", message="help").ticket_id
    assert [t.ticket_id for t in service.open_tickets()] == [urgent, high, high2, low]


def test_resolving_a_ticket_closes_its_case(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([prediction(ts=clock.now(), sensor_faults=("peak_temp_c",))])
    clock.advance(H)
    resolved = service.resolve_ticket(outcome.ticket_id, "replaced the temperature probe")  # type: ignore[arg-type]
    assert resolved.status == "resolved" and resolved.resolved_at == clock.now()
    [case] = service.device_cases("rc-1")
    assert case.status == "closed" and "replaced the temperature probe" in (case.close_reason or "")
    assert service.open_tickets() == []
    with pytest.raises(InvalidState):
        service.resolve_ticket(outcome.ticket_id, "again")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        service.resolve_ticket(9999, "?")


def test_bad_data_ticket_escalates_when_a_real_failure_shows(service: ActionService,
                                                             clock: ManualClock) -> None:
    [ticketed] = service.handle([prediction(ts=clock.now(), sensor_faults=("peak_temp_c",))])
    clock.advance(8 * H)
    [escalated] = service.handle([near(ts=clock.now())])
    assert escalated.decision.action is DecisionAction.NOTIFY_HOMEOWNER
    assert escalated.case_id == ticketed.case_id and escalated.notification_id is not None
    [case] = service.device_cases("rc-1")
    assert case.status == "open" and case.action is DecisionAction.NOTIFY_HOMEOWNER
    service.resolve_ticket(ticketed.ticket_id, "probe fine")  # type: ignore[arg-type]
    assert service.device_cases("rc-1")[0].status == "open"  # the failure still needs fixing


def test_completing_a_booking_and_due_bookings(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now(), **AC)])
    booking_id = outcome.booking_id
    assert booking_id is not None
    assert service.mark_due_bookings() == 0
    clock.set(service.booking(booking_id).start)
    assert service.mark_due_bookings() == 1 and service.booking(booking_id).status == "due"
    done = service.complete_booking(booking_id, "filter replaced, ducts fine")
    assert done.status == "completed" and done.diagnosis == "filter replaced, ducts fine"
    assert service.device_cases("ac-1")[0].status == "open"  # closes when predictions recover
    with pytest.raises(InvalidState):
        service.complete_booking(booking_id, "twice")
    with pytest.raises(NotFound):
        service.complete_booking(9999, "?")


def test_recovered_case_closes_and_the_device_can_be_alerted_again(service: ActionService,
                                                                   clock: ManualClock) -> None:
    [first] = service.handle([near(ts=clock.now())])
    for _ in range(4):  # calm for 24 h, one prediction every 8 h
        clock.advance(8 * H)
        service.handle([prediction(ts=clock.now())])
        if clock.now() - first.prediction_ts < 32 * H:
            assert service.close_recovered_cases() == []
    [closed] = service.close_recovered_cases()
    assert closed.case_id == first.case_id and closed.close_reason.startswith("recovered")  # type: ignore[union-attr]
    clock.advance(8 * H)
    [cooling] = service.handle([near(ts=clock.now())])
    assert cooling.decision.rule == "cooldown"
    clock.advance(72 * H)
    [again] = service.handle([near(ts=clock.now())])
    assert again.decision.action is DecisionAction.NOTIFY_HOMEOWNER and again.case_id != first.case_id
    assert len(service.notifications_for_household("h-1")) == 2


def test_a_relapse_resets_the_calm_run(service: ActionService, clock: ManualClock) -> None:
    service.handle([near(ts=clock.now())])
    clock.advance(8 * H)
    service.handle([prediction(ts=clock.now())])
    clock.advance(8 * H)
    service.handle([near(ts=clock.now())])  # not calm: the run starts over
    clock.advance(20 * H)
    service.handle([prediction(ts=clock.now())])
    clock.advance(20 * H)
    assert service.close_recovered_cases() == []


def test_uncertainty_opens_a_ticket_only_after_the_dwell(service: ActionService, clock: ManualClock) -> None:
    band = dict(p_fail=0.5, ttf_h=300.0, ttf_low_h=130.0, ttf_high_h=500.0)
    service.handle([prediction(ts=clock.now(), **band)])
    clock.advance(8 * H)
    service.handle([prediction(ts=clock.now(), **band)])
    clock.advance(8 * H)
    service.handle([prediction(ts=clock.now())])  # a brief pass: back to healthy
    clock.advance(8 * H)
    outcomes = []
    for _ in range(4):
        outcomes += service.handle([prediction(ts=clock.now(), **band)])
        clock.advance(8 * H)
    assert [o.decision.rule for o in outcomes] == ["uncertain_dwell", "uncertain_dwell",
                                                   "uncertain_dwell", "uncertain"]
    [ticket] = service.open_tickets()
    assert ticket.category == "uncertain" and ticket.priority == "low"
    assert ticket.context["recent_p_fail"][-4:] == [0.5, 0.5, 0.5, 0.5]


def test_no_household_falls_back_to_a_ticket(service: ActionService, clock: ManualClock,
                                             engine: Engine) -> None:
    add_device(engine, "rc-9", "rice_cooker", household_id=None)
    [outcome] = service.handle([near(device_id="rc-9", ts=clock.now())])
    assert outcome.notification_id is None
    assert service.ticket(outcome.ticket_id).category == "no_household"  # type: ignore[arg-type]


def test_notification_status_changes(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now())])
    note = service.set_notification_status(outcome.notification_id, "done")  # type: ignore[arg-type]
    assert note.status == "done"
    with pytest.raises(ValueError):
        service.set_notification_status(outcome.notification_id, "exploded")  # type: ignore[arg-type]


def test_unknown_failure_mode_writes_nothing(service: ActionService, clock: ManualClock,
                                             engine: Engine) -> None:
    with pytest.raises(UnknownFailureMode):
        service.handle([near(ts=clock.now(), mode="exploded")])
    assert set(counts(engine).values()) == {0}

