"""Two workers and concurrent requests on PostgreSQL: no stage told twice, no compensation computed or paid twice,
one outage per reference."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from core.clock import utcnow
from core.db.engine import tenant_session
from core.plugin.types import JobContext
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle, create_tenant
from plugins.utility import jobs
from plugins.utility import outages as ops
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages, outage, planned


async def run_worker(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """What the worker's ``utility.outages`` job does for a tenant, in its own transaction."""
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        program = await load_program_settings(session, tenant_id)
        tenant, now = program.tenant_view(tenant_id, runtime.plugins), utcnow()

        async def emit(kind: str, data: dict[str, Any]) -> None:
            return None

        services = runtime.plugins.services(session, tenant, now)
        await jobs.outage_work(
            JobContext(tenant=tenant, session=session, now=now, services=services, job="outages", emit=emit)
        )


@pytest.fixture
async def pg_utility(pg_client: AppClient) -> TenantHandle:
    return await enable_utility(await create_tenant(pg_client), compensation_payment="points")


async def test_two_workers_tell_each_stage_once(pg_utility: TenantHandle, pg_client: AppClient) -> None:
    t = pg_utility
    runtime: Runtime = pg_client.app.state["runtime"]
    await care_rules(t, "utility.planned_notice", "utility.planned_reminder")
    made = [await account(t, customer_class="large" if i % 3 == 0 else "residential") for i in range(9)]
    created = await planned(t, datetime.now(UTC) + timedelta(days=12))
    assert created["told"] == {}
    with time_machine.travel(datetime.now(UTC) + timedelta(days=5, hours=1), tick=True) as clock:
        await asyncio.gather(*(run_worker(runtime, t.id) for _ in range(3)))
        clock.shift(timedelta(days=1))
        await asyncio.gather(*(run_worker(runtime, t.id) for _ in range(3)))
    items = (await t.get(f"/v1/utility/outages/{created['id']}/accounts")).json()["items"]
    assert len(items) == 9
    for item in items:
        first = "priority_notice" if item["priority"] else "notice"
        assert item["stages"] == [first, "reminder:6"], item
    assert len(await messages(t, trigger="utility.planned_notice")) == 9
    assert len(await messages(t, trigger="utility.planned_reminder")) == 9
    tasks = (await t.get("/v1/utility/call-tasks", params={"outage_id": created["id"]})).json()["items"]
    assert len(tasks) == 3 and {x["account_id"] for x in tasks} == {a["id"] for a in made[::3]}


async def test_concurrent_restorations_and_two_payers_pay_once(
    pg_utility: TenantHandle, pg_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = pg_utility
    runtime: Runtime = pg_client.app.state["runtime"]
    monkeypatch.setattr(ops, "INLINE_PAYMENTS", 0)  # leave every payment to the workers
    await care_rules(t, "utility.compensation", "utility.restored")
    made = [await account(t) for _ in range(6)]
    created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=25)).isoformat(), etr=None)
    answers = await asyncio.gather(*(t.post(f"/v1/utility/outages/{created['id']}/restore", json={}) for _ in range(4)))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["told"].get("restored", 0) for a in answers) == 6
    await asyncio.gather(*(run_worker(runtime, t.id) for _ in range(3)))
    report = (await t.get(f"/v1/utility/outages/{created['id']}/compensation")).json()
    assert report["accounts"] == 6 and report["amount"] == "840.00" and report["paid_amount"] == "840.00"
    for a in made:
        assert (await t.balance(a["member_id"]))["available"] == 14000  # 95 + 45 at 100 points a pound
    assert len(await messages(t, trigger="utility.compensation")) == 6
    assert len(await messages(t, trigger="utility.restored")) == 6


async def test_one_outage_per_reference_under_concurrency(pg_utility: TenantHandle) -> None:
    t = pg_utility
    await account(t)
    body = {
        "kind": "unplanned",
        "feeders": ["F1"],
        "starts_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "reference": "OMS-42",
    }
    answers = await asyncio.gather(*(t.post("/v1/utility/outages", json=body) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert len((await t.get("/v1/utility/outages")).json()["items"]) == 1
    assert len(await messages(t)) == 0  # no rule: nothing queued, but one occasion per account


async def test_two_workers_paging_through_the_payments_pay_each_once(
    pg_utility: TenantHandle, pg_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real worker runs at once, each paying page by page (a transaction a page): every row is locked by one of
    them (``SKIP LOCKED``), so each account is paid and told once."""
    from core.worker import tick

    t = pg_utility
    runtime: Runtime = pg_client.app.state["runtime"]
    monkeypatch.setattr(ops, "PAY_PAGE", 2)
    monkeypatch.setattr(ops, "INLINE_PAYMENTS", 0)
    await care_rules(t, "utility.compensation")
    made = [await account(t) for _ in range(7)]
    created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=25)).isoformat(), etr=None)
    assert (await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})).status_code == 200
    ran = await asyncio.gather(tick(runtime, t.id), tick(runtime, t.id))
    assert sum(r.failed for r in ran) == 0 and sum(r.kinds.get("plugin.utility.outages", 0) for r in ran) == 2
    report = (await t.get(f"/v1/utility/outages/{created['id']}/compensation")).json()
    assert report["amount"] == report["paid_amount"] == "980.00"
    for a in made:
        assert (await t.balance(a["member_id"]))["available"] == 14000
    assert len(await messages(t, trigger="utility.compensation")) == 7
