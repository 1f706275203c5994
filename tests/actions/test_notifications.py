"""Homeowner notifications through the service: preferences, quiet hours, the feed, the actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from actions import (
    ActionService,
    AvailabilityWindow,
    DecisionAction,
    HouseholdPrefs,
    InvalidState,
    NotFound,
)
from ingest.clock import ManualClock

from .helpers import add_device, near, prediction

H = timedelta(hours=1)
AC = dict(device_id="ac-1", kind="air_conditioner", mode="filter_clogging")
# The fixtures' clock starts Monday 2026-03-02 00:00 UTC = 08:00 in Shanghai.
QUIET_NIGHTS = HouseholdPrefs(household_id="h-1", language="zh", timezone="Asia/Shanghai",
                              quiet_start="22:00", quiet_end="07:00")


def test_a_household_reads_its_language_and_quiet_hours(service: ActionService, clock: ManualClock) -> None:
    assert service.household("h-1") == HouseholdPrefs(household_id="h-1")  # defaults before any are saved
    service.upsert_household(QUIET_NIGHTS)
    clock.advance(15 * H)  # 23:00 in Shanghai
    [outcome] = service.handle([near(ts=clock.now())])
    assert outcome.decision.action is DecisionAction.NOTIFY_HOMEOWNER and outcome.notification_id
    assert service.notifications_for_household("h-1") == []  # held: not shown yet
    assert service.feed_after("h-1") == []
    assert service.release_held_notifications() == 0  # still night
    clock.advance(8 * H)  # 07:00 in Shanghai
    assert service.release_held_notifications() == 1
    [note] = service.notifications_for_household("h-1")
    assert note.status == "new" and note.language == "zh" and note.severity == "warning"
    assert "除垢" in note.body and "之前完成" in note.body  # what to do, and by when, in Chinese
    assert note.deliver_at == clock.now() and note.delivered_at == clock.now()
    assert [(f.event, f.notification.notification_id) for f in service.feed_after("h-1")] == [
        ("created", note.notification_id)]


def test_the_feed_is_a_cursor_a_released_notification_comes_after_newer_ones(
        service: ActionService, clock: ManualClock, engine: Engine) -> None:
    service.upsert_household(QUIET_NIGHTS)
    clock.advance(15 * H)
    [held] = service.handle([near(ts=clock.now())])  # held until 07:00
    add_device(engine, "rc-9", "rice_cooker", household_id="h-1")
    clock.advance(8 * H)
    [later] = service.handle([near(device_id="rc-9", ts=clock.now())])  # day: at once
    service.release_held_notifications()
    feed = service.feed_after("h-1")
    assert [f.notification.notification_id for f in feed] == [later.notification_id, held.notification_id]
    cursor = feed[0].feed_id
    assert [f.notification.notification_id for f in service.feed_after("h-1", cursor)] == [held.notification_id]
    service.notification_action(held.notification_id, "acknowledge", household_id="h-1")  # type: ignore[arg-type]
    [update] = service.feed_after("h-1", feed[-1].feed_id)
    assert update.event == "updated" and update.notification.status == "acknowledged"
    assert service.feed_after("h-2") == []  # another household sees nothing of it


def test_english_alert_says_what_what_to_do_and_by_when(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([near(ts=clock.now())])
    note = service.notification(outcome.notification_id, household_id="h-1")  # type: ignore[arg-type]
    assert note.title == "Rice cooker: scale build-up expected"
    assert "mineral scale" in note.body and "What to do: Descale" in note.body and "Please do it by" in note.body
    assert note.actions == ("acknowledge", "snooze", "done", "book", "wrong", "talk_to_person")


def test_a_flapping_prediction_notifies_once(service: ActionService, clock: ManualClock) -> None:
    """Near, healthy, near, healthy ... for three days: the case holds and one notification goes out."""
    for i in range(18):
        p = near(ts=clock.now()) if i % 2 == 0 else prediction(ts=clock.now())
        service.handle([p])
        service.close_recovered_cases()
        clock.advance(4 * H)
    assert len(service.notifications_for_household("h-1")) == 1


@pytest.mark.parametrize(("action", "status"), [
    ("acknowledge", "acknowledged"), ("done", "done"), ("wrong", "wrong"), ("talk_to_person", "talked"),
])
def test_actions_change_the_status(service: ActionService, clock: ManualClock, action: str, status: str) -> None:
    [outcome] = service.handle([near(ts=clock.now())])
    result = service.notification_action(outcome.notification_id, action, household_id="h-1")  # type: ignore[arg-type]
    assert result.notification.status == status


def test_done_and_wrong_record_labels(service: ActionService, clock: ManualClock) -> None:
    [a] = service.handle([near(ts=clock.now())])
    service.notification_action(a.notification_id, "done", household_id="h-1", message="descaled it")  # type: ignore[arg-type]
    [label] = service.labels(device_id="rc-1")
    assert (label.source, label.outcome, label.mode, label.note) == (
        "homeowner", "fixed_by_homeowner", "scale_buildup", "descaled it")
    # a predicted case stays open until the predictions show the device recovered
    assert service.device_cases("rc-1")[0].status == "open"

    [b] = service.handle([near(ts=clock.now(), mode="heating_element_wear")])
    assert b.booking_id is not None
    [visit_note] = [n for n in service.notifications_for_household("h-1") if n.booking_id == b.booking_id]
    assert visit_note.template == "booking_booked" and visit_note.severity == "info"


def test_wrong_closes_the_case_and_cooldown_follows(service: ActionService, clock: ManualClock) -> None:
    [a] = service.handle([near(ts=clock.now())])
    service.notification_action(a.notification_id, "wrong", household_id="h-1")  # type: ignore[arg-type]
    case = service.device_cases("rc-1")[0]
    assert case.status == "closed" and "false alarm" in (case.close_reason or "")
    assert service.labels(device_id="rc-1")[0].outcome == "false_alarm"
    clock.advance(H)
    [again] = service.handle([near(ts=clock.now())])
    assert again.decision.rule == "cooldown"


def test_snooze_brings_it_back(service: ActionService, clock: ManualClock) -> None:
    [a] = service.handle([near(ts=clock.now())])
    nid = a.notification_id
    assert nid is not None
    result = service.notification_action(nid, "snooze", household_id="h-1", snooze_until=clock.now() + 3 * H)
    assert result.notification.status == "snoozed"
    clock.advance(2 * H)
    assert service.wake_snoozed_notifications() == 0
    clock.advance(H)
    assert service.wake_snoozed_notifications() == 1
    assert service.notification(nid).status == "new"
    for bad in (None, clock.now() - H, clock.now() + timedelta(days=15)):
        with pytest.raises(ValueError):
            service.notification_action(nid, "snooze", snooze_until=bad)


def test_book_from_a_notification(service: ActionService, clock: ManualClock) -> None:
    [a] = service.handle([near(ts=clock.now())])
    result = service.notification_action(a.notification_id, "book", household_id="h-1")  # type: ignore[arg-type]
    # rice cooker visits need the rice_cooker skill: t-cy in the north
    assert result.booking is not None and result.booking.technician_id == "t-cy" and result.ticket is None
    assert result.notification.status == "booked" and result.notification.booking_id == result.booking.booking_id
    again = service.notification_action(a.notification_id, "talk_to_person", household_id="h-1")  # type: ignore[arg-type]
    assert again.ticket is not None


def test_book_with_nobody_available_opens_a_ticket(service: ActionService, clock: ManualClock,
                                                   engine: Engine) -> None:
    add_device(engine, "rc-s", "rice_cooker", household_id="h-5", service_area="south")  # no rice tech south
    [a] = service.handle([near(device_id="rc-s", ts=clock.now())])
    result = service.notification_action(a.notification_id, "book", household_id="h-5")  # type: ignore[arg-type]
    assert result.booking is None and result.ticket is not None
    assert result.ticket.category == "failed_booking" and result.ticket.household_id == "h-5"


@pytest.mark.parametrize("before", [None, "acknowledge", "snooze", "done", "wrong", "talk_to_person"])
def test_talk_to_a_person_always_yields_a_ticket(service: ActionService, clock: ManualClock,
                                                 before: str | None) -> None:
    [a] = service.handle([near(ts=clock.now())])
    nid = a.notification_id
    assert nid is not None
    if before is not None:
        service.notification_action(nid, before, household_id="h-1", snooze_until=clock.now() + H)
    result = service.notification_action(nid, "talk_to_person", household_id="h-1", message="是真的吗？")
    ticket = result.ticket
    assert ticket is not None and ticket.status == "open" and ticket.human_only
    assert ticket.category == "customer_request" and ticket.household_id == "h-1" and ticket.device_id == "rc-1"
    assert ticket.context["messages"][-1]["text"] == "是真的吗？"
    assert ticket.context["notification"]["notification_id"] == nid
    assert ticket.due_at == clock.now() + 4 * H  # high priority SLA
    assert ticket in service.open_tickets()
    # automation never closes it: jobs run, the device recovers, it stays open
    for _ in range(6):
        clock.advance(8 * H)
        service.handle([prediction(ts=clock.now())])
        service.close_recovered_cases()
    assert service.ticket(ticket.ticket_id).status == "open"


def test_a_notification_is_only_its_households(service: ActionService, clock: ManualClock) -> None:
    [a] = service.handle([near(ts=clock.now())])
    nid = a.notification_id
    assert nid is not None
    with pytest.raises(NotFound):
        service.notification_action(nid, "talk_to_person", household_id="h-2")
    with pytest.raises(NotFound):
        service.notification(nid, household_id="h-2")
    with pytest.raises(NotFound):
        service.notification_action(10**9, "acknowledge")
    with pytest.raises(ValueError, match="unknown action"):
        service.notification_action(nid, "delete")
    service.notification_action(nid, "done")
    with pytest.raises(InvalidState):
        service.notification_action(nid, "acknowledge")


def test_held_notifications_cannot_be_acted_on_yet(service: ActionService, clock: ManualClock) -> None:
    service.upsert_household(QUIET_NIGHTS)
    clock.advance(15 * H)
    [a] = service.handle([near(ts=clock.now())])
    with pytest.raises(InvalidState):
        service.notification_action(a.notification_id, "acknowledge")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"language": "fr"}, "language"),
    ({"quiet_start": "22:00"}, "both"),
    ({"quiet_start": "22:00", "quiet_end": "7am"}, "HH:MM"),
    ({"timezone": "Nowhere/City"}, "time zone"),
    ({"channels": frozenset({"webhook"})}, "webhook_url"),
    ({"channels": frozenset({"webhook"}), "webhook_url": "http://127.0.0.1:1/x", "webhook_secret": "short"},
     "16 characters"),
    ({"household_id": ""}, "household_id"),
])
def test_bad_preferences_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HouseholdPrefs(**{"household_id": "h-1", **kwargs})  # type: ignore[arg-type]


def test_availability_windows_validate() -> None:
    with pytest.raises(ValueError):
        AvailabilityWindow(weekdays=frozenset({7}), start="09:00", end="12:00")
    with pytest.raises(ValueError):
        AvailabilityWindow(weekdays=frozenset({1}), start="12:00", end="09:00")
    prefs = HouseholdPrefs(household_id="h-1", channels=frozenset({"in_app", "webhook"}),
                           webhook_url="https://example.invalid/hook", webhook_secret="s" * 32)
    assert prefs.public().webhook_secret is None and prefs.webhook_secret == "s" * 32


def test_two_taps_at_once_make_one_ticket_with_both_messages(service: ActionService, clock: ManualClock) -> None:
    import threading

    [a] = service.handle([near(ts=clock.now())])
    nid = a.notification_id
    assert nid is not None
    tickets: list[int] = []
    threads = [threading.Thread(target=lambda m=m: tickets.append(service.notification_action(
        nid, "talk_to_person", household_id="h-1", message=m).ticket.ticket_id))  # type: ignore[union-attr]
        for m in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(tickets) == 2 and len(set(tickets)) == 1
    messages = {m["text"] for m in service.ticket(tickets[0]).context["messages"]}
    assert messages == {"first", "second"}


def test_an_information_offers_only_acknowledge_and_a_person(service: ActionService, clock: ManualClock) -> None:
    [booked] = service.handle([near(ts=clock.now(), **AC)])
    [note] = service.notifications_for_household("h-2")
    assert note.template == "booking_booked" and note.actions == ("acknowledge", "talk_to_person")
    with pytest.raises(InvalidState, match="offers"):
        service.notification_action(note.notification_id, "wrong", household_id="h-2")
    assert service.notification_action(note.notification_id, "talk_to_person", household_id="h-2").ticket


def test_visit_notices_reach_the_household_before_the_visit_despite_quiet_hours(
        service: ActionService, clock: ManualClock) -> None:
    """Quiet 00:00-10:00 UTC; at 06:00 a visit is booked for 08:00 (the technician's first hour)."""
    service.upsert_household(HouseholdPrefs(household_id="h-1", quiet_start="00:00", quiet_end="10:00"))
    clock.advance(6 * H)
    booking = service.book_technician(device_id="rc-1")
    assert booking.start == clock.now() + 2 * H
    assert service.send_booking_reminders() == 1  # inside 24 h: a reminder too
    assert service.notifications_for_household("h-1") == []  # held, but not until 10:00
    clock.advance(H)  # 07:00: one hour before the visit
    assert service.release_held_notifications() == 2
    notes = service.notifications_for_household("h-1")
    assert sorted(n.template for n in notes) == ["booking_booked", "booking_reminder"]
    assert all(n.delivered_at == clock.now() and n.deliver_at == clock.now() for n in notes)
    clock.advance(H / 2)  # 07:30: the technician cancels; quiet hours, visit at 08:00
    service.cancel_booking(booking.booking_id, reason="van broke down", by="technician")
    [cancelled] = [n for n in service.notifications_for_household("h-1") if n.template == "booking_cancelled"]
    assert cancelled.status == "new" and cancelled.delivered_at == clock.now()  # at once, not at 10:00
