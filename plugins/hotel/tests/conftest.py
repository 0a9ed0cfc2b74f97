"""Fixtures for the hotel plugin's tests: the plugin registered, a tenant that enabled it, stay events."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from core.plugin.manager import PluginManager
from core.testing import MakeTenant, TenantHandle, registering
from plugins import hotel

LONDON = ZoneInfo("Europe/London")
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(hotel.PLUGIN)


@pytest.fixture(autouse=True)
def late_in_the_year() -> Iterator[None]:
    """Stays a few months back fall in this calendar year whatever the day the suite runs: the clock is moved
    forward (never back: ids are time-ordered) to mid-November when it is earlier in the year."""
    now = datetime.now(UTC)
    target = max(now, datetime(now.year, 11, 15, 12, tzinfo=UTC))
    with time_machine.travel(target, tick=True):
        yield


async def enable_hotel(tenant: TenantHandle, **settings: Any) -> TenantHandle:
    """Enable the plugin with these settings; without the defaults it seeds (tiers, expiry) unless
    ``seed_defaults=True`` is given: most tests set up the tiers they need themselves."""
    body: dict[str, Any] = {"plugins": ["hotel"], "plugin_settings": {"hotel": {"seed_defaults": False} | settings}}
    response = await tenant.patch("/v1/program", json=body)
    assert response.status_code == 200, response.text
    return tenant


@pytest.fixture
async def hotel_tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A hotel group in London (GBP) with the plugin enabled on its default settings (nothing seeded)."""
    return await enable_hotel(await make_tenant())


def today() -> date:
    return datetime.now(UTC).astimezone(LONDON).date()


def stay(
    member: str,
    *,
    reservation: str | None = None,
    status: str = "checked_out",
    check_in: date | None = None,
    nights: int = 2,
    check_out: date | None = None,
    folio: list[dict[str, Any]] | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    currency: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """A ``hotel.stay`` event; by default a 2-night stay that checked out today, room 100 a night."""
    if check_out is None:
        check_out = (check_in + timedelta(days=nights)) if check_in else today()
    if check_in is None:
        check_in = check_out - timedelta(days=nights)
    reservation = reservation or f"R-{next(_ids)}"
    if folio is None:
        folio = [{"category": "room", "amount": "100.00", "tax": "20.00"}] * max(1, (check_out - check_in).days)
    if occurred_at is None:
        occurred_at = min(
            datetime.now(UTC), datetime.combine(max(check_out, check_in), time(11), tzinfo=LONDON).astimezone(UTC)
        )
        if status == "checked_out":
            occurred_at = max(occurred_at, datetime.combine(check_out, time(11), tzinfo=LONDON).astimezone(UTC))
            occurred_at = min(occurred_at, datetime.now(UTC))
    event: dict[str, Any] = {
        "type": "hotel.stay",
        "event_id": event_id or f"{reservation}:{status}:{next(_ids)}",
        "member": {"external_id": member},
        "occurred_at": occurred_at.isoformat(),
        "attributes": {
            "reservation_id": reservation,
            "property": "LON-1",
            "check_in": check_in.isoformat(),
            "check_out": check_out.isoformat(),
            "status": status,
            "folio": folio,
            **attributes,
        },
    }
    if currency:
        event["currency"] = currency
    return event


async def send(tenant: TenantHandle, event: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await tenant.post("/v1/events", json=event)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result
