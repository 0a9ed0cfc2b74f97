"""The worker: two workers never run one job twice; a killed worker loses nothing and repeats nothing;
failing jobs back off and end up dead."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue, schedules
from core.jobs.models import Job
from core.jobs.registry import JobRegistry
from core.ledger.models import LedgerEntry, Lot, PointBalance
from core.runtime import Runtime
from core.testing import TenantHandle, create_tenant
from core.worker import build_registry, run_due, schedule_recurring


async def _enqueue(runtime: Runtime, kind: str, count: int, **kw) -> list[uuid.UUID]:
    async with tenant_session(runtime.sessionmaker, None) as session:
        for i in range(count):
            await queue.enqueue(session, kind, payload={"n": i}, dedupe_key=f"{kind}:{uuid.uuid4()}", **kw)
        rows = await session.execute(select(Job.id).where(Job.kind == kind))
        return list(rows.scalars())


async def test_two_workers_never_run_one_job_twice(pg_client) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    kind = f"test.race.{uuid.uuid4().hex[:6]}"
    ran: list[int] = []

    async def handler(rt: Runtime, job: queue.ClaimedJob) -> bool:
        await asyncio.sleep(0.005)
        ran.append(job.payload["n"])
        return True

    registry = JobRegistry()
    registry.register(kind, handler)
    await _enqueue(runtime, kind, 60)
    reports = await asyncio.gather(*(run_due(runtime, registry, f"worker-{i}", limit=3) for i in range(4)))
    assert sorted(ran) == list(range(60))  # each exactly once
    assert sum(r.ran for r in reports) == 60 and all(r.ran for r in reports)  # and they really shared the work
    async with tenant_session(runtime.sessionmaker, None) as session:
        statuses = Counter((await session.execute(select(Job.status).where(Job.kind == kind))).scalars())
    assert statuses == {"done": 60}


async def test_a_failing_job_backs_off_then_dies(runtime: Runtime) -> None:
    kind = f"test.fail.{uuid.uuid4().hex[:6]}"
    attempts: list[int] = []

    async def handler(rt: Runtime, job: queue.ClaimedJob) -> bool:
        attempts.append(job.attempts)
        raise RuntimeError("downstream is down")

    registry = JobRegistry()
    registry.register(kind, handler)
    [job_id] = await _enqueue(runtime, kind, 1, max_attempts=3)
    import time_machine

    for step in range(3):
        with time_machine.travel(datetime.now(UTC) + timedelta(hours=2 * step), tick=True):
            await run_due(runtime, registry, "w")
    async with tenant_session(runtime.sessionmaker, None) as session:
        job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
    assert attempts == [1, 2, 3]
    assert job.status == "dead" and "downstream is down" in (job.last_error or "")
    report = await run_due(runtime, registry, "w")
    assert report.ran == 0 and attempts == [1, 2, 3]  # the dead stay dead


async def test_recurring_jobs_are_scheduled_once_per_interval(runtime: Runtime, tenant: TenantHandle) -> None:
    registry = build_registry(runtime)
    member = await tenant.enrol()
    await tenant.credit(member["id"], 10, available_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    now = utcnow()
    await schedules.sync(runtime.sessionmaker, registry, now)
    later = now + timedelta(hours=2)  # every kind of the tenant is due by then, and its pending points
    first = await asyncio.gather(*(schedule_recurring(runtime, registry, later) for _ in range(3)))
    assert sum(first) > 0
    async with tenant_session(runtime.sessionmaker, None) as session:
        count = (
            await session.execute(
                select(func.count()).where(
                    Job.tenant_id == tenant.id, Job.kind == "ledger.release", Job.status == "queued"
                )
            )
        ).scalar_one()
    assert count == 1


async def _pending_members(tenant: TenantHandle, n: int) -> list[str]:
    members = []
    available_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    batch = {"events": []}
    await tenant.post("/v1/earning-rules", json={"name": "pending", "kind": "fixed", "points": "7", "pending_days": 0})
    for i in range(n):
        member = await tenant.enrol(f"k-{i}")
        members.append(member["id"])
        await tenant.credit(member["id"], 10 + i, available_at=available_at)
    del batch
    return members


@pytest.mark.postgres_only
async def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(postgres_url: str, pg_client) -> None:
    tenant = await create_tenant(pg_client)
    members = await _pending_members(tenant, 120)
    await asyncio.sleep(1.2)  # everything is now due
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")} | {
        "FEALTY_DATABASE_URL": postgres_url,
        "FEALTY_WORKER_BATCH_SIZE": "10",
        "FEALTY_WORKER_BATCH_PAUSE_SECONDS": "0.15",
        "FEALTY_JOB_LEASE_SECONDS": "2",
        "FEALTY_LOG_LEVEL": "WARNING",
        "FEALTY_WORKER_POLL_SECONDS": "0.2",
        "FEALTY_RELEASE_EVERY_SECONDS": "1",
    }
    runtime: Runtime = pg_client.app.state["runtime"]

    async def released() -> int:
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            return int((await session.execute(select(func.count(Lot.id)).where(Lot.status == "posted"))).scalar_one())

    worker = subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env)
    try:
        deadline = time.monotonic() + 60
        while await released() < 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # no chance to finish the batch or the job
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    partway = await released()
    assert 0 < partway < len(members), partway
    restarted = subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env)
    try:
        deadline = time.monotonic() + 90
        while await released() < len(members) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        balances = {
            r.member_id: (r.available, r.pending) for r in (await session.execute(select(PointBalance))).scalars()
        }
        entries = (
            await session.execute(select(LedgerEntry.status, func.count(LedgerEntry.id)).group_by(LedgerEntry.status))
        ).all()
    for i, member_id in enumerate(members):
        assert balances[uuid.UUID(member_id)] == (10 + i, 0)  # released exactly once: nothing lost, nothing doubled
    assert dict(entries) == {"posted": len(members)}
