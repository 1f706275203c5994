"""Pure delivery policy for homeowner notifications: quiet hours, cooldown, safety. No I/O, no clock.

``plan_delivery`` decides, for one notification about to be made, whether it is sent now, held
until the household's quiet hours end, or suppressed. Rules, first match wins:

1. **Safety** (``Urgency.SAFETY``): sent now on every channel, quiet hours or not, never suppressed.
2. **Cooldown** (``Urgency.ALERT`` only): the household was alerted about the same (device, mode)
   less than ``config.cooldown`` ago → suppressed. Together with the policy's one-open-case rule
   and its recovered dwell (a case closes only after the device stayed calm), this is what keeps a
   flapping signal from becoming an alert storm.
3. **Storm cap** (``Urgency.ALERT`` only): ``config.storm_max`` alerts to the household inside
   ``config.storm_window`` already → suppressed (several devices flapping at once).
4. **Quiet hours**: ``now`` inside the household's quiet hours (local time) → held until they end.
   A notification that is only useful before a time (``act_by``: a visit's start, for the
   booked / moved / reminder / cancelled notices) is held at most until ``act_by −
   config.act_margin``; when that is already past it is sent now (rule ``timely``). Held until
   quiet hours end at 08:00, the notice of a 07:30 visit would arrive after the technician.
5. Otherwise sent now.

Informational notifications (``Urgency.INFO``: booking confirmations, reminders, a person's reply)
are never suppressed, only held through quiet hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CHANNELS",
    "DeliveryConfig",
    "DeliveryPlan",
    "DeliveryPrefs",
    "PastAlert",
    "QuietHours",
    "Urgency",
    "parse_hhmm",
    "plan_delivery",
    "quiet_until",
]

CHANNELS: frozenset[str] = frozenset({"in_app", "webhook"})


class Urgency(StrEnum):
    """How pressing a notification is; decides which rules apply."""

    SAFETY = "safety"
    ALERT = "alert"
    INFO = "info"


def parse_hhmm(value: str) -> time:
    """``"22:30"`` → ``time(22, 30)``; ValueError names the bad value."""
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected a time as HH:MM, got {value!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuietHours:
    """A daily quiet window in local time; ``start > end`` spans midnight (22:00–07:00)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours need start != end")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPrefs:
    """What the policy needs of a household's preferences."""

    timezone: str = "UTC"
    quiet: QuietHours | None = None
    channels: frozenset[str] = frozenset({"in_app"})

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if not self.channels <= CHANNELS:
            raise ValueError(f"unknown channels {sorted(self.channels - CHANNELS)}; known: {sorted(CHANNELS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryConfig:
    """Cooldown and storm cap of the delivery policy."""

    cooldown: timedelta = field(default=timedelta(hours=24))
    storm_window: timedelta = field(default=timedelta(hours=6))
    storm_max: int = 3
    #: How long before ``act_by`` (a visit's start) a held notice must reach the household.
    act_margin: timedelta = field(default=timedelta(hours=1))

    def __post_init__(self) -> None:
        if self.cooldown < timedelta(0) or self.storm_window < timedelta(0) or self.act_margin < timedelta(0):
            raise ValueError("cooldown, storm_window and act_margin cannot be negative")
        if self.storm_max < 1:
            raise ValueError("storm_max must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class PastAlert:
    """An earlier alert to the same household (what the cooldown and storm cap look at)."""

    device_id: str
    mode: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPlan:
    """The verdict: ``send`` False means suppressed; ``deliver_at`` later than now means held."""

    send: bool
    deliver_at: datetime
    channels: frozenset[str]
    rule: str
    reason: str

    @property
    def held(self) -> bool:
        return self.rule == "quiet_hours"


def quiet_until(now: datetime, prefs: DeliveryPrefs) -> datetime | None:
    """The end (UTC) of the quiet window ``now`` falls in, or None when it is not quiet."""
    if prefs.quiet is None:
        return None
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(prefs.timezone)
    local = now.astimezone(zone)
    t, start, end = local.time(), prefs.quiet.start, prefs.quiet.end
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # spans midnight
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    # Local wall time -> UTC; a DST gap resolves forward (fold=0), which is what a person expects.
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def plan_delivery(*, device_id: str, mode: str, urgency: Urgency, prefs: DeliveryPrefs,
                  past: Sequence[PastAlert], config: DeliveryConfig, now: datetime,
                  act_by: datetime | None = None) -> DeliveryPlan:
    """How (and whether) to deliver one notification; see the module docstring for the rules.

    ``act_by``: the notification is of no use after this time (a visit's start); quiet hours
    hold it at most until ``config.act_margin`` before it.
    """
    if urgency is Urgency.SAFETY:
        return DeliveryPlan(send=True, deliver_at=now, channels=prefs.channels, rule="safety",
                            reason="safety: delivered at once, quiet hours or not")
    if urgency is Urgency.ALERT:
        same = [a.at for a in past if a.device_id == device_id and a.mode == mode
                and now - a.at < config.cooldown]
        if same:
            return DeliveryPlan(send=False, deliver_at=now, channels=frozenset(), rule="cooldown",
                                reason=f"alerted about {device_id}/{mode} at {max(same):%Y-%m-%d %H:%M}Z, "
                                       f"inside the {config.cooldown.total_seconds() / 3600:g} h cooldown")
        recent = [a for a in past if now - a.at < config.storm_window]
        if len(recent) >= config.storm_max:
            return DeliveryPlan(send=False, deliver_at=now, channels=frozenset(), rule="storm",
                                reason=f"{len(recent)} alerts to this household in the last "
                                       f"{config.storm_window.total_seconds() / 3600:g} h")
    until = quiet_until(now, prefs)
    if until is not None and act_by is not None and act_by - config.act_margin < until:
        latest = act_by - config.act_margin
        if latest <= now:
            return DeliveryPlan(send=True, deliver_at=now, channels=prefs.channels, rule="timely",
                                reason=f"quiet hours until {until:%Y-%m-%d %H:%M}Z, but it concerns "
                                       f"{act_by:%Y-%m-%d %H:%M}Z: delivered now")
        return DeliveryPlan(send=True, deliver_at=latest, channels=prefs.channels, rule="quiet_hours",
                            reason=f"quiet hours: held until {latest:%Y-%m-%d %H:%M}Z, "
                                   f"{config.act_margin.total_seconds() / 60:g} min before "
                                   f"{act_by:%Y-%m-%d %H:%M}Z (quiet hours end {until:%H:%M}Z)")
    if until is not None:
        return DeliveryPlan(send=True, deliver_at=until, channels=prefs.channels, rule="quiet_hours",
                            reason=f"quiet hours: held until {until:%Y-%m-%d %H:%M}Z")
    return DeliveryPlan(send=True, deliver_at=now, channels=prefs.channels, rule="now", reason="delivered now")
