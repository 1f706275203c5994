"""Device error codes: the table maps each to an action; safety overrides quiet hours; no storm on repeats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from actions import ERROR_CODES, ActionService, HouseholdPrefs
from actions.error_codes import ErrorCode, action_for, lookup
from actions.templates import LANGUAGES
from ingest.clock import ManualClock
from ingest.contract import ActionKind, get_profile

from .helpers import add_device, add_event, near

H = timedelta(hours=1)


def _device(engine: Engine, device_id: str, kind: str, model: str, household: str = "h-7") -> None:
    add_device(engine, device_id, kind, household_id=household, model=model)


@pytest.mark.parametrize(("kind", "model", "code", "action", "category", "priority"), [
    ("rice_cooker", "RC-100", "E2", "notify_homeowner", None, None),  # lid: the homeowner fixes it
    ("rice_cooker", "RC-100", "E3", "notify_homeowner", None, None),  # scale: descale
    ("rice_cooker", "RC-100", "E1", "book_technician", None, None),  # element failed: visit
    ("rice_cooker", "RC-100", "E5", "open_ticket", "safety", "urgent"),  # overheating
    ("rice_cooker", "RC-200", "E7", "book_technician", None, None),  # only RC-200 knows E7
    ("rice_cooker", "RC-100", "E7", "open_ticket", "unknown_error_code", "normal"),
    ("air_conditioner", "AC-3500", "H6", "book_technician", None, None),
    ("air_conditioner", "AC-2500", "P4", "open_ticket", "safety", "urgent"),
    ("air_conditioner", "AC-2500", "Z9", "open_ticket", "unknown_error_code", "normal"),
])
def test_each_code_maps_to_its_action(service: ActionService, clock: ManualClock, engine: Engine, kind: str,
                                      model: str, code: str, action: str, category: str | None,
                                      priority: str | None) -> None:
    _device(engine, "dev-1", kind, model)
    add_event(engine, "dev-1", code, ts=clock.now(), seq=1)
    [result] = service.process_device_events()
    assert (result.code, result.action) == (code, action)
    if category is not None:
        ticket = service.ticket(result.ticket_id)  # type: ignore[arg-type]
        # categorised on arrival: kind, code, priority, household
        assert (ticket.category, ticket.priority, ticket.kind, ticket.code, ticket.household_id) == (
            category, priority, kind, code, "h-7")
        assert ticket.context["device"]["model"] == model and ticket.context["event"]["code"] == code
    if action == "book_technician":
        assert result.booking_id is not None and result.notification_id is not None
        assert service.booking(result.booking_id).reason.startswith(f"device reported {code}")
    if action == "notify_homeowner":
        note = service.notification(result.notification_id)  # type: ignore[arg-type]
        assert note.code == code and note.template == "error_fix" and f"error {code}" in note.body
    assert service.process_device_events() == []  # each event is acted on once


def test_safety_notifies_at_once_in_quiet_hours_and_opens_an_urgent_ticket(service: ActionService,
                                                                             clock: ManualClock,
                                                                             engine: Engine) -> None:
    service.upsert_household(HouseholdPrefs(household_id="h-7", language="zh", timezone="UTC",
                                            quiet_start="00:00", quiet_end="08:00"))
    _device(engine, "rc-7", "rice_cooker", "RC-100")
    clock.advance(2 * H)  # 02:00: quiet
    add_event(engine, "rc-7", "E5", ts=clock.now(), seq=1)
    [result] = service.process_device_events()
    [note] = service.notifications_for_household("h-7")  # delivered, not held
    assert note.notification_id == result.notification_id and note.severity == "safety"
    assert note.delivered_at == clock.now() and note.title.startswith("安全提醒")
    assert "拔下插头" in note.body  # what to do now, in the household's language
    ticket = service.ticket(result.ticket_id)  # type: ignore[arg-type]
    assert ticket.priority == "urgent" and ticket.due_at == clock.now() + H and ticket.category == "safety"
    assert service.open_tickets()[0].ticket_id == ticket.ticket_id
    # the homeowner asks for a person from the safety alert: urgent as well
    asked = service.notification_action(note.notification_id, "talk_to_person", household_id="h-7")
    assert asked.ticket is not None and asked.ticket.priority == "urgent"


def test_a_flapping_code_makes_one_case_and_one_alert(service: ActionService, clock: ManualClock,
                                                     engine: Engine) -> None:
    _device(engine, "rc-7", "rice_cooker", "RC-100")
    for seq in range(1, 11):  # E2 on every cycle for three days
        add_event(engine, "rc-7", "E2", ts=clock.now(), seq=seq)
        clock.advance(8 * H)
    results = service.process_device_events()
    assert [r.action for r in results] == ["notify_homeowner"] + ["covered"] * 9
    assert len({r.case_id for r in results}) == 1
    assert len(service.notifications_for_household("h-7")) == 1


def test_a_code_that_returns_after_the_fix_goes_to_a_person(service: ActionService, clock: ManualClock,
                                                           engine: Engine) -> None:
    _device(engine, "rc-7", "rice_cooker", "RC-100")
    add_event(engine, "rc-7", "E2", ts=clock.now(), seq=1)
    [first] = service.process_device_events()
    service.notification_action(first.notification_id, "done", household_id="h-7")  # type: ignore[arg-type]
    assert service.device_cases("rc-7")[0].status == "closed"
    clock.advance(10 * H)
    add_event(engine, "rc-7", "E2", ts=clock.now(), seq=2)
    [again] = service.process_device_events()
    ticket = service.ticket(again.ticket_id)  # type: ignore[arg-type]
    assert ticket.category == "recurring_error" and "came back" in ticket.context["reason"]


def test_a_code_confirming_a_predicted_failure_joins_its_case(service: ActionService, clock: ManualClock,
                                                              engine: Engine) -> None:
    [predicted] = service.handle([near(ts=clock.now())])  # scale_buildup notified
    add_event(engine, "rc-1", "E3", ts=clock.now(), seq=1)  # the thermal cut-off from scale
    [result] = service.process_device_events()
    assert result.action == "covered" and result.case_id == predicted.case_id
    assert "device reported E3" in service.device_cases("rc-1")[0].reason


def test_the_table_is_complete_and_consistent() -> None:
    for entry in ERROR_CODES:
        profile = get_profile(entry.kind)
        assert entry.model == "*" or entry.model in profile.models, entry
        assert entry.failure_mode is None or profile.mode(entry.failure_mode), entry
        assert set(LANGUAGES) <= set(entry.meaning) and set(LANGUAGES) <= set(entry.homeowner_fix)
        if entry.safety:
            assert action_for(entry) is ActionKind.OPEN_TICKET and entry.priority == "urgent"
    # the simulator's codes are known
    assert lookup(kind="rice_cooker", model="RC-100", code="E1") is not None
    assert lookup(kind="rice_cooker", model="RC-200", code="E3") is not None
    with pytest.raises(ValueError, match="critical"):
        ErrorCode(kind="rice_cooker", model="*", code="X", meaning={"en": "", "zh": ""}, severity="low",
                  homeowner_fix={"en": "", "zh": ""}, visit_needed=False, safety=True)


def test_a_recurring_safety_code_is_still_told_at_once(service: ActionService, clock: ManualClock,
                                                      engine: Engine) -> None:
    _device(engine, "rc-7", "rice_cooker", "RC-100")
    add_event(engine, "rc-7", "E5", ts=clock.now(), seq=1)
    [first] = service.process_device_events()
    service.resolve_ticket(first.ticket_id, "cable replaced")  # type: ignore[arg-type]
    clock.advance(2 * H)
    add_event(engine, "rc-7", "E5", ts=clock.now(), seq=2)
    [again] = service.process_device_events()
    assert again.notification_id is not None and service.ticket(again.ticket_id).category == "safety"  # type: ignore[arg-type]
    assert service.notification(again.notification_id).severity == "safety"


def test_every_error_code_the_simulated_fleet_reports_is_in_the_table() -> None:
    """The simulator and the error-code table speak the same codes: none lands as unknown_error_code."""
    from datetime import UTC, datetime

    from devices_sim import Fleet
    from ingest.contract import Event

    start = datetime(2026, 3, 2, tzinfo=UTC)
    fleet = Fleet.build(n_devices=90, seed=11, start=start)
    models = {d.device_id: d.model for d in fleet.devices}
    seen = {(m.kind, m.code, models[m.device_id]) for m in fleet.advance(start + timedelta(days=200))
            if isinstance(m, Event) and m.event == "error"}
    assert {kind for kind, _, _ in seen} == {"rice_cooker", "air_conditioner", "water_purifier"}
    assert [s for s in sorted(seen) if lookup(kind=s[0], code=s[1], model=s[2]) is None] == []
