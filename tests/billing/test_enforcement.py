"""What a tenant's billing standing does to its requests: past due warns on every response, suspended and canceled
refuse writes with a 402 that says how to resume (reads, exports and billing keep working, nothing is deleted), and
the plan's limits apply."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import time_machine

from core.billing.rules import BillingState, rfc3339
from core.billing.service import apply_billing_status, lock_tenant
from core.clock import utcnow
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.billing.support import PLATFORM, billing, make_plan, make_tenant


async def _set(runtime: Runtime, tenant: TenantHandle, status: str, since: datetime | None = None) -> None:
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        row = await lock_tenant(session, tenant.id)
        await apply_billing_status(session, row, BillingState(status, since), reason="test", now=utcnow())


async def test_past_due_writes_work_and_every_response_warns(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    since = utcnow() - timedelta(days=1)
    await _set(billing_runtime, tenant, "past_due", since)
    deadline = rfc3339(since + timedelta(days=7))
    written = await tenant.post("/v1/members", json={"external_id": "m-1"})
    assert written.status_code == 201
    assert written.headers["fealty-billing-warning"].startswith(f"past_due; suspends at {deadline}")
    for response in (await tenant.get("/v1/members"), await tenant.get(f"/v1/members/{uuid.uuid4()}")):
        assert response.headers["fealty-billing-warning"].startswith("past_due")  # successes and errors alike
    state = await billing(tenant)
    assert state["status"] == "past_due" and state["grace_ends_at"].startswith(deadline[:19])
    assert state["warning"].startswith("past_due")


async def test_the_grace_period_ends_on_time_even_before_the_worker_runs(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    since = utcnow()
    await _set(billing_runtime, tenant, "past_due", since)
    with time_machine.travel(since + timedelta(days=7, seconds=1), tick=True):
        refused = await tenant.post("/v1/members", json={"external_id": "too-late"})
        assert refused.status_code == 402 and refused.json()["type"].endswith("/tenant-suspended")
        assert refused.headers["fealty-billing-warning"].startswith("suspended")
        assert (await billing(tenant))["status"] == "suspended"
    with time_machine.travel(since + timedelta(days=6, hours=23), tick=True):
        assert (await tenant.post("/v1/members", json={"external_id": "in-time"})).status_code == 201


async def test_a_suspended_tenant_reads_and_pays_but_cannot_write_and_loses_nothing(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    member = await tenant.enrol("kept-1", name="Kept")
    await tenant.credit(member["id"], 250)
    await _set(billing_runtime, tenant, "suspended", utcnow() - timedelta(days=9))
    writes = [
        await tenant.post("/v1/members", json={"external_id": "new"}),
        await tenant.patch(f"/v1/members/{member['id']}", json={"name": "Changed"}),
        await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": 5, "reason": "x"}),
        await tenant.post("/v1/api-keys", json={"name": "k", "scopes": ["admin"]}),
    ]
    for response in writes:
        assert response.status_code == 402, response.text
        problem = response.json()
        assert problem["type"] == "https://fealty.dev/problems/tenant-suspended"
        assert "POST /v1/billing/pay" in problem["detail"] and "Nothing was deleted" in problem["detail"]
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await tenant.get(f"/v1/members/{member['id']}")).json()["name"] == "Kept"
    assert (await tenant.balance(member["id"]))["available"] == 250
    assert (await tenant.get(f"/v1/members/{member['id']}/ledger")).status_code == 200
    assert (await billing(tenant))["status"] == "suspended"
    # The billing routes stay open (this one answers on its merits, not with a 402).
    change = await tenant.patch("/v1/billing/subscription", json={"cancel_at_period_end": True})
    assert change.status_code == 409 and change.json()["type"].endswith("/no-subscription")
    await _set(billing_runtime, tenant, "active")
    assert (await tenant.post("/v1/members", json={"external_id": "after"})).status_code == 201
    assert (await tenant.balance(member["id"]))["available"] == 250
    history = (await billing(tenant))["history"]
    assert [(h["old_status"], h["new_status"]) for h in history] == [("suspended", "active"), ("none", "suspended")]


async def test_a_canceled_subscription_refuses_writes_with_its_own_problem(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    await _set(billing_runtime, tenant, "canceled")
    refused = await tenant.post("/v1/members", json={"external_id": "x"})
    assert refused.status_code == 402 and refused.json()["type"].endswith("/subscription-ended")
    assert "POST /v1/billing/subscription" in refused.json()["detail"]
    assert (await tenant.get("/v1/members")).status_code == 200


async def test_the_plan_sets_the_rate_limit(billing_client: AppClient) -> None:
    plan = await make_plan(billing_client, rate_limit_per_second="1")
    tenant = await make_tenant(billing_client)
    other = await make_tenant(billing_client)
    labelled = await billing_client.patch(
        f"/v1/platform/tenants/{tenant.id}", json={"plan": plan["code"]}, headers=PLATFORM
    )
    assert labelled.status_code == 200 and labelled.json()["plan"] == plan["code"]
    statuses = [(await tenant.get("/v1/program")).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]  # burst of two at one request a second
    assert {(await other.get("/v1/program")).status_code for _ in range(4)} == {200}  # no plan: no limit


async def test_the_plan_caps_the_number_of_members(billing_client: AppClient) -> None:
    plan = await make_plan(billing_client, max_members=2)
    tenant = await make_tenant(billing_client, plan=plan["code"])
    first = await tenant.enrol()
    await tenant.enrol()
    refused = await tenant.post("/v1/members", json={"external_id": "third"})
    assert refused.status_code == 403 and refused.json()["type"].endswith("/plan-limit-reached")
    assert refused.json()["limit"] == 2
    anonymized = await tenant.post(f"/v1/members/{first['id']}/anonymize")
    assert anonymized.status_code == 200
    assert (await tenant.post("/v1/members", json={"external_id": "third"})).status_code == 201
