"""Groups (size, one group each, leader, meetings), reschedules recorded, idempotent and concurrent repayments,
repayment reminders through the care engine."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from core.runtime import Runtime
from core.testing import AppClient, TenantHandle, create_tenant
from core.worker import tick
from plugins.microfinance.tests.conftest import (
    at_local,
    borrower,
    loan,
    local_today,
    ok,
    pay,
    product,
    repayment,
    schedule,
)


async def test_a_group_holds_five_borrowers_each_in_one_group(mf_tenant: TenantHandle) -> None:
    group = await ok(
        await mf_tenant.post("/v1/microfinance/groups", json={"name": "G1", "centre": "C", "meeting_day": 3}), 201
    )
    members = [await borrower(mf_tenant) for _ in range(6)]
    for i, m in enumerate(members[:5]):
        await ok(
            await mf_tenant.post(
                f"/v1/microfinance/groups/{group['id']}/members", json={"member_id": m["id"], "leader": i == 0}
            )
        )
    full = await mf_tenant.post(f"/v1/microfinance/groups/{group['id']}/members", json={"member_id": members[5]["id"]})
    assert full.status_code == 409 and full.json()["field"] == "member_id"
    other = await ok(
        await mf_tenant.post("/v1/microfinance/groups", json={"name": "G2", "centre": "C", "meeting_day": 3}), 201
    )
    twice = await mf_tenant.post(f"/v1/microfinance/groups/{other['id']}/members", json={"member_id": members[0]["id"]})
    assert twice.status_code == 409
    got = await ok(await mf_tenant.get(f"/v1/microfinance/groups/{group['id']}"))
    assert got["leader_member_id"] == members[0]["id"] and len(got["members"]) == 5
    meeting = await ok(
        await mf_tenant.post(
            f"/v1/microfinance/groups/{group['id']}/meetings",
            json={"held_on": local_today().isoformat(), "present": [m["id"] for m in members[:4]]},
        ),
        201,
    )
    assert meeting["absent"] == [members[4]["id"]]
    stranger = await mf_tenant.post(
        f"/v1/microfinance/groups/{group['id']}/meetings",
        json={"held_on": (local_today() - timedelta(days=7)).isoformat(), "present": [members[5]["id"]]},
    )
    assert stranger.status_code == 422 and stranger.json()["field"] == "present"
    name_taken = await mf_tenant.post("/v1/microfinance/groups", json={"name": "G1", "centre": "C", "meeting_day": 1})
    assert name_taken.status_code == 409


async def test_a_reschedule_is_explicit_and_recorded(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    made = await loan(mf_tenant, member, await product(mf_tenant, instalments=4), "4000", disburse=local_today())
    await pay(mf_tenant, member, made["id"], "1040", at_local(local_today()))
    first_due = local_today() + timedelta(days=90)
    body = {"instalments": 6, "first_due_on": first_due.isoformat(), "reason": "flood damage"}
    new = await ok(await mf_tenant.post(f"/v1/microfinance/loans/{made['id']}/reschedule", json=body))
    rows = new["instalments"]
    assert [r["no"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert rows[0]["state"] == "paid" and rows[1]["due_on"] == first_due.isoformat()
    # 3,000 still owed, flat 12% over 6 months: 500 principal and 30 interest a month
    assert {r["principal"] for r in rows[1:]} == {"500.00"} and {r["interest"] for r in rows[1:]} == {"30.00"}
    actions = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/actions"))
    last = actions[-1]
    assert last["action"] == "reschedule" and last["reason"] == "flood damage"
    assert len(last["details"]["before"]) == 4 and len(last["details"]["after"]) == 7
    assert (await schedule(mf_tenant, made["id"]))["instalments"] == rows


async def test_a_retried_repayment_is_applied_once(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    made = await loan(mf_tenant, member, await product(mf_tenant), "3000", disburse=local_today())
    event = repayment(member, made["id"], "260", at_local(local_today()), event_id="bank-ref-77")
    first = await mf_tenant.post("/v1/events", json=event)
    again = await mf_tenant.post("/v1/events", json=event)
    assert first.status_code == 201 and again.status_code in (200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert len(await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/repayments"))) == 1
    assert (await schedule(mf_tenant, made["id"]))["instalments"][0]["paid"] == "260.00"


@pytest.mark.postgres_only
async def test_concurrent_repayments_of_one_loan_never_pay_an_instalment_twice(pg_client: AppClient) -> None:
    tenant = await create_tenant(pg_client, timezone="Asia/Shanghai", currency="CNY")
    await ok(
        await tenant.patch(
            "/v1/program",
            json={"plugins": ["microfinance"], "plugin_settings": {"microfinance": {"seed_defaults": False}}},
        )
    )
    member = await borrower(tenant)
    made = await loan(tenant, member, await product(tenant, instalments=2), "2000", disburse=local_today())

    async def pay_one(i: int) -> httpx.Response:
        return await tenant.post("/v1/events", json=repayment(member, made["id"], "1020", at_local(local_today())))

    answers = await asyncio.gather(*(pay_one(i) for i in range(3)))
    codes = sorted(a.status_code for a in answers)
    # two instalments of 1,020: two payments go in, the third is more than the loan owes
    assert codes == [201, 201, 422], [a.text for a in answers]
    rows = (await schedule(tenant, made["id"]))["instalments"]
    assert [r["paid"] for r in rows] == ["1020.00", "1020.00"]
    points = sorted(a.json()["points"] for a in answers if a.status_code == 201)
    assert points == [10, 10]
    assert (await ok(await tenant.get(f"/v1/microfinance/loans/{made['id']}")))["status"] == "closed"


async def test_reminders_and_arrears_notices_go_through_the_care_engine_once(
    mf_tenant: TenantHandle, runtime: Runtime
) -> None:
    member = await borrower(mf_tenant, phone="+8613900000001")
    due_soon = local_today() + timedelta(days=1)
    made = await loan(
        mf_tenant,
        member,
        await product(mf_tenant),
        "3000",
        disburse=local_today() - timedelta(days=20),
        first_due=due_soon,
    )
    late_one = await borrower(mf_tenant)
    overdue = local_today() - timedelta(days=4)
    await loan(
        mf_tenant, late_one, await product(mf_tenant), "3000", disburse=overdue - timedelta(days=30), first_due=overdue
    )
    for _ in range(2):
        await tick(runtime, mf_tenant.id)
    requests = (await ok(await mf_tenant.get("/v1/care/requests", params={"limit": 100})))["items"]
    kinds = sorted((r["kind"], r["member_id"]) for r in requests)
    assert ("microfinance.repayment_due", member["id"]) in kinds
    assert ("microfinance.arrears", late_one["id"]) in kinds
    assert len(kinds) == len(set(kinds))
    [due] = [r for r in requests if r["kind"] == "microfinance.repayment_due"]
    assert due["payload"]["loan_id"] == made["id"] and due["payload"]["due_on"] == due_soon.isoformat()
