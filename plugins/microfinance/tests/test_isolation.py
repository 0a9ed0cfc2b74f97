"""Every microfinance route tried with another lender's ids: 404, nothing of the victim changes; a tenant without
the plugin gets 404 from every route."""

from __future__ import annotations

import re
from datetime import timedelta

from core.testing import AppClient, MakeTenant
from plugins.microfinance.tests.conftest import borrower, lender, loan, local_today, ok, product

PATH_PARAMS = {
    "member_id": "member",
    "group_id": "group",
    "product_id": "product",
    "loan_id": "loan",
    "task_id": "task",
}
BODIES = {
    "microfinancePutBorrower": {"household_income_monthly": "1"},
    "microfinanceRecordTraining": {"trained_on": "2026-01-01", "trainer": "x"},
    "microfinanceRecordBereavement": {"starts_on": "2026-01-01", "ends_on": "2026-01-02"},
    "microfinanceAddGroupMember": {"member_id": "00000000-0000-0000-0000-000000000000"},
    "microfinanceRecordMeeting": {"held_on": "2026-01-01", "present": []},
    "microfinanceUpdateProduct": {"active": False},
    "microfinanceRejectLoan": {"reason": "x"},
    "microfinanceWriteOffLoan": {"reason": "x"},
    "microfinanceRescheduleLoan": {"instalments": 2, "first_due_on": "2030-01-01", "reason": "x"},
}


async def test_every_route_answers_404_for_another_lenders_ids(client: AppClient, make_tenant: MakeTenant) -> None:
    attacker, victim = await lender(make_tenant), await lender(make_tenant)
    member = await borrower(victim)
    prod = await product(victim)
    made = await loan(victim, member, prod, "5000", disburse=local_today() - timedelta(days=1))
    group = await ok(
        await victim.post("/v1/microfinance/groups", json={"name": "V", "centre": "C", "meeting_day": 0}), 201
    )
    [task] = (await ok(await victim.get("/v1/microfinance/follow-ups")))["items"]
    ids = {"member": member["id"], "group": group["id"], "product": prod["id"], "loan": made["id"], "task": task["id"]}
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/microfinance/"):
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
            tried += 1
    assert tried >= 15
    after = await ok(await victim.get(f"/v1/microfinance/loans/{made['id']}"))
    assert after["status"] == "disbursed"
    assert (await ok(await victim.get(f"/v1/microfinance/products/{prod['id']}")))["active"] is True
    assert (await ok(await victim.get("/v1/microfinance/follow-ups")))["items"][0]["state"] == "open"
    # nothing of the victim's shows in the attacker's lists and report
    assert (await ok(await attacker.get("/v1/microfinance/loans")))["items"] == []
    assert (await ok(await attacker.get("/v1/microfinance/reports/par")))["portfolio"]["loans"] == 0


async def test_a_tenant_without_the_plugin_gets_404_everywhere(client: AppClient, make_tenant: MakeTenant) -> None:
    plain = await make_tenant()
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/microfinance/"):
            continue
        url = re.sub(r"{\w+}", "00000000-0000-0000-0000-000000000000", path)
        for method in operations:
            response = await plain.client.request(method.upper(), url, json={}, headers=plain.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
            tried += 1
    assert tried >= 25
