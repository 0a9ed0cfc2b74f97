"""Every fuel route: 404 with another tenant's ids, and 404 altogether for tenants without the plugin."""

from __future__ import annotations

import re

from core.testing import AppClient, MakeTenant
from plugins.fuel_station.tests.conftest import Fuel, fill_up

PATH_PARAMS = {"site_id": "site", "event_id": "event", "redemption_id": "redemption"}
BODIES = {
    "fuelUpdateSite": {"name": "pwned", "participating": False},
    "fuelApproveReview": {"reason": "pwned"},
    "fuelRejectReview": {"reason": "pwned"},
    "fuelApplyCentsOff": {"litres": "40", "price_per_litre": "7"},
    "fuelCreateSite": {"code": "X1", "name": "x"},
}


async def fuel_tenant(make_tenant: MakeTenant) -> Fuel:
    fuel = Fuel(await make_tenant(plugins=["fuel"], currency="CNY", timezone="Asia/Shanghai"))
    await fuel.settings()
    return fuel


async def test_every_fuel_route_answers_404_for_another_tenants_ids(client: AppClient, make_tenant: MakeTenant) -> None:
    victim = await fuel_tenant(make_tenant)
    site = await victim.site("VICTIM-1")
    member = await victim.member("victim-card")
    held = await victim.send(fill_up("victim-card", "120", "900", site="VICTIM-1"))
    await victim.t.credit(member["id"], 1000)
    reward = (
        await victim.t.post(
            "/v1/rewards", json={"code": "V", "name": "v", "points_cost": 1000, "kind": "fuel.cents_off"}
        )
    ).json()
    redemption = (
        await victim.t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": reward["id"]})
    ).json()
    ids = {"site": site["id"], "event": held["id"], "redemption": redemption["id"]}

    attacker = await fuel_tenant(make_tenant)
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        if not path.startswith("/v1/fuel/") or not params:
            continue
        url = path
        for p in params:
            url = url.replace("{" + p + "}", ids[PATH_PARAMS[p]])
        for method, operation in operations.items():
            body = BODIES.get(operation["operationId"], {}) if method in ("post", "patch", "put") else None
            response = await attacker.t.client.request(method.upper(), url, json=body, headers=attacker.t.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code} {response.text}"
            assert "victim" not in response.text.lower()
            tried += 1
    assert tried >= 6
    assert (await victim.t.get(f"/v1/fuel/sites/{site['id']}")).json()["participating"] is True
    assert (await victim.t.get("/v1/fuel/reviews")).json()["items"][0]["id"] == held["id"]
    assert (await victim.t.get(f"/v1/redemptions/{redemption['id']}")).json()["status"] == "issued"
    assert await victim.available(member["id"]) == 0
    # lists show only the attacker's own rows
    assert (await attacker.t.get("/v1/fuel/sites")).json()["items"] == []
    assert (await attacker.t.get("/v1/fuel/reviews", params={"status": "all"})).json()["items"] == []
    assert (await attacker.t.get("/v1/fuel/reports/retention")).json()["sites"] == []


async def test_tenants_without_the_plugin_see_none_of_it(client: AppClient, make_tenant: MakeTenant) -> None:
    plain = await make_tenant()
    await plain.enrol("card-1")
    schema = (await client.get("/schema/openapi.json")).json()
    fuel_paths = [p for p in schema["paths"] if p.startswith("/v1/fuel/")]
    assert len(fuel_paths) >= 7
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/fuel/"):
            continue
        url = re.sub(r"{\w+}", "01a20000-0000-7000-8000-000000000000", path)
        for method, operation in operations.items():
            body = BODIES.get(operation["operationId"], {}) if method in ("post", "patch", "put") else None
            response = await plain.client.request(method.upper(), url, json=body, headers=plain.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
    event = await plain.post("/v1/events", json=fill_up("card-1"))
    assert event.status_code == 422 and event.json()["field"] == "type"
