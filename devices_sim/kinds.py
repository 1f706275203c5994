"""The simulated appliance kinds, one ``KindPhysics`` each; adding a kind adds one entry here."""

from __future__ import annotations

from .physics import AIR_CONDITIONER_PHYSICS, RICE_COOKER_PHYSICS, KindPhysics
from .purifier import WATER_PURIFIER_PHYSICS

__all__ = ["PHYSICS"]

PHYSICS: dict[str, KindPhysics] = {
    p.kind: p for p in (RICE_COOKER_PHYSICS, AIR_CONDITIONER_PHYSICS, WATER_PURIFIER_PHYSICS)
}
