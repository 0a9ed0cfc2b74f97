"""Repayments as ``microfinance.repayment`` events: allocation order, partial and prepaid payments, points for
instalments on time, a reversal that restores exactly what it paid, days past due in the tenant's time zone."""

from __future__ import annotations

from datetime import date, timedelta

from core.testing import MakeTenant, TenantHandle
from plugins.microfinance.tests.conftest import (
    at_local,
    borrower,
    lender,
    loan,
    local_today,
    ok,
    pay,
    product,
    schedule,
)


async def test_payments_go_to_the_oldest_instalment_penalties_fees_interest_principal(
    mf_tenant: TenantHandle,
) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant, instalment_fee="5", instalments=3)
    first_due = local_today() - timedelta(days=40)
    made = await loan(mf_tenant, member, prod, "3000", disburse=first_due - timedelta(days=30), first_due=first_due)
    # 3,000 flat 12% over 3 months: 1,000 principal + 30 interest + 5 fee a month
    table = await schedule(mf_tenant, made["id"])
    assert [i["total"] for i in table["instalments"]] == ["1035.00"] * 3
    result = await pay(mf_tenant, member, made["id"], "1050", at_local(local_today()))
    assert result["status"] == "awarded"
    table = await schedule(mf_tenant, made["id"])
    one, two = table["instalments"][0], table["instalments"][1]
    assert (one["fee_paid"], one["interest_paid"], one["principal_paid"], one["state"]) == (
        "5.00",
        "30.00",
        "1000.00",
        "paid_late",
    )
    # the 15 left: the second instalment's fee, then its interest
    assert (two["fee_paid"], two["interest_paid"], two["principal_paid"], two["state"]) == (
        "5.00",
        "10.00",
        "0.00",
        "partly_paid",
    )
    [applied] = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/repayments"))
    assert [a["instalment"] for a in applied["allocations"]] == [1, 2]
    # paid late: no on-time points
    assert (await mf_tenant.balance(member["id"]))["available"] == 0
    got = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}"))
    late = (local_today() - date.fromisoformat(two["due_on"])).days
    assert got["status"] == "active" and got["days_past_due"] == late and got["arrears_bucket"] == "1-30"
    assert got["classification"] == "special_mention"


async def test_a_custom_order_pays_principal_first(make_tenant: MakeTenant) -> None:
    tenant = await lender(make_tenant, allocation_order=["principal", "interest", "fee", "penalty"])
    member = await borrower(tenant)
    prod = await product(tenant, instalments=2)
    made = await loan(tenant, member, prod, "2000", disburse=local_today() - timedelta(days=1))
    await pay(tenant, member, made["id"], "1005", at_local(local_today()))
    first = (await schedule(tenant, made["id"]))["instalments"][0]
    assert (first["principal_paid"], first["interest_paid"]) == ("1000.00", "5.00")


async def test_on_time_prepayment_earns_points_and_a_streak_bonus_and_closing_clean(
    make_tenant: MakeTenant,
) -> None:
    tenant = await lender(make_tenant, streak_length=2, streak_bonus=50, points_per_on_time_instalment=10)
    member = await borrower(tenant)
    prod = await product(tenant, instalments=3)
    made = await loan(tenant, member, prod, "3000", disburse=local_today())
    # prepaying two instalments today (before they fall due): both on time, no penalty
    result = await pay(tenant, member, made["id"], "2060", at_local(local_today()))
    reasons = sorted(a["reason"] for a in result["awards"])
    assert reasons == ["2 instalments on time in a row", "instalment 1 paid on time", "instalment 2 paid on time"]
    assert (await tenant.balance(member["id"]))["available"] == 70
    # the rest closes the loan: perfect record, rebate eligibility, next-cycle limit
    await pay(tenant, member, made["id"], "1030", at_local(local_today()))
    closed = await ok(await tenant.get(f"/v1/microfinance/loans/{made['id']}"))
    assert closed["status"] == "closed" and closed["perfect"] is True
    # interest 90, rebate 3 points of 12: 22.50
    assert closed["rebate_amount"] == "22.50"
    b = await ok(await tenant.get(f"/v1/microfinance/borrowers/{member['id']}"))
    assert b["next_loan_limit"] == "3600.00" and b["clean_cycles"] == 1
    # 10 (third on time) + 100 clean-cycle bonus
    assert (await tenant.balance(member["id"]))["available"] == 180
    # more than the loan owes is refused, nothing written
    refused = await tenant.post(
        "/v1/events",
        json={
            "type": "microfinance.repayment",
            "event_id": "too-much",
            "member": {"member_id": member["id"]},
            "occurred_at": at_local(local_today()),
            "amount": "1",
            "attributes": {"loan_id": made["id"]},
        },
    )
    assert refused.status_code == 422 and refused.json()["field"] == "attributes.loan_id"


