"""CSV exports through the HTTP API, on both databases: what they contain, page after page; the reports:read scope;
one tenant never sees another's rows; they keep working while the tenant is suspended for billing."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from core.billing.rules import BillingState
from core.billing.service import apply_billing_status, lock_tenant
from core.clock import utcnow
from core.db.engine import tenant_session
from core.exports.service import LEDGER_COLUMNS, MEMBER_COLUMNS, PAGE_SIZE
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from tests.rewards.support import set_tier

NOW = datetime.now(UTC).isoformat()


def rows_of(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


async def key_with(tenant: TenantHandle, *scopes: str) -> dict[str, str]:
    created = await tenant.post("/v1/api-keys", json={"name": "exports", "scopes": list(scopes)})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['secret']}"}


async def suspend(runtime: Runtime, tenant: TenantHandle) -> None:
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        row = await lock_tenant(session, tenant.id)
        state = BillingState("suspended", utcnow() - timedelta(days=9))
        await apply_billing_status(session, row, state, reason="test", now=utcnow())


@pytest.fixture
async def shop(make_tenant: MakeTenant, runtime: Runtime) -> TenantHandle:
    """ann: a purchase (123 points) in tier gold; ben: 50 points by hand, then 20 taken back; and a member whose
    external id a spreadsheet would run as a formula."""
    tenant = await make_tenant()
    rule = await tenant.post("/v1/earning-rules", json={"name": "10 per GBP", "kind": "per_amount", "points": "10"})
    assert rule.status_code == 201, rule.text
    ann, ben = await tenant.enrol("ann"), await tenant.enrol("ben")
    await tenant.enrol("=cmd|' /C calc'!A0")
    event = {"type": "purchase", "event_id": "pos-1", "member": {"external_id": "ann"}, "occurred_at": NOW}
    assert (await tenant.post("/v1/events", json=event | {"amount": "12.34"})).status_code == 201
    await tenant.credit(ben["id"], 50, reason="welcome")
    debit = await tenant.post(f"/v1/members/{ben['id']}/points/adjust", json={"points": -20, "reason": "=fix"})
    assert debit.status_code == 201, debit.text
    await set_tier(runtime, tenant, ann["id"], "gold", 2)
    tenant.data["members"] = {"ann": ann["id"], "ben": ben["id"]}
    return tenant


async def test_the_members_export_has_a_row_per_member_with_tier_balance_and_activity(shop: TenantHandle) -> None:
    response = await shop.get("/v1/exports/members")
    rows = rows_of(response)
    assert list(rows[0]) == list(MEMBER_COLUMNS)
    by_id = {r["external_id"]: r for r in rows}
    assert set(by_id) == {"ann", "ben", "'=cmd|' /C calc'!A0"}  # a formula is kept as text
    ann, ben = by_id["ann"], by_id["ben"]
    assert (ann["member_id"], ann["tier"], ann["available"], ann["lifetime_earned"]) == (
        shop.data["members"]["ann"],
        "gold",
        "123",
        "123",
    )
    assert (ben["tier"], ben["available"], ben["lifetime_adjusted"], ben["status"]) == ("", "30", "30", "active")
    assert datetime.fromisoformat(ann["last_activity_at"]).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(ann["enrolled_at"]) <= datetime.fromisoformat(ann["last_activity_at"])
    assert by_id["'=cmd|' /C calc'!A0"]["tier_valid_until"] == ""  # nothing is written as "None"


async def test_the_ledger_export_filters_by_member_and_time(shop: TenantHandle) -> None:
    everything = rows_of(await shop.get("/v1/exports/ledger"))
    assert list(everything[0]) == list(LEDGER_COLUMNS)
    assert [(r["kind"], r["points"]) for r in everything] == [("earn", "123"), ("adjust", "50"), ("adjust", "-20")]
    assert everything[2]["reason"] == "'=fix" and everything[0]["cause_type"] == "event"
    ben = shop.data["members"]["ben"]
    only_ben = rows_of(await shop.get("/v1/exports/ledger", params={"member_id": ben}))
    assert [r["points"] for r in only_ben] == ["50", "-20"] and {r["member_id"] for r in only_ben} == {ben}
    cut = everything[1]["created_at"]  # the credit's own time: inclusive after, exclusive before
    after = rows_of(await shop.get("/v1/exports/ledger", params={"created_after": cut}))
    before = rows_of(await shop.get("/v1/exports/ledger", params={"created_before": cut}))
    assert [r["points"] for r in after] == ["50", "-20"] and [r["points"] for r in before] == ["123"]
    window = {"created_after": cut, "created_before": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert [r["points"] for r in rows_of(await shop.get("/v1/exports/ledger", params=window))] == ["50", "-20"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "2026-11-01T00:00:00"}, "created_after"),  # no offset
        ({"created_before": "2026-11-01T00:00:00"}, "created_before"),
        ({"created_after": "2026-11-02T00:00:00Z", "created_before": "2026-11-01T00:00:00Z"}, "created_after"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"member_id": "not-a-uuid"}, "member_id"),
    ],
)
async def test_bad_ledger_filters_are_problems_naming_the_field(
    tenant: TenantHandle, params: dict[str, str], field: str
) -> None:
    response = await tenant.get("/v1/exports/ledger", params=params)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


async def test_exports_need_the_reports_read_scope(shop: TenantHandle) -> None:
    reporting = await key_with(shop, "reports:read")
    reader = await key_with(shop, "members:read", "events:write")
    for path in ("/v1/exports/members", "/v1/exports/ledger"):
        assert rows_of(await shop.client.get(path, headers=reporting))
        refused = await shop.client.get(path, headers=reader)
        assert refused.status_code == 403 and refused.json()["required_scope"] == "reports:read"
        assert (await shop.client.get(path)).status_code == 401


async def test_a_tenant_exports_only_its_own_rows(shop: TenantHandle, make_tenant: MakeTenant) -> None:
    other = await make_tenant()
    stranger = await other.enrol("stranger")
    await other.credit(stranger["id"], 7)
    mine = rows_of(await shop.get("/v1/exports/members"))
    assert "stranger" not in {r["external_id"] for r in mine} and len(mine) == 3
    assert [r["external_id"] for r in rows_of(await other.get("/v1/exports/members"))] == ["stranger"]
    assert {r["points"] for r in rows_of(await other.get("/v1/exports/ledger"))} == {"7"}
    assert stranger["id"] not in {r["member_id"] for r in rows_of(await shop.get("/v1/exports/ledger"))}
    peek = await shop.get("/v1/exports/ledger", params={"member_id": stranger["id"]})
    assert peek.status_code == 404 and peek.json()["field"] == "member_id"


async def test_exports_keep_working_while_suspended(shop: TenantHandle, runtime: Runtime) -> None:
    await suspend(runtime, shop)
    assert (await shop.post("/v1/members", json={"external_id": "new"})).status_code == 402
    members = await shop.get("/v1/exports/members")
    assert len(rows_of(members)) == 3 and members.headers["fealty-billing-warning"].startswith("suspended")
    assert len(rows_of(await shop.get("/v1/exports/ledger"))) == 3


async def test_a_large_export_is_streamed_page_by_page(make_tenant: MakeTenant, runtime: Runtime) -> None:
    """More members than a page: every one exactly once, read in keyset pages (one query per page), and sent as a
    stream (no Content-Length: the body was not buffered whole)."""
    tenant = await make_tenant()
    assert (await tenant.patch("/v1/program", json={"auto_enrol": True})).status_code == 200
    count = PAGE_SIZE + 37
    batch = [
        {"type": "purchase", "event_id": f"e-{i}", "member": {"external_id": f"m-{i:04d}"}, "occurred_at": NOW}
        | {"amount": "1.00"}
        for i in range(count)
    ]
    sent = await tenant.post("/v1/events/batch", json={"events": batch})
    assert sent.status_code == 200 and sent.json()["created"] == count, sent.json()["results"][:1]
    pages: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM members JOIN point_balances" in statement:
            pages.append(statement)

    sa_event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        response = await tenant.get("/v1/exports/members")
    finally:
        sa_event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)
    rows = rows_of(response)
    assert sorted(r["external_id"] for r in rows) == sorted(f"m-{i:04d}" for i in range(count))
    assert len({r["member_id"] for r in rows}) == count
    assert [r["member_id"] for r in rows] == sorted(r["member_id"] for r in rows) or len(rows) == count
    assert len(pages) == 2 and all("LIMIT" in p.upper() for p in pages)
    assert "content-length" not in response.headers
    assert uuid.UUID(rows[0]["member_id"])
