"""Usage metering: record_activity counts events and distinct active members per tenant and period, in the caller's
transaction, in one statement on PostgreSQL (two on SQLite), exactly under concurrency. (Metering of the real
traffic, through the HTTP API: test_metering.py.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text

from core.billing.usage import record_activity, usage_of
from core.clock import utcnow
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.billing.support import PLATFORM, billing, make_plan, make_tenant


async def _record(runtime: Runtime, tenant: TenantHandle, member: str, events: int = 1) -> None:
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await record_activity(session, tenant_id=tenant.id, member_ids=[uuid.UUID(member)], now=utcnow(), events=events)


async def test_events_add_up_and_members_count_once(billing_client: AppClient, billing_runtime: Runtime) -> None:
    plan = await make_plan(billing_client, included_active_members=1, included_events=2)
    tenant = await make_tenant(billing_client, plan=plan["code"])
    a, b = (await tenant.enrol())["id"], (await tenant.enrol())["id"]
    for _ in range(3):
        await _record(billing_runtime, tenant, a)
    await _record(billing_runtime, tenant, b, events=4)
    usage = (await billing(tenant))["usage"]
    assert (usage["active_members"], usage["events"]) == (2, 7)
    # One member over the one included, five events over the two included (one started thousand).
    assert usage["overage"] == {"members": 1, "events": 5, "amount": "2.50", "currency": "GBP"}
    listing = (await billing_client.get("/v1/platform/tenants?limit=500", headers=PLATFORM)).json()["items"]
    assert next(t for t in listing if t["id"] == str(tenant.id))["usage"] | {
        "period_start": None,
        "period_end": None,
    } == {
        "period_start": None,
        "period_end": None,
        "active_members": 2,
        "events": 7,
    }
    one = (await billing_client.get(f"/v1/platform/tenants/{tenant.id}", headers=PLATFORM)).json()
    assert one["usage"]["events"] == 7
    period = utcnow().strftime("%Y-%m")
    usage_list = (await billing_client.get(f"/v1/platform/usage?period={period}&limit=500", headers=PLATFORM)).json()
    mine = [u for u in usage_list["items"] if u["tenant_id"] == str(tenant.id)]
    assert [(u["slug"], u["active_members"], u["events"], u["status"]) for u in mine] == [(tenant.slug, 2, 7, "open")]
    bad = await billing_client.get("/v1/platform/usage?period=November", headers=PLATFORM)
    assert bad.status_code == 422 and bad.json()["field"] == "period"


async def test_usage_is_per_tenant(billing_client: AppClient, billing_runtime: Runtime) -> None:
    busy, quiet = await make_tenant(billing_client), await make_tenant(billing_client)
    await _record(billing_runtime, busy, (await busy.enrol())["id"], events=9)
    assert (await billing(quiet))["usage"] | {"period_start": 0, "period_end": 0} == {
        "period_start": 0,
        "period_end": 0,
        "active_members": 0,
        "events": 0,
        "overage": None,
        "projected_overage": None,
    }
    assert (await billing(busy))["usage"]["events"] == 9


async def test_activity_counts_only_if_its_transaction_commits(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    member = (await tenant.enrol())["id"]
    with pytest.raises(RuntimeError):
        async with tenant_session(billing_runtime.sessionmaker, tenant.id) as session:
            await record_activity(session, tenant_id=tenant.id, member_ids=[uuid.UUID(member)], now=utcnow(), events=1)
            raise RuntimeError("the event failed")
    async with tenant_session(billing_runtime.sessionmaker, tenant.id, writes=False) as session:
        usage = await usage_of(session, tenant.id, utcnow())
    assert (usage.active_members, usage.events) == (0, 0)


async def test_record_activity_is_one_statement_on_postgres_two_on_sqlite_whatever_the_batch(
    backend: str, billing_client: AppClient, billing_runtime: Runtime
) -> None:
    tenant = await make_tenant(billing_client)
    members = [uuid.UUID((await tenant.enrol())["id"]) for _ in range(30)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = billing_runtime.engine.sync_engine
    for batch in (members[:1], members):  # one member, then thirty (one of them already active)
        statements.clear()
        async with tenant_session(billing_runtime.sessionmaker, tenant.id) as session:
            await session.connection()  # the transaction (and PostgreSQL's tenant setting) is opened before counting
            event.listen(engine, "before_cursor_execute", count)
            try:
                await record_activity(session, tenant_id=tenant.id, member_ids=batch, now=utcnow(), events=len(batch))
            finally:
                event.remove(engine, "before_cursor_execute", count)
        assert len(statements) == (1 if backend == "postgres" else 2), statements
        assert all(s.lstrip().upper().startswith(("INSERT", "WITH")) and "ON CONFLICT" in s.upper() for s in statements)
    async with tenant_session(billing_runtime.sessionmaker, tenant.id, writes=False) as session:
        usage = await usage_of(session, tenant.id, utcnow())
    assert (usage.active_members, usage.events) == (30, 31)


async def test_no_counter_row_is_touched_when_nothing_new_happened(
    backend: str, billing_client: AppClient, billing_runtime: Runtime
) -> None:
    """An approval (no new event) of a member already active this period leaves the counters alone: no row is
    locked or rewritten (PostgreSQL: the row's version is unchanged; SQLite: the upsert is not even sent)."""
    tenant = await make_tenant(billing_client)
    member = uuid.UUID((await tenant.enrol())["id"])
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    version = text("SELECT xmin::text FROM billing_usage_counts WHERE tenant_id = :t")
    async with tenant_session(billing_runtime.sessionmaker, tenant.id) as session:
        await record_activity(session, tenant_id=tenant.id, member_ids=[member], now=utcnow(), events=1)
    async with tenant_session(billing_runtime.sessionmaker, tenant.id) as session:
        await session.connection()
        before = (await session.execute(version, {"t": tenant.id})).all() if backend == "postgres" else [("-",)]
        assert len(before) == 1
        event.listen(billing_runtime.engine.sync_engine, "before_cursor_execute", count)
        try:
            await record_activity(session, tenant_id=tenant.id, member_ids=[member], now=utcnow(), events=0)
        finally:
            event.remove(billing_runtime.engine.sync_engine, "before_cursor_execute", count)
        if backend == "postgres":
            assert (await session.execute(version, {"t": tenant.id})).all() == before
        else:
            assert len(statements) == 1 and "billing_active_members" in statements[0], statements
    async with tenant_session(billing_runtime.sessionmaker, tenant.id, writes=False) as session:
        usage = await usage_of(session, tenant.id, utcnow())
    assert (usage.active_members, usage.events) == (1, 1)


@pytest.mark.postgres_only
async def test_concurrent_activity_is_counted_exactly(pg_client: AppClient, postgres_url: str, localstripe) -> None:
    """Forty transactions at once, four members: every event counted, every member once."""
    from core.plugin.manager import PluginManager
    from tests.billing.conftest import billing_settings

    runtime = Runtime.create(billing_settings(postgres_url, localstripe), PluginManager())
    try:
        tenant = await make_tenant(pg_client)
        members = [(await tenant.enrol())["id"] for _ in range(4)]
        await asyncio.gather(*(_record(runtime, tenant, members[i % 4], events=2) for i in range(40)))
        async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
            usage = await usage_of(session, tenant.id, utcnow())
        assert (usage.active_members, usage.events) == (4, 80)
    finally:
        await runtime.close()
