"""The simulator's one error tree.

::

    SimulatorError            anything the simulator raises on purpose
    ├── ScenarioError         (also ValueError) a fleet or scenario request that cannot be built
    └── PublisherError        the MQTT side could not connect or publish as asked
"""

from __future__ import annotations

__all__ = ["PublisherError", "ScenarioError", "SimulatorError"]


class SimulatorError(Exception):
    """Base of every error ``devices_sim`` raises on purpose."""


class ScenarioError(SimulatorError, ValueError):
    """A fleet or scenario request that cannot be built (unknown kind, mode or metric, bad times)."""


class PublisherError(SimulatorError):
    """Devices could not connect to the broker, or publishing failed in a way the caller must see."""
