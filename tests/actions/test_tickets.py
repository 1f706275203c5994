"""Tickets with context: SLA timers, escalation, resolution with an action, nearest resolved cases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from actions import ActionService, InvalidState, NoSlot
from actions.similar import nearest
from ingest.clock import ManualClock

from .helpers import add_device, add_readings, near, prediction, set_features

H = timedelta(hours=1)
AC = dict(device_id="ac-1", kind="air_conditioner", mode="filter_clogging")


@pytest.mark.parametrize(("kwargs", "priority", "sla"), [
    ({"ood": True}, "normal", 24 * H),  # data problem
    ({"sensor_faults": ("peak_temp_c",)}, "normal", 24 * H),
    ({"ttf_low_h": 4.0, "ttf_h": 10.0, **AC}, "urgent", H),  # no slot in 4 h: urgent
])
def test_tickets_carry_priority_sla_and_context(service: ActionService, clock: ManualClock, engine: Engine,
                                                kwargs: dict[str, object], priority: str, sla: timedelta) -> None:
    device = str(kwargs.get("device_id", "rc-1"))
    add_readings(engine, device, str(kwargs.get("kind", "rice_cooker")), start=clock.now() - 30 * H, n=30, step=H,
                 metrics=lambda i: {"time_to_boil_s": 600 + 10 * i, "heater_power_w": 900.0})
    make = near if "ttf_low_h" in kwargs else prediction
    [outcome] = service.handle([make(ts=clock.now(), **kwargs)])  # type: ignore[operator]
    ticket = service.ticket(outcome.ticket_id)  # type: ignore[arg-type]
    assert ticket.priority == priority and ticket.due_at == clock.now() + sla
    assert ticket.household_id and ticket.kind and ticket.mode and not ticket.human_only
    context = ticket.context
    assert context["reason"] and context["prediction"]["top_features"][0]["name"]
    trend = context["readings"]["trend"]
    assert len(trend) == 24 and trend[-1]["time_to_boil_s"] == 890  # the chart's data, oldest first
    assert trend[0]["ts"] < trend[-1]["ts"]


def test_breached_sla_escalates_one_step_at_a_time(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([prediction(ts=clock.now(), ood=True)])  # normal: 24 h
    clock.advance(23 * H)
    assert service.escalate_tickets() == []
    clock.advance(H)
    [t1] = service.escalate_tickets()
    assert (t1.priority, t1.escalation_level, t1.due_at) == ("high", 1, clock.now() + 4 * H)
    clock.advance(4 * H)
    [t2] = service.escalate_tickets()
    assert (t2.priority, t2.escalation_level, t2.due_at) == ("urgent", 2, clock.now() + H)
    clock.advance(H)
    [t3] = service.escalate_tickets()
    assert (t3.priority, t3.escalation_level, t3.due_at) == ("urgent", 3, clock.now())
    assert [e["to"] for e in t3.context["escalations"]] == ["high", "urgent", "urgent"]
    clock.advance(5 * H)
    assert service.escalate_tickets() == []  # a breached urgent ticket is escalated once, not every sweep
    assert service.open_tickets()[0].ticket_id == outcome.ticket_id
    service.resolve_ticket(t3.ticket_id, "sensor replaced")
    clock.advance(10 * H)
    assert service.escalate_tickets() == []  # resolved tickets are left alone


def test_resolution_notify_sends_the_agents_message_and_records_a_label(service: ActionService,
                                                                        clock: ManualClock) -> None:
    [outcome] = service.handle([prediction(ts=clock.now(), ood=True)])
    ticket = service.resolve_ticket(outcome.ticket_id, "readings are fine after the move",  # type: ignore[arg-type]
                                    action="notify", message="Your rice cooker is fine; no action needed.",
                                    outcome="no_fault_found")
    assert ticket.status == "resolved" and ticket.resolution_action == "notify"
    [note] = service.notifications_for_household("h-1")
    assert note.template == "agent_message" and note.body == "Your rice cooker is fine; no action needed."
    [label] = service.labels(device_id="rc-1")
    assert (label.source, label.outcome, label.ticket_id) == ("agent", "no_fault_found", ticket.ticket_id)
    assert service.device_cases("rc-1")[0].status == "closed"
    with pytest.raises(InvalidState):
        service.resolve_ticket(ticket.ticket_id, "again")


def test_resolution_book_places_a_visit_and_keeps_the_case(service: ActionService, clock: ManualClock) -> None:
    [outcome] = service.handle([prediction(ts=clock.now(), ood=True, **AC)])
    ticket = service.resolve_ticket(outcome.ticket_id, "looks like a clogged filter", action="book",  # type: ignore[arg-type]
                                    actor="op-maria")
    [booking] = service.bookings_for_technician("t-anna")
    assert ticket.resolved_by == "op-maria" and service.ticket(ticket.ticket_id).resolved_by == "op-maria"
    assert ticket.context["resolved"] == {"action": "book", "by": "op-maria", "at": clock.now().isoformat(),
                                          "booking_id": booking.booking_id}
    case = service.device_cases("ac-1")[0]
    assert case.status == "open" and case.action.value == "book_technician"
    assert service.labels(device_id="ac-1")[0].outcome == "confirmed_fault"


def test_resolution_book_without_a_slot_keeps_the_ticket_open(service: ActionService, clock: ManualClock,
                                                              engine: Engine) -> None:
    add_device(engine, "ac-w", "air_conditioner", household_id="h-9", service_area="west")
    [outcome] = service.handle([prediction(ts=clock.now(), ood=True, device_id="ac-w", kind="air_conditioner",
                                           mode="filter_clogging")])
    with pytest.raises(NoSlot):
        service.resolve_ticket(outcome.ticket_id, "needs a visit", action="book")  # type: ignore[arg-type]
    assert service.ticket(outcome.ticket_id).status == "open"  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        service.resolve_ticket(outcome.ticket_id, "x", action="escalate")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        service.resolve_ticket(outcome.ticket_id, "  ")  # type: ignore[arg-type]


def test_similar_resolved_cases_are_the_nearest_by_features(service: ActionService, clock: ManualClock,
                                                            engine: Engine) -> None:
    """Three resolved cases with different feature vectors; a new one close to the second finds it first."""
    vectors = {"rc-a": (600.0, 950.0), "rc-b": (900.0, 700.0), "rc-c": (1500.0, 400.0)}
    for device, (boil, power) in vectors.items():
        add_device(engine, device, "rice_cooker", household_id=f"h-{device}")
        set_features(engine, device, "rice_cooker", {"time_to_boil_s__last": boil, "heater_power_w__last": power},
                     ts=clock.now())
        [o] = service.handle([prediction(device_id=device, ts=clock.now(), ood=True)])
        service.resolve_ticket(o.ticket_id, f"resolved {device}", outcome="confirmed_fault")  # type: ignore[arg-type]
    set_features(engine, "rc-1", "rice_cooker", {"time_to_boil_s__last": 880.0, "heater_power_w__last": 720.0},
                 ts=clock.now())
    [o] = service.handle([prediction(ts=clock.now(), ood=True)])
    similar = service.ticket(o.ticket_id).context["similar_cases"]  # type: ignore[arg-type]
    assert [c["device_id"] for c in similar] == ["rc-b", "rc-a", "rc-c"]
    assert similar[0]["resolution"] == "resolved rc-b" and similar[0]["outcome"] == "confirmed_fault"
    assert similar[0]["distance"] < similar[1]["distance"] < similar[2]["distance"]


@pytest.mark.parametrize(("query", "expected"), [
    ({"a": 1.0, "b": 1.0}, [2, 1, 3]),
    ({"a": 10.0}, [3, 2, 1]),  # only the shared feature counts
    ({"zzz": 1.0}, []),  # nothing shared: no neighbours rather than a guess
    ({"a": float("nan"), "b": 0.0}, [1, 2, 3]),
])
def test_nearest_standardises_and_uses_shared_features(query: dict[str, float], expected: list[int]) -> None:
    candidates = [(1, {"a": 0.0, "b": 0.0}), (2, {"a": 1.0, "b": 1.2}), (3, {"a": 9.0, "b": 5.0})]
    assert [i for i, _ in nearest(query, candidates, k=5)] == expected
