"""Every hotel route tried with another hotel tenant's ids: 404, and nothing of the victim changes."""

from __future__ import annotations

import re

from core.testing import AppClient, MakeTenant
from plugins.hotel.tests.conftest import enable_hotel, send, stay, today

PATH_PARAMS = {"member_id": "member", "milestone_id": "milestone"}
BODIES = {"hotelChooseMilestone": {"choice": "points"}}


async def test_every_hotel_route_answers_404_for_another_tenants_ids(
    client: AppClient, make_tenant: MakeTenant
) -> None:
    from datetime import timedelta

    attacker = await enable_hotel(await make_tenant())
    victim = await enable_hotel(await make_tenant())
    member = await victim.enrol("victim-1")
    check_out = today() - timedelta(days=3)
    await send(victim, stay("victim-1", check_in=check_out - timedelta(days=21), check_out=check_out, folio=[]))
    [milestone] = (await victim.get(f"/v1/hotel/members/{member['id']}/milestones")).json()["items"]
    ids = {"member": member["id"], "milestone": milestone["id"]}
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/hotel/"):
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
            body = BODIES.get(operation["operationId"], {}) if method in ("post", "patch", "put") else None
            response = await attacker.client.request(method.upper(), url, json=body, headers=attacker.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code} {response.text}"
            assert "victim" not in response.text.lower()
            tried += 1
    assert tried >= 4
    [after] = (await victim.get(f"/v1/hotel/members/{member['id']}/milestones")).json()["items"]
    assert after["status"] == "offered"
    assert (await victim.balance(member["id"]))["available"] == 0
