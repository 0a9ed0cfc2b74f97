"""SLA breaches: flagged, searchable, counted in /metrics, and announced by ``case.sla_breached`` exactly once per
breach, also when two workers sweep at once (PostgreSQL); a reopened case's new clock can breach again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from core.cases.breaches import sweep
from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle, create_tenant
from core.worker import tick

OPENED = datetime(2026, 6, 1, 9, tzinfo=UTC)


async def _setup(t: TenantHandle, n: int = 3) -> list[str]:
    await t.post(
        "/v1/case-categories",
        json={
            "code": "quality",
            "names": {"en": "Quality"},
            "first_reply_hours": 1,
            "resolution_hours": 4,
            "notify": ["team:care"],
        },
    )
    member = await t.enrol()
    with time_machine.travel(OPENED, tick=False):
        return [
            (
                await t.post(
                    "/v1/cases", json={"member_id": member["id"], "subject": f"case {i}", "category": "quality"}
                )
            ).json()["id"]
            for i in range(n)
        ]


async def _announced(runtime: Runtime, tenant_id: uuid.UUID) -> list[dict]:
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        rows = await session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.type == "case.sla_breached").order_by(OutboxEvent.id)
        )
        return [r.payload for r in rows]


async def test_two_workers_announce_each_breach_once(pg_client: AppClient) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    t = await create_tenant(pg_client)
    ids = await _setup(t)
    # The first case was answered in time: its first-reply clock never breaches.
    with time_machine.travel(OPENED + timedelta(minutes=30), tick=False):
        await t.post(f"/v1/cases/{ids[0]}/respond", json={"note": "On it."})
    now = OPENED + timedelta(hours=2)

    async def worker() -> int:
        async with tenant_session(runtime.sessionmaker, t.id) as session:
            return await sweep(session, t.id, now)

    counts = await asyncio.gather(*(worker() for _ in range(4)))
    assert sum(counts) == 2  # two first-reply breaches, each recorded by exactly one worker
    assert [await worker(), await worker()] == [0, 0]
    announced = await _announced(runtime, t.id)
    assert sorted(a["case_id"] for a in announced) == sorted(ids[1:])
    assert {a["clock"] for a in announced} == {"first_reply"} and announced[0]["notify"] == ["team:care"]
    breached = (await t.get("/v1/cases", params={"breached": "true"})).json()["items"]
    assert sorted(c["id"] for c in breached) == sorted(ids[1:])
    assert all(c["first_reply_breached_at"] and c["breached"] for c in breached)
    # Past the resolution due time too: three resolution breaches, once each.
    later = OPENED + timedelta(hours=5)
    results = await asyncio.gather(*(_sweep_at(runtime, t.id, later) for _ in range(3)))
    assert sum(results) == 3
    assert len(await _announced(runtime, t.id)) == 5


async def _sweep_at(runtime: Runtime, tenant_id: uuid.UUID, now: datetime) -> int:
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        return await sweep(session, tenant_id, now)


async def test_the_worker_job_flags_counts_and_a_reopened_case_can_breach_again(client: AppClient, tenant) -> None:
    runtime: Runtime = client.app.state["runtime"]
    (case_id,) = await _setup(tenant, 1)
    before = _metric((await client.get("/metrics")).text, "resolution")
    with time_machine.travel(OPENED + timedelta(hours=5), tick=False):
        await tick(runtime, tenant.id)
        await tick(runtime, tenant.id)
    announced = await _announced(runtime, tenant.id)
    assert [(a["case_id"], a["clock"]) for a in announced] == [(case_id, "first_reply"), (case_id, "resolution")]
    assert _metric((await client.get("/metrics")).text, "resolution") == before + 1
    # Worked through and reopened: a new resolution clock, a new breach when it runs out.
    with time_machine.travel(OPENED + timedelta(hours=6), tick=False):
        for action, body in (
            ("assign", {"assignee": "a"}),
            ("investigate", {}),
            ("resolve", {"cause": "c", "prevention": "p"}),
            ("reopen", {}),
        ):
            assert (await tenant.post(f"/v1/cases/{case_id}/{action}", json=body)).status_code == 200
    reopened = (await tenant.get(f"/v1/cases/{case_id}")).json()
    assert reopened["resolution_breached_at"] is None and reopened["first_reply_breached_at"] is not None
    with time_machine.travel(OPENED + timedelta(hours=11), tick=False):
        await tick(runtime, tenant.id)
    assert [a["clock"] for a in await _announced(runtime, tenant.id)] == ["first_reply", "resolution", "resolution"]
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        from core.cases.models import CaseBreach

        assert len((await session.execute(select(CaseBreach))).scalars().all()) == 3


def _metric(text: str, clock: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'fealty_case_sla_breaches_total{{clock="{clock}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no breach counter for {clock}")
