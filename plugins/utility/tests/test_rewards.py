"""Rewards: bills paid on time or late, paperless and autopay credits once per account and clawed back within 12
months, meter reads stored (replaced when sent again)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import time_machine

from core.testing import TenantHandle
from plugins.utility.tests.conftest import account

_n = itertools.count(1)


async def event(t: TenantHandle, member_id: str, kind: str, status: int = 201, **fields: Any) -> dict[str, Any]:
    body = {
        "type": kind,
        "event_id": f"e-{next(_n)}-{kind}",
        "member": {"member_id": member_id},
        "occurred_at": fields.pop("occurred_at", datetime.now(UTC).isoformat()),
    } | fields
    response = await t.post("/v1/events", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def test_bills_on_time_earn_late_do_not_and_a_bill_pays_once(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    acct = await account(t)
    member = acct["member_id"]
    bill = {"account_number": acct["account_number"], "due_date": "2026-11-20"}
    on_time = await event(
        t, member, "utility.bill_paid", amount="84.10", attributes=bill | {"bill_id": "B1", "paid_date": "2026-11-20"}
    )
    assert [(a["points"], a["source"]) for a in on_time["awards"]] == [(50, "utility.on_time")]
    late = await event(
        t, member, "utility.bill_paid", amount="84.10", attributes=bill | {"bill_id": "B2", "paid_date": "2026-11-23"}
    )
    assert [(a["points"], a["reason"]) for a in late["awards"]] == [(0, "bill paid 3 day(s) after its due date")]
    again = await event(
        t, member, "utility.bill_paid", amount="84.10", attributes=bill | {"bill_id": "B1", "paid_date": "2026-11-19"}
    )
    assert again["status"] == "rejected"
    assert (await t.balance(member))["available"] == 50
    other = await account(t)
    refused = await event(
        t,
        member,
        "utility.bill_paid",
        status=422,
        amount="1",
        attributes={
            "account_number": other["account_number"],
            "bill_id": "X",
            "due_date": "2026-11-20",
            "paid_date": "2026-11-20",
        },
    )
    assert refused["field"] == "attributes.account_number"


async def test_paperless_credit_once_and_clawed_back_within_twelve_months(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    acct = await account(t)
    member, number = acct["member_id"], {"account_number": acct["account_number"]}
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=True) as clock:
        enrolled = await event(t, member, "utility.paperless_enrolled", attributes=number)
        assert enrolled["awards"][0]["points"] == 500  # 5 at 100 points a unit
        await event(t, member, "utility.autopay_enrolled", attributes=number)
        assert (await t.balance(member))["available"] == 1000
        assert (await t.get(f"/v1/utility/accounts/{acct['id']}")).json()["paperless"] is True
        clock.shift(timedelta(days=200))
        await event(t, member, "utility.paperless_cancelled", attributes=number)
        assert (await t.balance(member))["available"] == 500
        assert (await t.get(f"/v1/utility/accounts/{acct['id']}")).json()["paperless"] is False
        again = await event(t, member, "utility.paperless_enrolled", attributes=number)
        assert again["awards"][0]["points"] == 0  # once per account, ever
        clock.shift(timedelta(days=200))  # autopay kept 400 days: past the window
        await event(t, member, "utility.autopay_cancelled", attributes=number)
    assert (await t.balance(member))["available"] == 500


async def test_meter_reads_replace_earlier_ones(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    acct = await account(t)
    start = datetime(2026, 11, 2, 17, tzinfo=UTC)
    reads = [{"start": (start + timedelta(minutes=30 * i)).isoformat(), "kwh": "0.5"} for i in range(4)]
    body = {"account_number": acct["account_number"], "reads": reads}
    first = await event(t, acct["member_id"], "utility.meter_reads", attributes=body)
    assert first["awards"] == []
    await event(t, acct["member_id"], "utility.meter_reads", attributes=body | {"reads": reads[:1]})
    bad = await event(
        t,
        acct["member_id"],
        "utility.meter_reads",
        status=422,
        attributes=body | {"reads": [{"start": reads[0]["start"], "kwh": "-1"}]},
    )
    assert bad["field"] == "attributes.reads[0].kwh"
    assert date(2026, 11, 2)
