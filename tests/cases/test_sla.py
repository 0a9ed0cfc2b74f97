"""SLA due times: elapsed round the clock, or only within the tenant's local business hours and outside its
holidays, right across DST changes (pure, then through the API with the clock travelled)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine

from core.cases.sla import BusinessHours, due_at
from core.testing import TenantHandle

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = BusinessHours(frozenset({1, 2, 3, 4, 5}), time(9), time(18))


@pytest.mark.parametrize(
    ("start", "minutes", "hours", "holidays", "due"),
    [
        # Round the clock: elapsed hours, whatever the DST change (Paris springs forward on 29 March 2026).
        (datetime(2026, 3, 28, 12, tzinfo=UTC), 24 * 60, None, (), datetime(2026, 3, 29, 12, tzinfo=UTC)),
        # Friday 17:00 Paris (16:00 UTC), 4 working hours: 1 on Friday, 3 on Monday from 09:00 -> 12:00 Paris.
        # Monday 30 March is after the change: 12:00 CEST is 10:00 UTC.
        (datetime(2026, 3, 27, 16, tzinfo=UTC), 240, WEEKDAYS, (), datetime(2026, 3, 30, 10, tzinfo=UTC)),
        # The same across the autumn change (25 October 2026): Monday 12:00 CET is 11:00 UTC.
        (datetime(2026, 10, 23, 15, tzinfo=UTC), 240, WEEKDAYS, (), datetime(2026, 10, 26, 11, tzinfo=UTC)),
        # Opened on Saturday: the clock starts Monday 09:00.
        (datetime(2026, 3, 28, 10, tzinfo=UTC), 60, WEEKDAYS, (), datetime(2026, 3, 30, 8, tzinfo=UTC)),
        # Opened before opening time: from 09:00 that day.
        (datetime(2026, 3, 31, 5, tzinfo=UTC), 30, WEEKDAYS, (), datetime(2026, 3, 31, 7, 30, tzinfo=UTC)),
        # A holiday Monday is skipped: Tuesday 12:00 CEST.
        (
            datetime(2026, 3, 27, 16, tzinfo=UTC),
            240,
            WEEKDAYS,
            {date(2026, 3, 30)},
            datetime(2026, 3, 31, 10, tzinfo=UTC),
        ),
        # Two full working days (18 h) from Monday 09:00: Tuesday 18:00 CEST.
        (datetime(2026, 3, 30, 7, tzinfo=UTC), 18 * 60, WEEKDAYS, (), datetime(2026, 3, 31, 16, tzinfo=UTC)),
    ],
)
def test_due_at(start: datetime, minutes: int, hours: BusinessHours | None, holidays: set, due: datetime) -> None:
    assert due_at(start, minutes, PARIS, hours, holidays) == due


def test_a_calendar_without_working_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="no working time"):
        due_at(datetime(2026, 1, 1, tzinfo=UTC), 60, PARIS, BusinessHours(frozenset(), time(9), time(18)))


async def test_due_times_through_the_api_with_business_hours_and_the_calendar(make_tenant) -> None:
    t: TenantHandle = await make_tenant(timezone="Europe/Paris", country="FR")
    await t.post("/v1/care/calendar", json={"day": "2026-03-30", "name": "Company day"})
    created = await t.post(
        "/v1/case-categories",
        json={
            "code": "billing",
            "names": {"en": "Billing"},
            "first_reply_hours": 4,
            "resolution_hours": 1,
            "business_hours": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00", "holidays": True},
        },
    )
    assert created.status_code == 201, created.text
    member = await t.enrol()
    with time_machine.travel(datetime(2026, 3, 27, 16, tzinfo=UTC), tick=False):
        case = (
            await t.post(
                "/v1/cases", json={"member_id": member["id"], "subject": "Charged twice", "category": "billing"}
            )
        ).json()
    # Friday 17:00 Paris: 1 h left on Friday; Monday is the tenant's holiday; Tuesday 09:00 CEST + 3 h.
    assert case["first_reply_due_at"] == "2026-03-31T10:00:00Z"
    assert case["resolution_due_at"] == "2026-03-27T17:00:00Z"
    # Classified later: the clocks still count from when it was received.
    with time_machine.travel(datetime(2026, 3, 27, 16, tzinfo=UTC), tick=False):
        later = (await t.post("/v1/cases", json={"member_id": member["id"], "subject": "Again"})).json()
    with time_machine.travel(datetime(2026, 4, 2, 9, tzinfo=UTC), tick=False):
        classified = await t.post(f"/v1/cases/{later['id']}/classify", json={"category": "billing"})
    assert classified.json()["first_reply_due_at"] == "2026-03-31T10:00:00Z"
