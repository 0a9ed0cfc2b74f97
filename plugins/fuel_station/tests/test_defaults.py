"""Enabling the plugin sets up DOMAIN's defaults through core (``fealty_plugin_enabled``): Circle K's levels on 90-day
spend (0-150 / 150-300 / 300+) and points expiring 90 days after earning; never over what the tenant configured, and
not at all with ``seed_defaults: false``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from core.worker import tick
from plugins.fuel_station.tests.conftest import TENANT_TIMEZONE, Fuel, fill_up, shop


async def fuel_tenant(make_tenant: MakeTenant, **fuel_settings: Any) -> Fuel:
    """A CNY tenant that enables the plugin through ``PATCH /v1/program`` (with these settings), with a site S1."""
    tenant = await make_tenant(timezone=TENANT_TIMEZONE.key, currency="CNY", country="CN")
    fuel = Fuel(tenant)
    await fuel.settings(**fuel_settings)
    await fuel.site("S1")
    return fuel


async def tiers(t: TenantHandle) -> list[dict]:
    response = await t.get("/v1/tiers")
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()
    return items


async def test_enabling_seeds_the_spend_levels_and_the_90_day_expiry(make_tenant: MakeTenant) -> None:
    fuel = await fuel_tenant(make_tenant)
    program = (await fuel.t.get("/v1/program")).json()
    assert program["expiry_policy"] == {"kind": "days_after_earn", "value": 90}
    levels = await tiers(fuel.t)
    assert [(t["code"], t["rank"], t["downgrade"]) for t in levels] == [
        ("member", 0, "to_qualified"),
        ("silver", 1, "to_qualified"),
        ("gold", 2, "to_qualified"),
    ]
    assert levels[0]["qualification"]["criteria"] == [] and levels[0]["validity"] == {}  # everyone, for good
    for level, minimum in zip(levels[1:], ("150", "300"), strict=True):
        assert level["qualification"]["window"] == {"kind": "rolling_days", "days": 90}
        assert level["qualification"]["criteria"] == [{"metric": "spend", "min": minimum}]
        assert level["validity"] == {"kind": "days", "days": 30}
    # The ladder works on fuel and shop spend together.
    member = await fuel.member("card-1")
    first = await fuel.send(fill_up("card-1", "20", "100"))
    state = (await fuel.t.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "member" and (first["tier"] is None or first["tier"]["to"] == "member")
    second = await fuel.send(shop("card-1", "60"))
    assert second["tier"]["to"] == "silver"  # 160 in 90 days
    third = await fuel.send(shop("card-1", "140"))
    assert third["tier"]["to"] == "gold"  # 300


async def test_seeded_expiry_takes_points_90_days_after_earning(make_tenant: MakeTenant, runtime: Runtime) -> None:
    fuel = await fuel_tenant(make_tenant)
    member = await fuel.member("card-1")
    earned = await fuel.send(fill_up("card-1", "40", "300"))
    assert earned["points"] == 40
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(days=89), tick=False):
        await tick(runtime, fuel.t.id)
        assert await fuel.available(member["id"]) == 40
    with time_machine.travel(start + timedelta(days=91), tick=False):
        await tick(runtime, fuel.t.id)
        balance = await fuel.t.balance(member["id"])
    assert balance["available"] == 0 and balance["lifetime"]["expired"] == 40


async def test_a_tenant_created_with_the_plugin_is_seeded_too(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant(plugins=["fuel"], timezone=TENANT_TIMEZONE.key, currency="CNY")
    assert [t["code"] for t in await tiers(tenant)] == ["member", "silver", "gold"]
    assert (await tenant.get("/v1/program")).json()["expiry_policy"] == {"kind": "days_after_earn", "value": 90}


async def test_an_existing_configuration_is_never_overwritten(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant(timezone=TENANT_TIMEZONE.key, currency="CNY")
    mine = {"code": "vip", "name": "VIP", "rank": 3}
    assert (await tenant.post("/v1/tiers", json=mine)).status_code == 201
    policy = {"kind": "end_of_month_after", "value": 1}
    assert (await tenant.patch("/v1/program", json={"expiry_policy": policy})).status_code == 200
    response = await tenant.patch("/v1/program", json={"plugins": ["fuel"]})
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == policy
    assert [(t["code"], t["rank"]) for t in await tiers(tenant)] == [("vip", 3)]


async def test_the_seeded_ladder_follows_the_settings_and_can_be_turned_off(make_tenant: MakeTenant) -> None:
    litres = await fuel_tenant(
        make_tenant,
        level_metric="litres",
        level_window_days=180,
        level_review_days=90,
        points_expiry_days=365,
        levels=[{"code": "blue", "name": "Blue", "min": "500"}],
    )
    [blue] = await tiers(litres.t)
    assert (blue["code"], blue["rank"], blue["qualification"]["criteria"]) == (
        "blue",
        0,
        [{"metric": "litres", "min": "500"}],
    )
    assert blue["qualification"]["window"] == {"kind": "rolling_days", "days": 180}
    assert blue["validity"] == {"kind": "days", "days": 90}
    assert (await litres.t.get("/v1/program")).json()["expiry_policy"] == {"kind": "days_after_earn", "value": 365}
    off = await fuel_tenant(make_tenant, seed_defaults=False)
    assert await tiers(off.t) == []
    assert (await off.t.get("/v1/program")).json()["expiry_policy"] == {"kind": "never", "value": None}


async def test_new_members_can_start_on_the_seeded_gold(make_tenant: MakeTenant) -> None:
    fuel = await fuel_tenant(make_tenant, new_member_level="gold")
    member = await fuel.member("card-1")
    state = (await fuel.t.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "gold" and state["floor"]["code"] == "gold"


async def test_bad_levels_are_refused_and_nothing_is_kept(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant(timezone=TENANT_TIMEZONE.key, currency="CNY")
    for levels, field in (
        ([{"code": "a", "name": "A", "min": "300"}, {"code": "b", "name": "B", "min": "150"}], "levels"),
        ([{"code": "a", "name": "A"}, {"code": "a", "name": "B", "min": "150"}], "levels"),
        ([{"code": "a", "name": "A", "min": "-1"}], "levels[0].min"),
        ([{"code": "Gold!", "name": "A"}], "levels[0].code"),
    ):
        response = await tenant.patch(
            "/v1/program", json={"plugins": ["fuel"], "plugin_settings": {"fuel": {"levels": levels}}}
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"] == f"plugin_settings.fuel.{field}"
    program = (await tenant.get("/v1/program")).json()
    assert program["plugins"] == [] and program["expiry_policy"]["kind"] == "never"
    assert await tiers(tenant) == []
