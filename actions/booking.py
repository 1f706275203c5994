"""Pure technician slot finding: who can come, and when, before the deadline. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Slot", "Technician", "find_slot"]


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

    def __post_init__(self) -> None:
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
              duration: timedelta) -> Slot | None:
    """The earliest on-the-hour slot of a qualified technician that ends by ``deadline``.

    Qualified: has ``skill`` and covers ``service_area``. The slot lies within the technician's
    working hours and overlaps none of their ``busy`` intervals. Ties go to the lowest
    technician id. None when nobody can come before the deadline.
    """
    if earliest.tzinfo is None or deadline.tzinfo is None:
        raise ValueError("earliest and deadline must be timezone-aware")
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    qualified = sorted((t for t in technicians
                        if skill in t.skills and service_area in t.service_areas),
                       key=lambda t: t.technician_id)
    if not qualified:
        return None
    start = _ceil_hour(earliest.astimezone(UTC))
    while start + duration <= deadline:
        end = start + duration
        for tech in qualified:
            if tech.works_at(start, end) and not any(
                    b_start < end and start < b_end for b_start, b_end in busy.get(tech.technician_id, ())):
                return Slot(technician_id=tech.technician_id, start=start, end=end)
        start += timedelta(hours=1)
    return None


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)
