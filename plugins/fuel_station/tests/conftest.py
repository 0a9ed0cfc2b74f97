"""Fixtures for the fuel plugin's tests: the plugin registered, a fuel tenant with sites, helpers to send events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.plugin.manager import PluginManager
from core.testing import MakeTenant, TenantHandle, registering
from plugins import fuel_station


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(fuel_station.PLUGIN)


TENANT_TIMEZONE = ZoneInfo("Asia/Shanghai")


def anchor() -> datetime:
    """Now, or the last second of yesterday in the tenant's time zone when today there is younger than six hours.

    Fraud rules count per local day: a test sending fill-ups "two hours ago" and "now" just after local midnight would
    spread them over two days, and the test would depend on the hour it runs at."""
    now = datetime.now(UTC)
    local = now.astimezone(TENANT_TIMEZONE)
    if local.hour >= 6:
        return now
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(seconds=1)).astimezone(UTC)


def at(minutes: float = 0, *, days: float = 0) -> str:
    """An RFC 3339 time ``minutes`` (and ``days``) before the anchor (tests send events that already happened)."""
    return (anchor() - timedelta(days=days, minutes=minutes)).isoformat()


def fill_up(
    member: str,
    litres: str | float = "40",
    amount: str | float = "60",
    *,
    site: str = "S1",
    grade: str = "gasoline",
    event_id: str | None = None,
    occurred_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    attributes = {"site": site, "grade": grade, "pump": "3", "payment_method": "card"} | extra.pop("attributes", {})
    return {
        "type": "fuel.fill_up",
        "event_id": event_id or f"fu-{uuid.uuid4().hex[:12]}",
        "member": {"external_id": member},
        "occurred_at": occurred_at or at(),
        "quantity": str(litres),
        "unit": "litre",
        "amount": str(amount),
        "attributes": attributes,
    } | extra


def shop(member: str, amount: str | float = "5", *, site: str = "S1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "fuel.shop_purchase",
        "event_id": extra.pop("event_id", None) or f"sh-{uuid.uuid4().hex[:12]}",
        "member": {"external_id": member},
        "occurred_at": extra.pop("occurred_at", None) or at(),
        "amount": str(amount),
        "attributes": {"site": site, "category": "coffee"},
    } | extra


class Fuel:
    """A fuel tenant and shortcuts for its tests."""

    def __init__(self, tenant: TenantHandle) -> None:
        self.t = tenant

    async def settings(self, **values: Any) -> None:
        response = await self.t.patch("/v1/program", json={"plugins": ["fuel"], "plugin_settings": {"fuel": values}})
        assert response.status_code == 200, response.text

    async def site(self, code: str, **fields: Any) -> dict[str, Any]:
        response = await self.t.post("/v1/fuel/sites", json={"code": code, "name": f"Station {code}"} | fields)
        assert response.status_code == 201, response.text
        site: dict[str, Any] = response.json()
        return site

    async def member(self, external_id: str | None = None) -> dict[str, Any]:
        return await self.t.enrol(external_id or f"card-{uuid.uuid4().hex[:10]}")

    async def send(self, event: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = await self.t.post("/v1/events", json=event)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def available(self, member_id: str) -> int:
        return int((await self.t.balance(member_id))["available"])


@pytest.fixture
async def fuel(make_tenant: MakeTenant) -> Fuel:
    """A tenant (CNY, Asia/Shanghai) with the plugin enabled on its defaults and three participating sites; without
    the levels and expiry enabling seeds (tests set up the tiers they need; ``test_defaults.py`` covers seeding)."""
    tenant = await make_tenant(timezone=TENANT_TIMEZONE.key, currency="CNY", country="CN")
    helper = Fuel(tenant)
    await helper.settings(seed_defaults=False)
    for code in ("S1", "S2", "S3"):
        await helper.site(code)
    return helper
