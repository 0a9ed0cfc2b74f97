"""PAR and the arrears ageing table at past dates, from the repayment history; the nightly job's follow-ups."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from core.clock import utcnow
from core.db.engine import tenant_session
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import TenantHandle
from plugins.microfinance import followups
from plugins.microfinance.tests.conftest import at_local, borrower, loan, local_today, ok, pay, product


async def par(tenant: TenantHandle, **params: object) -> dict:
    return await ok(await tenant.get("/v1/microfinance/reports/par", params=params))  # type: ignore[arg-type]


async def test_par_by_balance_at_past_dates(mf_tenant: TenantHandle) -> None:
    today = local_today()
    prod = await product(mf_tenant, instalments=4)
    group = await ok(
        await mf_tenant.post(
            "/v1/microfinance/groups", json={"name": "Qingjiang 1", "centre": "Qingjiang", "meeting_day": 2}
        ),
        201,
    )
    good, bad = await borrower(mf_tenant, officer="wang"), await borrower(mf_tenant, officer="li")
    await ok(await mf_tenant.post(f"/v1/microfinance/groups/{group['id']}/members", json={"member_id": bad["id"]}))
    first_due = today - timedelta(days=70)
    disbursed = first_due - timedelta(days=30)
    # two loans of 4,000 (1,000 principal + 40 interest a month): one paid on time, one never paid
    paid = await loan(mf_tenant, good, prod, "4000", disburse=disbursed, first_due=first_due)
    await loan(mf_tenant, bad, prod, "4000", disburse=disbursed, first_due=first_due)
    schedule = (await ok(await mf_tenant.get(f"/v1/microfinance/loans/{paid['id']}/schedule")))["instalments"]
    for inst in schedule:
        from datetime import date

        due = date.fromisoformat(inst["due_on"])
        if due <= today:
            await pay(mf_tenant, good, paid["id"], "1040", at_local(due))
    # before anything fell due: nothing at risk, both loans current
    before = await par(mf_tenant, as_of=(first_due - timedelta(days=1)).isoformat(), days=0)
    assert before["portfolio"]["outstanding_principal"] == "8000.00" and before["portfolio"]["par"] == "0.0000"
    # 16 days after the first due date: the unpaid loan is 16 days late, all its 4,000 at risk over 8,000 - 1,000 paid
    day = first_due + timedelta(days=16)
    report = await par(mf_tenant, as_of=day.isoformat(), days=15)
    assert report["portfolio"]["outstanding_principal"] == "7000.00"
    assert report["portfolio"]["at_risk_principal"] == "4000.00"
    assert report["portfolio"]["par"] == str((Decimal(4000) / Decimal(7000)).quantize(Decimal("0.0001")))
    ageing = {line["key"]: line for line in report["ageing"]}
    assert ageing["1-30"]["loans"] == 1 and ageing["current"]["loans"] == 1
    by_officer = {line["key"]: line["par"] for line in report["by_officer"]}
    assert by_officer == {"li": "1.0000", "wang": "0.0000"}
    assert [line["key"] for line in report["by_centre"]] == ["", "Qingjiang"]
    # a day earlier it was 15 days late: not over PAR15
    assert (await par(mf_tenant, as_of=(day - timedelta(days=1)).isoformat(), days=15))["portfolio"][
        "at_risk_principal"
    ] == "0.00"
    # a future date and a bad threshold are refused
    assert (
        await mf_tenant.get("/v1/microfinance/reports/par", params={"as_of": (today + timedelta(days=1)).isoformat()})
    ).status_code == 422
    assert (await mf_tenant.get("/v1/microfinance/reports/par", params={"days": -1})).status_code in (400, 422)


async def test_nightly_job_raises_each_follow_up_once(mf_tenant: TenantHandle, runtime: Runtime) -> None:
    today = local_today()
    prod = await product(mf_tenant, instalments=4, late_penalty="20")
    group = await ok(
        await mf_tenant.post("/v1/microfinance/groups", json={"name": "G", "centre": "C", "meeting_day": 1}), 201
    )
    a, b, c = [await borrower(mf_tenant) for _ in range(3)]
    for m in (a, b, c):
        await ok(await mf_tenant.post(f"/v1/microfinance/groups/{group['id']}/members", json={"member_id": m["id"]}))
    first_due = today - timedelta(days=5)
    l1 = await loan(mf_tenant, a, prod, "4000", disburse=first_due - timedelta(days=30), first_due=first_due)
    l2 = await loan(mf_tenant, b, prod, "4000", disburse=first_due - timedelta(days=30), first_due=first_due)
    l3 = await loan(mf_tenant, c, prod, "4000", disburse=today, first_due=today + timedelta(days=30))
    await pay(mf_tenant, b, l2["id"], "500", at_local(today))
    # attendance: c missed three of four meetings
    for weeks in range(4, 0, -1):
        present = [a["id"], b["id"]] + ([c["id"]] if weeks == 1 else [])
        await ok(
            await mf_tenant.post(
                f"/v1/microfinance/groups/{group['id']}/meetings",
                json={"held_on": (today - timedelta(days=7 * weeks)).isoformat(), "present": present},
            ),
            201,
        )
    for _ in range(2):  # twice: the second run raises nothing new
        await nightly(runtime, mf_tenant.id)
    tasks = (await ok(await mf_tenant.get("/v1/microfinance/follow-ups", params={"limit": 100})))["items"]
    kinds = sorted((t["kind"], t["loan_id"]) for t in tasks)
    assert ("late_instalment", l1["id"]) in kinds
    assert ("partial_payment", l2["id"]) in kinds
    assert ("group_arrears", l3["id"]) in kinds
    assert ("attendance", l3["id"]) in kinds
    assert ("overdue_visit", l1["id"]) in kinds  # the use-of-funds visit was due 5 days ago
    assert len(kinds) == len(set(kinds))
    # the overdue loans were charged the late penalty once and are active
    sched = (await ok(await mf_tenant.get(f"/v1/microfinance/loans/{l1['id']}/schedule")))["instalments"]
    assert sched[0]["penalty"] == "20.00" and sched[1]["penalty"] == "0.00"
    assert (await ok(await mf_tenant.get(f"/v1/microfinance/loans/{l1['id']}")))["status"] == "active"
    # the officer's worklist: due before a day, by officer
    worklist = await ok(
        await mf_tenant.get(
            "/v1/microfinance/follow-ups",
            params={"officer": "officer-wang", "due_before": (today + timedelta(days=40)).isoformat()},
        )
    )
    assert worklist["items"] and all(t["officer"] == "officer-wang" for t in worklist["items"])
    # a visit closes the loan's visit tasks; the monthly visit comes next
    visit = await ok(
        await mf_tenant.post(
            "/v1/microfinance/follow-ups/visits",
            json={
                "loan_id": l1["id"],
                "officer": "officer-wang",
                "visited_on": (today - timedelta(days=25)).isoformat(),
                "place": "borrower's shop",
                "signature_ref": "scan-001",
                "kind": "use_of_funds",
                "use_of_funds": "two sows",
                "needs": "a vet visit",
            },
        ),
        201,
    )
    open_visits = [
        t
        for t in (await ok(await mf_tenant.get("/v1/microfinance/follow-ups", params={"loan_id": l1["id"]})))["items"]
        if t["kind"] in ("use_of_funds", "overdue_visit")
    ]
    assert open_visits == []
    await nightly(runtime, mf_tenant.id)
    monthly = [
        t
        for t in (await ok(await mf_tenant.get("/v1/microfinance/follow-ups", params={"loan_id": l1["id"]})))["items"]
        if t["kind"] == "monthly_visit"
    ]
    assert [t["due_on"] for t in monthly] == [(today + timedelta(days=5)).isoformat()]
    assert visit["needs"] == "a vet visit"


async def nightly(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, int]:
    """The nightly job now, as the worker runs it (its own transaction)."""
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        program = await load_program_settings(session, tenant_id)
        return await followups.run_nightly(session, program.tenant_view(tenant_id, runtime.plugins), utcnow())


async def test_needs_voiced_in_a_visit_open_a_case(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    made = await loan(mf_tenant, member, await product(mf_tenant), "3000", disburse=local_today())
    body = {
        "loan_id": made["id"],
        "officer": "officer-wang",
        "visited_on": local_today().isoformat(),
        "place": "the farm",
        "signature_ref": "scan-9",
        "needs": "a cold store for the vegetables",
        "open_case": True,
    }
    visit = await ok(await mf_tenant.post("/v1/microfinance/follow-ups/visits", json=body), 201)
    assert visit["case_id"] is not None
    case = await ok(await mf_tenant.get(f"/v1/cases/{visit['case_id']}"))
    assert case["member_id"] == member["id"] and case["kind"] == "request"
    # no needs, no case: refused naming the field, nothing written
    refused = await mf_tenant.post("/v1/microfinance/follow-ups/visits", json=body | {"needs": None})
    assert refused.status_code == 422 and refused.json()["field"] == "needs"
    assert len((await ok(await mf_tenant.get("/v1/microfinance/follow-ups/visits")))["items"]) == 1
