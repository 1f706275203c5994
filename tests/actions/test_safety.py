"""Safety in the readings (overheating): at once, quiet hours or not, an urgent ticket, once per episode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from actions import ActionService, HouseholdPrefs
from actions.safety import SAFETY_RULES, breaches
from ingest.clock import ManualClock

from .helpers import prediction, set_features

H = timedelta(hours=1)


@pytest.mark.parametrize(("kind", "values", "names"), [
    ("rice_cooker", {"peak_temp_c__last": 150.0}, []),
    ("rice_cooker", {"peak_temp_c__last": 230.0}, ["overheating"]),
    ("rice_cooker", {"peak_temp_c__mean": 260.0}, []),  # the last reading decides, not the mean
    ("air_conditioner", {"supply_air_temp_c__last": 61.0}, ["overheating"]),
    ("air_conditioner", {"peak_temp_c__last": 300.0}, []),  # another kind's metric
    ("rice_cooker", {}, []),
])
def test_breaches(kind: str, values: dict[str, float], names: list[str]) -> None:
    assert [r.name for r, _ in breaches(kind, values)] == names


def test_overheating_alerts_at_night_and_opens_one_urgent_ticket(service: ActionService, clock: ManualClock,
                                                                  engine: Engine) -> None:
    service.upsert_household(HouseholdPrefs(household_id="h-1", timezone="UTC", quiet_start="00:00",
                                            quiet_end="08:00"))
    clock.advance(3 * H)  # 03:00, quiet
    set_features(engine, "rc-1", "rice_cooker", {"peak_temp_c__last": 262.0}, ts=clock.now())
    service.handle([prediction(ts=clock.now())])  # the model sees nothing wrong
    [note] = service.notifications_for_household("h-1")
    assert note.severity == "safety" and note.delivered_at == clock.now() and "262 °C" in note.body
    [ticket] = service.open_tickets()
    assert (ticket.category, ticket.priority, ticket.mode) == ("safety", "urgent", "safety:overheating")
    assert ticket.context["safety_rule"]["value"] == 262.0 and ticket.household_id == "h-1"
    for _ in range(3):  # still hot on the next sweeps: nothing new
        clock.advance(H)
        service.handle([prediction(ts=clock.now())])
    assert len(service.notifications_for_household("h-1")) == 1 and len(service.open_tickets()) == 1
    # a person resolves it; if it overheats again, it is a new episode
    service.resolve_ticket(ticket.ticket_id, "thermostat replaced")
    clock.advance(H)
    service.handle([prediction(ts=clock.now())])
    assert len(service.open_tickets()) == 1 and service.open_tickets()[0].ticket_id != ticket.ticket_id


def test_the_rules_are_declared_for_known_kinds() -> None:
    from ingest.contract import get_profile

    for rule in SAFETY_RULES:
        spec = get_profile(rule.kind).metric(rule.metric)
        assert spec.low <= rule.limit <= spec.high  # reachable by a valid reading
        assert set(rule.meaning) == set(rule.todo) == {"en", "zh"}
