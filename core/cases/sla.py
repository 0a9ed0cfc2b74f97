"""SLA clocks (pure): when a case's first reply or resolution is due.

Round the clock, an SLA of N hours is N elapsed hours (a DST change does not stretch or shrink it). With business
hours, only time inside the tenant's local working windows counts (``days`` as ISO weekdays, ``start``-``end`` wall
clock in the tenant's zone, so a window is right across DST changes) and, when ``holidays`` is set, never on a day of
the tenant's calendar (the care engine's, ``core.care.calendar``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.care.policy import local_instant

#: Never look further than this for working time (a calendar with no working day at all).
_MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class BusinessHours:
    days: frozenset[int]
    start: time
    end: time
    holidays: bool = True

    @classmethod
    def of(cls, value: dict[str, object] | None) -> BusinessHours | None:
        if not value:
            return None
        days = value.get("days") or [1, 2, 3, 4, 5]
        assert isinstance(days, list)
        return cls(
            frozenset(int(d) for d in days),
            time.fromisoformat(str(value.get("start", "09:00"))),
            time.fromisoformat(str(value.get("end", "18:00"))),
            bool(value.get("holidays", True)),
        )


def due_at(
    start: datetime,
    minutes: int,
    zone: ZoneInfo,
    hours: BusinessHours | None = None,
    holidays: Collection[date] = (),
) -> datetime:
    """The instant ``minutes`` of SLA time after ``start`` (aware): elapsed time, or working time within ``hours``."""
    if hours is None:
        return (start + timedelta(minutes=minutes)).astimezone(UTC)
    remaining = timedelta(minutes=minutes)
    day = start.astimezone(zone).date()
    for _ in range(_MAX_DAYS):
        if day.isoweekday() in hours.days and not (hours.holidays and day in holidays):
            opens = local_instant(day, hours.start, zone)
            closes = local_instant(day, hours.end, zone)
            begin = max(opens, start)
            if closes > begin:
                available = closes - begin
                if available >= remaining:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("no working time within three years: check the business hours and the calendar")


def years_spanned(start: datetime, minutes: int, hours: BusinessHours | None) -> range:
    """The calendar years whose holidays can matter for a due time from ``start`` (to load them in one query)."""
    if hours is None:
        return range(start.year, start.year + 1)
    # Working time is at most a third of elapsed time in a plain week; holidays stretch it: look two years ahead.
    return range(start.year, start.year + 2 + minutes // (365 * 24 * 60))
