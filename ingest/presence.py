"""Presence: is a device connected and reporting? A fact about the link, not a failure prediction.

``presence`` is a pure function of what the store knows and the time it is asked at:

- ``offline``: the broker said so (the device's retained last will, or a clean ``offline``);
- ``stale``: not known to be offline, but silent for longer than its profile's
  ``reading_interval_h * silence_grace``: connected yet not reporting, or gone without the broker
  noticing yet;
- ``online``: heard from within that time;
- ``unknown``: never heard from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from ingest.contract import STATUS_OFFLINE

__all__ = ["PRESENCES", "Presence", "presence"]

Presence = Literal["online", "offline", "stale", "unknown"]
PRESENCES: tuple[Presence, ...] = ("online", "offline", "stale", "unknown")


def presence(status: str, last_seen: datetime | None, *, now: datetime, reading_interval_h: float,
             grace_factor: float = 3.0) -> Presence:
    """The presence of a device whose broker status is ``status`` and last sign of life ``last_seen``.

    ``last_seen`` is the latest of its newest reading's time and the time it came online. A
    ``last_seen`` slightly ahead of ``now`` (device clock skew) counts as just now.
    """
    if status == STATUS_OFFLINE:
        return "offline"
    if last_seen is None:
        return "unknown"
    if now - last_seen > timedelta(hours=reading_interval_h * grace_factor):
        return "stale"
    return "online"
