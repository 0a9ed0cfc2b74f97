"""Every utility route tried with another utility tenant's ids: 404, and nothing of the victim changes; a tenant
without the plugin gets 404 from every route."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from core.testing import AppClient, MakeTenant
from plugins.utility.tests.conftest import account, enable_utility, outage

PATH_PARAMS = {"account_id": "account", "outage_id": "outage", "task_id": "task", "peak_event_id": "peak"}


async def test_every_utility_route_answers_404_for_another_tenants_ids(
    client: AppClient, make_tenant: MakeTenant
) -> None:
    attacker = await enable_utility(await make_tenant())
    victim = await enable_utility(await make_tenant())
    mine = await account(attacker)
    theirs = await account(victim, psr={"needs": ["medical_equipment"], "consent": True, "source": "call"})
    started = datetime.now(UTC) - timedelta(hours=20)
    out = await outage(victim, starts_at=started.isoformat(), etr=None)
    restored = await victim.post(f"/v1/utility/outages/{out['id']}/restore", json={})
    assert restored.status_code == 200
    [task] = (await victim.get("/v1/utility/call-tasks")).json()["items"]
    peak = await victim.post(
        "/v1/utility/peak-events",
        json={
            "name": "Evening peak",
            "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "ends_at": (datetime.now(UTC) + timedelta(days=2, hours=3)).isoformat(),
            "feeders": ["F1"],
        },
    )
    ids = {"account": theirs["id"], "outage": out["id"], "task": task["id"], "peak": peak.json().get("id", "")}
    bodies = {
        "utilityClaimCompensation": {"account_id": mine["id"]},
        "utilityRestoreOutage": {},
        "utilityRestoreAccount": {},
        "utilityCompleteCallTask": {},
    }
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/utility/"):
            continue
        params = re.findall(r"{(\w+)}", path)
        if not params:
            continue
        unknown = [p for p in params if p not in PATH_PARAMS]
        assert not unknown, f"{path}: add {unknown} to PATH_PARAMS"
        url = path
        for p in params:
            url = url.replace("{" + p + "}", ids[PATH_PARAMS[p]])
        for method, operation in operations.items():
            body = bodies.get(operation["operationId"], {}) if method in ("post", "patch", "put") else None
            response = await attacker.client.request(method.upper(), url, json=body, headers=attacker.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code} {response.text}"
            tried += 1
    assert tried >= 10
    [after] = (await victim.get("/v1/utility/call-tasks")).json()["items"]
    assert after["status"] == "open"
    report = (await victim.get(f"/v1/utility/outages/{out['id']}/compensation")).json()
    assert report["accounts"] == 1 and report["amount"] == "95.00"


async def test_a_tenant_without_the_plugin_gets_404(client: AppClient, make_tenant: MakeTenant) -> None:
    plain = await make_tenant()
    schema = (await client.get("/schema/openapi.json")).json()
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/utility/"):
            continue
        url = re.sub(r"{\w+}", "01a247c5-0000-7000-8000-000000000000", path)
        for method in operations:
            body = {} if method in ("post", "patch") else None
            response = await plain.client.request(method.upper(), url, json=body, headers=plain.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
