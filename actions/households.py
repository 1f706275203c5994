"""Households (the homeowner account) and their preferences: channels, quiet hours, language, visits.

``HouseholdPrefs`` is what crosses the package boundary; ``prefs_of`` reads one from the database
(defaults when the household has no row yet), ``save_prefs`` validates and writes one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from .db import HouseholdRow
from .delivery import DeliveryPrefs, QuietHours, parse_hhmm
from .templates import LANGUAGES

__all__ = ["AvailabilityWindow", "HouseholdPrefs", "prefs_of", "save_prefs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AvailabilityWindow:
    """When someone is home for a visit, every week: weekdays (Monday 0) and local ``HH:MM`` times."""

    weekdays: frozenset[int]
    start: str
    end: str

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays are numbers 0 (Monday) to 6, at least one")
        if parse_hhmm(self.start) >= parse_hhmm(self.end):
            raise ValueError(f"availability window {self.start}-{self.end}: start must be before end")


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdPrefs:
    """A household's notification and visit preferences.

    ``webhook_secret`` signs webhook deliveries; hand homeowners ``public()``, which drops it.
    An empty ``availability`` means any time a technician works.
    """

    household_id: str
    name: str = ""
    language: str = "en"
    timezone: str = "UTC"
    quiet_start: str | None = None
    quiet_end: str | None = None
    channels: frozenset[str] = frozenset({"in_app"})
    webhook_url: str | None = None
    webhook_secret: str | None = None
    availability: tuple[AvailabilityWindow, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.household_id or len(self.household_id) > 64:
            raise ValueError("household_id must be 1-64 characters")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {list(LANGUAGES)}, got {self.language!r}")
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("set both quiet_start and quiet_end, or neither")
        if "webhook" in self.channels:
            if not self.webhook_url or not self.webhook_url.startswith(("http://", "https://")):
                raise ValueError("the webhook channel needs an http(s) webhook_url")
            if not self.webhook_secret or len(self.webhook_secret) < 16:
                raise ValueError("the webhook channel needs a webhook_secret of at least 16 characters")
        self.delivery  # validates time zone, quiet hours and channels

    @property
    def delivery(self) -> DeliveryPrefs:
        """The part the delivery policy reads."""
        quiet = None
        if self.quiet_start is not None and self.quiet_end is not None:
            quiet = QuietHours(start=parse_hhmm(self.quiet_start), end=parse_hhmm(self.quiet_end))
        return DeliveryPrefs(timezone=self.timezone, quiet=quiet, channels=self.channels)

    def public(self) -> HouseholdPrefs:
        """The same preferences without the webhook secret (for showing them; not valid to save)."""
        if not self.webhook_secret:
            return self
        shown = copy.copy(self)
        # Bypasses __post_init__ on purpose: a copy for display only, never saved.
        object.__setattr__(shown, "webhook_secret", None)
        return shown


def _from_row(row: HouseholdRow) -> HouseholdPrefs:
    return HouseholdPrefs(
        household_id=row.household_id, name=row.name, language=row.language, timezone=row.timezone,
        quiet_start=row.quiet_start, quiet_end=row.quiet_end, channels=frozenset(row.channels),
        webhook_url=row.webhook_url, webhook_secret=row.webhook_secret,
        availability=tuple(AvailabilityWindow(weekdays=frozenset(w["weekdays"]), start=w["start"], end=w["end"])
                           for w in row.availability))


def prefs_of(s: Session, household_id: str) -> HouseholdPrefs:
    """The household's preferences; defaults (English, UTC, in-app, no quiet hours) without a row."""
    row = s.get(HouseholdRow, household_id)
    return _from_row(row) if row is not None else HouseholdPrefs(household_id=household_id)


def save_prefs(s: Session, prefs: HouseholdPrefs, *, now: datetime) -> HouseholdPrefs:
    """Insert or replace the household's preferences."""
    row = s.get(HouseholdRow, prefs.household_id) or HouseholdRow(household_id=prefs.household_id)
    row.name, row.language, row.timezone = prefs.name, prefs.language, prefs.timezone
    row.quiet_start, row.quiet_end = prefs.quiet_start, prefs.quiet_end
    row.channels = sorted(prefs.channels)
    row.webhook_url, row.webhook_secret = prefs.webhook_url, prefs.webhook_secret
    row.availability = [{"weekdays": sorted(w.weekdays), "start": w.start, "end": w.end}
                        for w in prefs.availability]
    row.updated_at = now
    s.add(row)
    s.flush()
    return _from_row(row)
