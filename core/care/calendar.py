"""The tenant's holiday calendar: its own days, or its country's public holidays (the ``holidays`` library) for a year
it has not set itself."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import holidays
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.models import CareHoliday
from core.db.base import table_of

calendar_table = table_of(CareHoliday)


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str
    source: str
    id: uuid.UUID | None = None


def country_holidays(country: str, year: int) -> list[Holiday]:
    """The public holidays of ``country`` (ISO 3166 alpha-2) in ``year``; [] for a country the library lacks."""
    return list(_country_holidays(country.upper(), year))


@functools.lru_cache(maxsize=256)
def _country_holidays(country: str, year: int) -> tuple[Holiday, ...]:
    # Computed once per process and year: the library's calendars (China's lunar ones above all) take milliseconds,
    # and the care engine asks for them for every batch it queues.
    try:
        found = holidays.country_holidays(country, years=year)
    except NotImplementedError:
        return ()
    days = (Holiday(day, str(name), f"country:{country}") for day, name in found.items())
    return tuple(sorted(days, key=lambda h: h.day))


def has_country(country: str) -> bool:
    return country.upper() in holidays.list_supported_countries()


async def holidays_in(
    session: AsyncSession, tenant_id: uuid.UUID, years: Iterable[int], country: str | None
) -> list[Holiday]:
    """The tenant's calendar for ``years``: its own days where it set any for that year, else its country's."""
    wanted = sorted(set(years))
    if not wanted:
        return []
    rows = (
        await session.execute(
            select(calendar_table).where(
                calendar_table.c.tenant_id == tenant_id,
                calendar_table.c.day >= date(wanted[0], 1, 1),
                calendar_table.c.day <= date(wanted[-1], 12, 31),
            )
        )
    ).all()
    own = [Holiday(r.day, r.name, r.source, r.id) for r in rows if r.day.year in wanted]
    result = list(own)
    covered = {h.day.year for h in own}
    for year in wanted:
        if year not in covered and country:
            result.extend(country_holidays(country, year))
    return sorted(result, key=lambda h: h.day)
