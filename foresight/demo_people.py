"""The demo's households: languages, time zones, quiet hours and visit windows, so the people side shows."""

from __future__ import annotations

from devices_sim.fleet import Fleet

from actions import AvailabilityWindow, HouseholdPrefs

from .runtime import Runtime

__all__ = ["demo_households", "seed_demo_households"]


def demo_households(fleet: Fleet) -> list[HouseholdPrefs]:
    """Preferences for every household of the fleet, deterministic by position.

    Every second household reads Chinese in Shanghai time, the others English in London time; all
    keep quiet hours at night (alerts wait until morning, safety does not); every fifth is home
    for a visit only on weekday evenings and Saturdays.
    """
    ids = sorted({d.household_id for d in fleet.devices if d.household_id})
    out = []
    for i, household_id in enumerate(ids):
        chinese = i % 2 == 1
        availability = (AvailabilityWindow(weekdays=frozenset(range(5)), start="17:00", end="21:00"),
                        AvailabilityWindow(weekdays=frozenset({5}), start="09:00", end="17:00")) if i % 5 == 4 else ()
        out.append(HouseholdPrefs(
            household_id=household_id, name=f"Household {household_id}",
            language="zh" if chinese else "en", timezone="Asia/Shanghai" if chinese else "Europe/London",
            quiet_start="22:00", quiet_end="07:00", availability=availability))
    return out


def seed_demo_households(rt: Runtime, fleet: Fleet) -> int:
    """Save the demo households' preferences; returns how many."""
    households = demo_households(fleet)
    for prefs in households:
        rt.actions.upsert_household(prefs)
    return len(households)