async def test_a_reversed_repayment_restores_exactly_what_it_paid(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant, instalments=3)
    made = await loan(mf_tenant, member, prod, "3000", disburse=local_today())
    before = await schedule(mf_tenant, made["id"])
    first = await pay(mf_tenant, member, made["id"], "1030", at_local(local_today()))
    second = await pay(mf_tenant, member, made["id"], "500", at_local(local_today()))
    assert (await mf_tenant.balance(member["id"]))["available"] == 10
    reversed_ = await mf_tenant.post(f"/v1/events/{first['id']}/reverse", json={"reason": "cheque bounced"})
    assert reversed_.status_code == 200, reversed_.text
    after = await schedule(mf_tenant, made["id"])
    # instalment 1 owes again what the first payment paid; the second payment stays in instalment 2
    assert after["instalments"][0]["paid"] == "0.00" and after["instalments"][0]["paid_off_on"] is None
    assert after["instalments"][1]["paid"] == "500.00"
    assert (await mf_tenant.balance(member["id"]))["available"] == 0
    await ok(await mf_tenant.post(f"/v1/events/{second['id']}/reverse", json={"reason": "duplicate"}))
    assert await schedule(mf_tenant, made["id"]) == before
    repayments = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/repayments"))
    assert all(r["reversed_at"] for r in repayments)
    # a partial reversal of a repayment is refused, nothing changes
    third = await pay(mf_tenant, member, made["id"], "100", at_local(local_today()))
    partial = await mf_tenant.post(f"/v1/events/{third['id']}/reverse", json={"fraction": "0.5"})
    assert partial.status_code == 409 and partial.json()["field"] == "fraction"
    assert (await schedule(mf_tenant, made["id"]))["instalments"][0]["paid"] == "100.00"


async def test_a_payment_late_in_the_evening_counts_on_the_tenants_local_day(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant, instalments=2)
    due = local_today() - timedelta(days=5)
    made = await loan(mf_tenant, member, prod, "2000", disburse=due - timedelta(days=30), first_due=due)
    # 23:30 in Shanghai on the due date is 15:30 UTC the same day: on time
    result = await pay(mf_tenant, member, made["id"], "1020", at_local(due, 23, 30))
    assert [a["reason"] for a in result["awards"]] == ["instalment 1 paid on time"]
    # 00:30 the next day local (16:30 UTC on the due date) would have been late
    made2 = await loan(mf_tenant, member, prod, "2000", disburse=due - timedelta(days=30), first_due=due)
    late = await pay(mf_tenant, member, made2["id"], "1020", at_local(due + timedelta(days=1), 0, 30))
    assert late["awards"] == []
    rows = (await schedule(mf_tenant, made2["id"]))["instalments"]
    assert rows[0]["state"] == "paid_late" and rows[0]["paid_off_on"] == (due + timedelta(days=1)).isoformat()


async def test_bad_repayments_are_refused_naming_the_field(mf_tenant: TenantHandle, make_tenant: MakeTenant) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant)
    made = await loan(mf_tenant, member, prod, "3000", disburse=local_today())
    someone = await borrower(mf_tenant)
    cases = [
        ({"amount": "0"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "100000"}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"attributes": {"loan_id": made["id"], "colour": "red"}}, "attributes.colour"),
        ({"attributes": {}}, "attributes.loan_id"),
        ({"member": {"member_id": someone["id"]}}, "attributes.loan_id"),
        ({"occurred_at": at_local(local_today() - timedelta(days=3))}, "occurred_at"),
    ]
    for change, field in cases:
        body = {
            "type": "microfinance.repayment",
            "event_id": f"bad-{field}",
            "member": {"member_id": member["id"]},
            "occurred_at": at_local(local_today()),
            "amount": "100",
            "currency": "CNY",
            "attributes": {"loan_id": made["id"]},
        } | change
        response = await mf_tenant.post("/v1/events", json=body)
        assert response.status_code in (400, 422), (change, response.text)
        assert response.json().get("field") == field, (change, response.json())
    assert await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/repayments")) == []
    # a tenant without the plugin cannot send the event type at all
    plain = await make_tenant()
    m = await plain.enrol("x")
    response = await plain.post(
        "/v1/events",
        json={
            "type": "microfinance.repayment",
            "event_id": "x-1",
            "member": {"member_id": m["id"]},
            "occurred_at": at_local(local_today()),
            "amount": "1",
            "attributes": {"loan_id": made["id"]},
        },
    )
    assert response.status_code == 422 and response.json()["field"] == "type"


async def test_reversing_the_closing_repayment_reopens_the_loan_and_takes_back_the_bonus(
    mf_tenant: TenantHandle,
) -> None:
    member = await borrower(mf_tenant)
    made = await loan(mf_tenant, member, await product(mf_tenant, instalments=1), "1000", disburse=local_today())
    closing = await pay(mf_tenant, member, made["id"], "1010", at_local(local_today()))
    assert (await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}")))["status"] == "closed"
    assert (await mf_tenant.balance(member["id"]))["available"] == 110  # 10 on time + 100 clean cycle
    # the borrower spends 105 of them: the bonus cannot all be taken back, the reversal still goes through
    spent = await mf_tenant.post(
        f"/v1/members/{member['id']}/points/adjust", json={"points": -105, "reason": "gift at the fair"}
    )
    assert spent.status_code in (200, 201), spent.text
    reversed_ = await mf_tenant.post(f"/v1/events/{closing['id']}/reverse", json={"reason": "bounced"})
    assert reversed_.status_code == 200, reversed_.text
    reopened = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}"))
    assert reopened["status"] == "active" and reopened["perfect"] is None
    actions = [a["action"] for a in await ok(await mf_tenant.get(f"/v1/microfinance/loans/{made['id']}/actions"))]
    assert actions[-2:] == ["reopen", "bonus_kept"]
    b = await ok(await mf_tenant.get(f"/v1/microfinance/borrowers/{member['id']}"))
    assert b["clean_cycles"] == 0 and b["next_loan_limit"] is None
