"""The ledger through the HTTP API and the worker: adjustments, pending points, expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.runtime import Runtime
from core.testing import TenantHandle
from core.worker import tick


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_credit_then_debit_and_refuse_overdraft(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    credited = await tenant.credit(member["id"], 300, "goodwill")
    assert credited["available"] == 300 and credited["entry"]["kind"] == "adjust"
    debit = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -120, "reason": "fix"})
    assert debit.status_code == 201 and debit.json()["available"] == 180
    over = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -181, "reason": "too much"})
    assert over.status_code == 409
    assert over.json()["type"].endswith("/insufficient-points")
    assert over.json()["available"] == 180
    balance = await tenant.balance(member["id"])
    assert balance["available"] == 180
    assert balance["lifetime"]["adjusted"] == 180
    ledger = (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    assert [(e["kind"], e["points"]) for e in ledger] == [("adjust", -120), ("adjust", 300)]
    assert ledger[1]["reason"] == "goodwill" and ledger[1]["cause"]["type"] == "admin"
    assert ledger[1]["cause"]["actor"].startswith("key:")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points": 0, "reason": "x"}, "points"),
        ({"points": 10}, "reason"),
        ({"points": 10, "reason": ""}, "reason"),
        ({"points": "ten", "reason": "x"}, "points"),
        ({"points": 1.5, "reason": "x"}, "points"),
        ({"points": 10**13, "reason": "x"}, "points"),
        ({"points": 10, "reason": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"points": -10, "reason": "x", "available_at": "2099-01-01T00:00:00Z"}, "available_at"),
    ],
)
async def test_bad_adjustments_write_nothing(tenant: TenantHandle, body: dict, field: str) -> None:
    member = await tenant.enrol()
    response = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"] == []


async def test_debits_use_the_soonest_expiring_points_first(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    await tenant.credit(member["id"], 100, "never expires")
    await tenant.credit(member["id"], 100, "late", expires_at=_in(60))
    await tenant.credit(member["id"], 100, "soon", expires_at=_in(10))
    await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -150, "reason": "spend"})
    balance = (await tenant.get(f"/v1/members/{member['id']}/balance?expiring_within_days=90")).json()
    # The 'soon' lot is gone and half of the 'late' one; the never-expiring lot is untouched.
    assert [e["points"] for e in balance["expiring"]] == [50]
    assert balance["available"] == 150


async def test_pending_points_are_released_by_the_worker(tenant: TenantHandle, runtime: Runtime) -> None:
    member = await tenant.enrol()
    result = await tenant.credit(member["id"], 500, "after checkout", available_at=_in(2))
    assert result["entry"]["status"] == "pending" and result["pending"] == 500 and result["available"] == 0
    refused = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -1, "reason": "x"})
    assert refused.status_code == 409  # pending points cannot be spent
    await tick(runtime, tenant.id)
    assert (await tenant.balance(member["id"]))["pending"] == 500  # not yet due
    with time_machine.travel(datetime.now(UTC) + timedelta(days=2, minutes=1), tick=True):
        await tick(runtime, tenant.id)
        await tick(runtime, tenant.id)  # a second pass releases nothing twice
        balance = await tenant.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (500, 0)
    ledger = (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    assert [e["status"] for e in ledger] == ["posted"]


async def test_points_expire_days_after_earning(tenant: TenantHandle, runtime: Runtime) -> None:
    await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 30}})
    member = await tenant.enrol()
    await tenant.credit(member["id"], 400)
    soon = (await tenant.get(f"/v1/members/{member['id']}/balance?expiring_within_days=31")).json()["expiring"]
    assert sum(e["points"] for e in soon) == 400
    with time_machine.travel(datetime.now(UTC) + timedelta(days=29), tick=True):
        await tick(runtime, tenant.id)
        assert (await tenant.balance(member["id"]))["available"] == 400
    with time_machine.travel(datetime.now(UTC) + timedelta(days=30, minutes=5), tick=True):
        await tick(runtime, tenant.id)
        await tick(runtime, tenant.id)
        balance = await tenant.balance(member["id"])
    assert balance["available"] == 0 and balance["lifetime"]["expired"] == 400
    ledger = (await tenant.get(f"/v1/members/{member['id']}/ledger?kind=expire")).json()["items"]
    assert [e["points"] for e in ledger] == [-400]
    assert ledger[0]["cause"]["type"] == "system"


async def test_points_expire_at_month_end_in_program_time_zone(tenant: TenantHandle, runtime: Runtime) -> None:
    await tenant.patch(
        "/v1/program", json={"timezone": "Asia/Shanghai", "expiry_policy": {"kind": "end_of_month_after", "value": 1}}
    )
    member = await tenant.enrol()
    # Earned at 20:00 UTC on 31 Jan = 04:00 on 1 Feb in Shanghai: expires when March ends there.
    with time_machine.travel(datetime(2031, 1, 31, 20, tzinfo=UTC), tick=True):
        await tenant.credit(member["id"], 70)
    with time_machine.travel(datetime(2031, 3, 31, 15, 59, tzinfo=UTC), tick=True):
        await tick(runtime, tenant.id)
        assert (await tenant.balance(member["id"]))["available"] == 70
    with time_machine.travel(datetime(2031, 3, 31, 16, 0, 1, tzinfo=UTC), tick=True):
        await tick(runtime, tenant.id)
        assert (await tenant.balance(member["id"]))["available"] == 0


async def test_inactivity_expires_everything_and_activity_is_not_admin_credit(
    tenant: TenantHandle, runtime: Runtime
) -> None:
    await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "inactivity", "value": 24}})
    member = await tenant.enrol()
    start = datetime.now(UTC)
    await tenant.credit(member["id"], 100)
    with time_machine.travel(start + timedelta(days=365), tick=True):
        await tenant.credit(member["id"], 50)  # admin credits are not activity
    soon = (await tenant.get(f"/v1/members/{member['id']}/balance?expiring_within_days=800")).json()["expiring"]
    assert [e["points"] for e in soon] == [150]
    with time_machine.travel(start + timedelta(days=2 * 365 + 2), tick=True):
        await tick(runtime, tenant.id)
        balance = await tenant.balance(member["id"])
    assert balance["available"] == 0 and balance["lifetime"]["expired"] == 150


async def test_ledger_pages_newest_first(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    for points in (1, 2, 3, 4, 5):
        await tenant.credit(member["id"], points)
    first = (await tenant.get(f"/v1/members/{member['id']}/ledger?limit=2")).json()
    assert [e["points"] for e in first["items"]] == [5, 4]
    second = (await tenant.get(f"/v1/members/{member['id']}/ledger?limit=2&cursor={first['next_cursor']}")).json()
    assert [e["points"] for e in second["items"]] == [3, 2]


async def test_anonymized_member_cannot_be_adjusted(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    await tenant.credit(member["id"], 30)
    anonymized = await tenant.post(f"/v1/members/{member['id']}/anonymize")
    assert anonymized.status_code == 200, anonymized.text
    before = {k: v for k, v in (await tenant.balance(member["id"])).items() if k != "as_of"}
    response = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": 5, "reason": "x"})
    assert response.status_code == 409 and response.json()["field"] == "member_id", response.text
    # Nothing was written: the balance is what it was before the refused credit.
    assert {k: v for k, v in (await tenant.balance(member["id"])).items() if k != "as_of"} == before


async def test_adjusting_an_unknown_member_is_404(tenant: TenantHandle) -> None:
    response = await tenant.post(f"/v1/members/{uuid.uuid4()}/points/adjust", json={"points": 5, "reason": "x"})
    assert response.status_code == 404
