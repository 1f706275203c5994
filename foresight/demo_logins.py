"""The demo's three people: a homeowner, a technician and an operator, with fresh passwords each run.

The homeowner is the household whose appliance the simulator will wear out first, and the
technician one who serves that household's area, so a person signing in sees the loop reach them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from actions.booking import Technician
from devices_sim import Fleet
from ingest.clock import SystemClock

from .auth import AuthStore, Role
from .runtime import Runtime

__all__ = ["DemoLogin", "seed_demo_logins"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoLogin:
    role: Role
    user_id: str
    password: str
    about: str


def seed_demo_logins(rt: Runtime, fleet: Fleet, technicians: Sequence[Technician]) -> list[DemoLogin]:
    """Create the demo users (random passwords, printed by the demo) and return them."""
    specs = fleet.devices
    soonest = sorted((s for s in specs if s.scenario is not None and s.scenario.fails_after is not None),
                     key=lambda s: s.scenario.fails_after)  # type: ignore[union-attr]
    first = soonest[0] if soonest else specs[0]
    household = first.household_id
    area = first.service_area
    technician = next((t for t in technicians if area in t.service_areas), technicians[0])
    store = AuthStore(rt.engine, clock=SystemClock())
    logins = [
        DemoLogin(role=Role.HOMEOWNER, user_id="homeowner", password=secrets.token_urlsafe(9),
                  about=f"household {household} ({', '.join(s.device_id for s in specs if s.household_id == household)})"),
        DemoLogin(role=Role.TECHNICIAN, user_id="technician", password=secrets.token_urlsafe(9),
                  about=f"{technician.name} ({technician.technician_id}), areas {', '.join(sorted(technician.service_areas))}"),
        DemoLogin(role=Role.OPERATOR, user_id="operator", password=secrets.token_urlsafe(9),
                  about="ticket queue and fleet"),
    ]
    for login in logins:
        store.add_user(user_id=login.user_id, role=login.role, password=login.password,
                       display_name={Role.HOMEOWNER: "Demo homeowner", Role.TECHNICIAN: technician.name,
                                     Role.OPERATOR: "Demo operator"}[login.role],
                       household_id=household if login.role is Role.HOMEOWNER else None,
                       technician_id=technician.technician_id if login.role is Role.TECHNICIAN else None)
    return logins
