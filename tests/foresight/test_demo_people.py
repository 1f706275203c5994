"""The demo's households: valid preferences for every household of the fleet, both languages present."""

from __future__ import annotations

from datetime import UTC, datetime

from devices_sim.fleet import Fleet
from foresight.demo_people import demo_households


def test_every_demo_household_gets_valid_preferences() -> None:
    fleet = Fleet.build(n_devices=30, seed=7, start=datetime(2026, 6, 1, tzinfo=UTC))
    households = demo_households(fleet)
    assert {h.household_id for h in households} == {d.household_id for d in fleet.devices}
    assert {h.language for h in households} == {"en", "zh"}
    assert all(h.quiet_start == "22:00" and h.quiet_end == "07:00" for h in households)
    assert any(h.availability for h in households)
    assert demo_households(fleet) == households  # deterministic
