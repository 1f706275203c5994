"""Pure technician slot finding: who can come, and when, before the deadline. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["SLOT", "Slot", "Technician", "availability_intervals", "find_slot", "slot_starts"]

#: The unit a booking claims in ``booking_slots``: bookings start on the hour and last whole hours.
SLOT = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Technician:
    """A technician: skills, the service areas covered and the working week (hours in UTC)."""

    technician_id: str
    name: str
    skills: frozenset[str]
    service_areas: frozenset[str]
    #: ``(start_hour, end_hour)`` UTC, end exclusive: ``(8, 17)`` works 08:00–17:00.
    working_hours: tuple[int, int] = (8, 17)
    #: ``datetime.weekday()`` numbers: Monday is 0.
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    #: At most this many visits per (UTC) day.
    max_jobs_per_day: int = 6

    def __post_init__(self) -> None:
        if self.max_jobs_per_day < 1:
            raise ValueError("max_jobs_per_day must be at least 1")
        start, end = self.working_hours
        if not 0 <= start < end <= 24:
            raise ValueError(f"working_hours must satisfy 0 <= start < end <= 24, got {self.working_hours}")
        if not self.working_days <= frozenset(range(7)):
            raise ValueError("working_days are weekday numbers 0..6")

    def works_at(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` lies within one of this technician's working days."""
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first, last = self.working_hours
        return (day.weekday() in self.working_days
                and day + timedelta(hours=first) <= start
                and end <= day + timedelta(hours=last))


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """A free slot of one technician."""

    technician_id: str
    start: datetime
    end: datetime


def find_slot(*, technicians: Sequence[Technician],
              busy: Mapping[str, Sequence[tuple[datetime, datetime]]],
              service_area: str, skill: str, earliest: datetime, deadline: datetime,
              duration: timedelta,
              availability: Sequence[tuple[datetime, datetime]] | None = None,
              jobs_per_day: Mapping[tuple[str, date], int] | None = None,
              exclude: frozenset[tuple[str, datetime]] = frozenset()) -> Slot | None:
    """The earliest on-the-hour slot of a qualified technician that ends by ``deadline``.

    Qualified: has ``skill`` and covers ``service_area``. The slot lies within the technician's
    working hours, overlaps none of their ``busy`` intervals, lies inside one of the homeowner's
    ``availability`` intervals (None: any time), and the technician has fewer than
    ``max_jobs_per_day`` jobs that day (``jobs_per_day`` counts them per (technician, UTC date)).
    ``exclude`` skips (technician, start) pairs (a slot just lost to a concurrent booking).
    Ties go to the lowest technician id. None when nobody can come before the deadline.
    """
    if earliest.tzinfo is None or deadline.tzinfo is None:
        raise ValueError("earliest and deadline must be timezone-aware")
    if duration <= timedelta(0) or duration % SLOT:
        raise ValueError(f"duration must be a positive multiple of {SLOT}")
    counts = jobs_per_day or {}
    qualified = sorted((t for t in technicians
                        if skill in t.skills and service_area in t.service_areas),
                       key=lambda t: t.technician_id)
    if not qualified:
        return None
    start = _ceil_hour(earliest.astimezone(UTC))
    while start + duration <= deadline:
        end = start + duration
        home = availability is None or any(a <= start and end <= b for a, b in availability)
        for tech in qualified if home else ():
            if ((tech.technician_id, start) not in exclude and tech.works_at(start, end)
                    and counts.get((tech.technician_id, start.date()), 0) < tech.max_jobs_per_day
                    and not any(b_start < end and start < b_end
                                for b_start, b_end in busy.get(tech.technician_id, ()))):
                return Slot(technician_id=tech.technician_id, start=start, end=end)
        start += SLOT
    return None


def slot_starts(start: datetime, end: datetime) -> list[datetime]:
    """The ``SLOT`` units ``[start, end)`` claims (``booking_slots`` rows)."""
    out, t = [], start
    while t < end:
        out.append(t)
        t += SLOT
    return out


def availability_intervals(windows: Sequence[tuple[frozenset[int], time, time]], *, timezone: str,
                           start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Weekly local windows ``(weekdays, from, to)`` as concrete UTC intervals overlapping ``[start, end)``."""
    zone = ZoneInfo(timezone)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out = []
    while day <= last:
        for weekdays, t_from, t_to in windows:
            if day.weekday() in weekdays:
                a = datetime.combine(day, t_from, tzinfo=zone).astimezone(UTC)
                b = datetime.combine(day, t_to, tzinfo=zone).astimezone(UTC)
                if a < end and start < b:
                    out.append((a, b))
        day += timedelta(days=1)
    return sorted(out)


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)
