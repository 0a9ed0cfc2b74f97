"""Enabling the plugin sets up DOMAIN's defaults through core (``fealty_plugin_enabled``): the Silver / Gold / Diamond
ladder per calendar year, valid until the end of February of year N+2, and points expiring after 24 months without
activity; never over what the tenant configured, and not at all with ``seed_defaults: false``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.testing import MakeTenant, TenantHandle
from plugins.hotel.tests.conftest import send, stay, today


async def enable(t: TenantHandle, **body: Any) -> Any:
    return await t.patch("/v1/program", json={"plugins": ["hotel"]} | body)


async def tiers(t: TenantHandle) -> list[dict]:
    response = await t.get("/v1/tiers")
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()
    return items


def criteria(tier: dict) -> dict[str, str]:
    return {c["metric"]: c["min"] for c in tier["qualification"]["criteria"]}


async def test_enabling_seeds_the_status_ladder_and_the_inactivity_expiry(tenant: TenantHandle) -> None:
    response = await enable(tenant)
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == {"kind": "inactivity", "value": 24}
    ladder = await tiers(tenant)
    assert [(t["code"], t["name"], t["rank"]) for t in ladder] == [
        ("silver", "Silver", 1),
        ("gold", "Gold", 2),
        ("diamond", "Diamond", 3),
    ]
    assert [criteria(t) for t in ladder] == [
        {"nights": "10", "stays": "4", "hotel_base_points": "25000"},
        {"nights": "40", "stays": "20", "hotel_base_points": "75000"},
        {"nights": "60", "stays": "30", "hotel_base_points": "120000"},
    ]
    for tier in ladder:
        # (core omits the defaults: a calendar-year window)
        assert tier["qualification"]["window"] == {} and tier["qualification"]["mode"] == "any"
        assert tier["validity"] == {"kind": "fixed_date", "years_after": 2, "month": 2, "day": 29}
    # The ladder works: ten nights this year are Silver until the end of February of year N+2.
    await tenant.enrol("g-1")
    cheap = [{"category": "room", "amount": "50"}] * 10
    out = await send(tenant, stay("g-1", nights=10, check_in=today() - timedelta(days=12), folio=cheap))
    assert out["tier"]["to"] == "silver"
    assert out["tier"]["valid_until"] == f"{today().year + 2}-03-01T00:00:00+00:00"  # the end of 28/29 February
    # The Diamond of the ladder has the top tier's perks and bonus by default.
    settings = (await tenant.get("/v1/program")).json()["plugin_settings"]["hotel"]
    assert settings["tier_bonus_percent"]["diamond"] == 75 and settings["perks"]["diamond"]["butler"] is True
    assert "diamond" in settings["pre_arrival_tiers"]


async def test_the_seeded_ladder_follows_the_settings(tenant: TenantHandle) -> None:
    hotel = {
        "status_valid_until": "march_31",
        "status_valid_years_after": 1,
        "inactivity_expiry_months": 36,
        "status_tiers": [{"code": "blue", "name": "Blue", "nights": 5, "stays": 2, "base_points": 10000}],
    }
    response = await enable(tenant, plugin_settings={"hotel": hotel})
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == {"kind": "inactivity", "value": 36}
    [blue] = await tiers(tenant)
    assert (blue["code"], criteria(blue)) == ("blue", {"nights": "5", "stays": "2", "hotel_base_points": "10000"})
    assert blue["validity"] == {"kind": "fixed_date", "month": 3}  # core omits its defaults: 1 year after, day 31


async def test_an_existing_configuration_is_never_overwritten(tenant: TenantHandle) -> None:
    mine = {"code": "member", "name": "Member", "rank": 0}
    assert (await tenant.post("/v1/tiers", json=mine)).status_code == 201
    assert (
        await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 365}})
    ).status_code == 200
    response = await enable(tenant)
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == {"kind": "days_after_earn", "value": 365}
    assert [t["code"] for t in await tiers(tenant)] == ["member"]


async def test_an_expiry_sent_with_the_plugins_is_kept_and_tiers_still_seeded(tenant: TenantHandle) -> None:
    response = await enable(tenant, expiry_policy={"kind": "end_of_month_after", "value": 12})
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == {"kind": "end_of_month_after", "value": 12}
    assert [t["code"] for t in await tiers(tenant)] == ["silver", "gold", "diamond"]


async def test_a_tenant_can_opt_out(tenant: TenantHandle) -> None:
    response = await enable(tenant, plugin_settings={"hotel": {"seed_defaults": False}})
    assert response.status_code == 200, response.text
    assert response.json()["expiry_policy"] == {"kind": "never", "value": None}
    assert await tiers(tenant) == []


async def test_seeding_happens_once_when_enabled_not_on_later_changes(tenant: TenantHandle) -> None:
    assert (await enable(tenant)).status_code == 200
    for tier in await tiers(tenant):
        assert (await tenant.delete(f"/v1/tiers/{tier['id']}")).status_code == 200
    assert (await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "never"}})).status_code == 200
    # New settings for the enabled plugin: no new seeding.
    changed = await enable(tenant, plugin_settings={"hotel": {"posting_delay_days": 2}})
    assert changed.status_code == 200 and changed.json()["expiry_policy"]["kind"] == "never"
    assert await tiers(tenant) == []
    # Disabled and enabled again with tiers of its own: they stay as they are.
    assert (await tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 5})).status_code == 201
    assert (await tenant.patch("/v1/program", json={"plugins": []})).status_code == 200
    again = await enable(tenant)
    assert again.status_code == 200, again.text
    assert [(t["code"], t["rank"]) for t in await tiers(tenant)] == [("gold", 5)]
    assert again.json()["expiry_policy"] == {"kind": "inactivity", "value": 24}  # it was `never` again


async def test_bad_ladder_settings_are_refused_and_nothing_is_kept(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    twice = [{"code": "silver", "name": "Silver", "nights": 10, "stays": 4, "base_points": 25000}] * 2
    response = await enable(tenant, plugin_settings={"hotel": {"status_tiers": twice}})
    assert response.status_code == 422 and response.json()["field"] == "plugin_settings.hotel.status_tiers"
    bad_code = [{"code": "Silver!", "name": "Silver", "nights": 10, "stays": 4, "base_points": 25000}]
    response = await enable(tenant, plugin_settings={"hotel": {"status_tiers": bad_code}})
    assert response.status_code == 422 and response.json()["field"] == "plugin_settings.hotel.status_tiers[0].code"
    program = (await tenant.get("/v1/program")).json()
    assert program["plugins"] == [] and program["expiry_policy"]["kind"] == "never"
    assert await tiers(tenant) == []
