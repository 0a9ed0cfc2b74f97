"""Scheduling independent of the number of tenants: recurring work stored once per tenant and kind with its next due
time; an idle tick reads only what is due (the same single statement for 10 tenants as for 300); due runs become one
job each, however many workers schedule at once; claims are fair between tenants; on PostgreSQL a commit that queues
work wakes a sleeping worker at once (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import event, func, select, update

from core.clock import utcnow
from core.db.engine import tenant_session
from core.db.migrate import upgrade_async
from core.jobs import queue, schedules
from core.jobs.models import Job, JobSchedule
from core.jobs.registry import JobRegistry
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.tenancy.models import Tenant
from core.testing import DEFAULT_ADMIN_URL, settings_for_tests
from core.worker import run_forever


def _registry(ran: list[str] | None = None) -> JobRegistry:
    async def handler(runtime: Runtime, job: queue.ClaimedJob) -> bool:
        if ran is not None:
            ran.append(f"{job.kind}:{job.tenant_id}")
        return True

    registry = JobRegistry()
    registry.register("t.minutely", handler, every_seconds=60)
    registry.register("t.hourly", handler, every_seconds=3600)
    registry.register("t.hotel_only", handler, every_seconds=600, plugin="hotel")
    registry.register("t.platform", handler, every_seconds=300, per_tenant=False)
    registry.register("t.task", handler)  # not recurring
    return registry


@pytest_asyncio.fixture
async def fresh(backend: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A database of its own (this module counts rows and statements), migrated with the real migrations."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'schedule.db'}"
        drop = None
    else:
        admin = os.environ.get("FEALTY_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
        name = f"fealty_sched_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = f"{admin.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        drop = (admin, name)
    await upgrade_async(url)
    runtime = Runtime.create(settings_for_tests(url, worker_poll_seconds=30.0), PluginManager())
    try:
        yield runtime
    finally:
        await runtime.close()
        if drop:
            conn = await asyncpg.connect(drop[0])
            await conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
            await conn.close()


async def _tenants(runtime: Runtime, count: int, *, plugins: list[str] | None = None) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with tenant_session(runtime.sessionmaker, None) as session:
        session.add_all(
            Tenant(id=i, name=f"t{i.hex[:6]}", slug=f"s-{i.hex}", enabled_plugins=plugins or [], status="active")
            for i in ids
        )
    return ids


async def _count(runtime: Runtime, model: type, *where: object) -> int:
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


class _Statements:
    """Counts the SQL statements an engine runs (to show that an idle tick's work does not grow with tenants)."""

    def __init__(self, runtime: Runtime) -> None:
        self.seen: list[str] = []
        self.engine = runtime.engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if "set_config" not in statement.lower():  # the session's role and tenant settings, not the tick's work
            self.seen.append(statement.split()[0].upper())

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


async def test_rows_once_per_tenant_and_kind_spread_over_the_interval(fresh: Runtime) -> None:
    registry = _registry()
    plain = await _tenants(fresh, 20)
    hotels = await _tenants(fresh, 5, plugins=["hotel"])
    now = utcnow()
    report = await schedules.sync(fresh.sessionmaker, registry, now)
    assert report.added == 25 * 2 + 5 + 1  # two kinds for everyone, one for hotels, one for the platform
    assert await schedules.sync(fresh.sessionmaker, registry, now) == schedules.SyncReport()  # idempotent
    async with tenant_session(fresh.sessionmaker, None, writes=False) as session:
        rows = (await session.execute(select(JobSchedule))).scalars().all()
    assert Counter(r.kind for r in rows) == {"t.minutely": 25, "t.hourly": 25, "t.hotel_only": 5, "t.platform": 1}
    hourly = [(r.next_due_at - now).total_seconds() for r in rows if r.kind == "t.hourly"]
    assert all(0 <= s < 3600 for s in hourly) and max(hourly) - min(hourly) > 600  # spread, not bunched

    # A suspended tenant loses its rows at the next pass over changed tenants; a hotel turned off loses its kind.
    async with tenant_session(fresh.sessionmaker, None) as session:
        await session.execute(update(Tenant).where(Tenant.id == plain[0]).values(status="suspended"))
        await session.execute(update(Tenant).where(Tenant.id == hotels[0]).values(enabled_plugins=[]))
    changed = await schedules.sync(fresh.sessionmaker, registry, utcnow(), changed_since=now)
    assert changed.removed == 2 + 1
    assert await _count(fresh, JobSchedule, JobSchedule.scope == str(plain[0])) == 0


async def test_an_idle_tick_costs_the_same_for_10_or_300_tenants(fresh: Runtime) -> None:
    from core.worker import schedule_recurring

    registry = _registry()
    costs = []
    for total in (10, 300):
        await _tenants(fresh, total - (10 if costs else 0))
        now = utcnow()
        await schedules.sync(fresh.sessionmaker, registry, now)
        async with tenant_session(fresh.sessionmaker, None) as session:  # nothing due for the next minute
            await session.execute(update(JobSchedule).values(next_due_at=now + timedelta(minutes=1)))
        jobs_before = await _count(fresh, Job)
        statements = _Statements(fresh)
        try:
            scheduled = await schedule_recurring(fresh, registry, now)
        finally:
            statements.close()
        assert scheduled == 0 and await _count(fresh, Job) == jobs_before  # nothing written
        costs.append([s for s in statements.seen if s not in ("BEGIN", "COMMIT", "SET")])
    assert costs[0] == costs[1] == ["SELECT"]  # one indexed read of what is due, however many tenants


async def test_a_swept_kind_queues_only_the_tenants_with_due_work(fresh: Runtime) -> None:
    """``outbox.dispatch`` is swept (core/jobs/sweeps.py): one schedule row for the platform, not one per tenant, and
    when it falls due only the active tenants with undispatched events get a job. On PostgreSQL the worker sees one
    tenant's rows at a time, so this goes through ``fealty_due_tenants`` (a definer function answering only ids)."""
    from core.outbox.models import OutboxEvent
    from core.outbox.service import DISPATCH_JOB
    from core.worker import schedule_recurring

    registry = _registry()
    registry.register(DISPATCH_JOB, lambda runtime, job: asyncio.sleep(0, True), every_seconds=60)
    waiting, done, suspended, *_quiet = await _tenants(fresh, 40)
    now = utcnow()
    for tenant_id, dispatched in ((waiting, None), (done, now), (suspended, None)):
        async with tenant_session(fresh.sessionmaker, tenant_id) as session:
            session.add(OutboxEvent(tenant_id=tenant_id, type="member.enrolled", payload={}, dispatched_at=dispatched))
    async with tenant_session(fresh.sessionmaker, None) as session:
        await session.execute(update(Tenant).where(Tenant.id == suspended).values(status="suspended"))
    await schedules.sync(fresh.sessionmaker, registry, now)
    assert await _count(fresh, JobSchedule, JobSchedule.kind == DISPATCH_JOB) == 1  # not 40
    assert await _count(fresh, JobSchedule, JobSchedule.kind == "t.minutely") == 39

    later = now + timedelta(hours=1)  # the sweep and every minutely row due
    await schedule_recurring(fresh, registry, later)
    async with tenant_session(fresh.sessionmaker, None, writes=False) as session:
        swept = (await session.execute(select(Job.tenant_id, Job.dedupe_key).where(Job.kind == DISPATCH_JOB))).all()
    assert swept == [(waiting, f"{DISPATCH_JOB}:{waiting}")]
    assert await _count(fresh, Job, Job.kind == "t.minutely") == 39

    # Nothing due any more: the next sweep queues nothing, and writes nothing.
    async with tenant_session(fresh.sessionmaker, waiting) as session:
        await session.execute(update(OutboxEvent).values(dispatched_at=later))
    async with tenant_session(fresh.sessionmaker, None) as session:
        await session.execute(update(Job).where(Job.kind == DISPATCH_JOB).values(status="done"))
    jobs_before = await _count(fresh, Job)
    await schedule_recurring(fresh, registry, later + timedelta(hours=1))
    assert await _count(fresh, Job, Job.kind == DISPATCH_JOB, Job.status == "queued") == 0
    assert await _count(fresh, Job) == jobs_before


async def test_a_plugins_job_naming_a_condition_is_swept_and_spread_over_its_interval(fresh: Runtime) -> None:
    """A plugin's daily job with ``when="members"`` (``Recurring.sweep``): one schedule row for the platform; when it
    falls due, a job only for the tenants that enabled the plugin *and* have an active member, each due at its own
    stable offset within the day (not all in the same second)."""
    from core.jobs import sweeps
    from core.members.models import Member
    from core.worker import schedule_recurring

    kind = "plugin.hotel.daily"
    registry = _registry()
    registry.register(
        kind, lambda runtime, job: asyncio.sleep(0, True), every_seconds=86_400, plugin="hotel", sweep="members"
    )
    served, empty, gone = await _tenants(fresh, 3, plugins=["hotel"])
    (other,) = await _tenants(fresh, 1)  # members, but not the plugin
    quiet = await _tenants(fresh, 20, plugins=["hotel"])
    for tenant_id, status in ((served, "active"), (gone, "anonymized"), (other, "active")):
        async with tenant_session(fresh.sessionmaker, tenant_id) as session:
            session.add(Member(tenant_id=tenant_id, external_id="m-1", status=status))
    now = utcnow()
    await schedules.sync(fresh.sessionmaker, registry, now)
    assert await _count(fresh, JobSchedule, JobSchedule.kind == kind) == 1  # not 23
    async with tenant_session(fresh.sessionmaker, None, writes=False) as session:
        sweep_due = (
            await session.execute(select(JobSchedule.next_due_at).where(JobSchedule.kind == kind))
        ).scalar_one()

    await schedule_recurring(fresh, registry, now + timedelta(days=1, seconds=1))
    async with tenant_session(fresh.sessionmaker, None, writes=False) as session:
        queued = (await session.execute(select(Job.tenant_id, Job.run_at).where(Job.kind == kind))).all()
    assert [t for t, _ in queued] == [served], (empty, gone, other, len(quiet))
    offset = sweeps.spread(kind, served, 86_400)
    assert queued[0][1].replace(tzinfo=None) == (sweep_due + offset).replace(tzinfo=None)
    assert timedelta(0) <= offset < timedelta(days=1)
    assert sweeps.spread("outbox.dispatch", served, 86_400) == timedelta(0)  # woken by requests: never held back


def test_every_per_tenant_core_kind_is_swept(tmp_path: Path) -> None:
    """A quiet tenant costs the worker nothing only if every per-tenant kind of core's has a sweep condition: a new
    kind without one (core/jobs/sweeps.py CONDITIONS and a migration replacing ``fealty_due_tenants``) would bring
    back a schedule row and a job per tenant and interval."""
    from core.worker import build_registry

    runtime = Runtime.create(settings_for_tests(f"sqlite+aiosqlite:///{tmp_path / 'kinds.db'}"), PluginManager())
    unswept = [r.kind for r in build_registry(runtime).recurring if r.per_tenant and r.sweep is None]
    assert unswept == []


def test_an_unknown_sweep_condition_is_refused() -> None:
    registry = JobRegistry()
    with pytest.raises(ValueError, match="no sweep condition 'lunar'"):
        registry.register("plugin.x.y", lambda runtime, job: asyncio.sleep(0, True), every_seconds=60, sweep="lunar")


async def test_due_runs_become_one_job_each_whatever_the_workers(fresh: Runtime) -> None:
    from core.worker import schedule_recurring

    registry = _registry()
    await _tenants(fresh, 30)
    now = utcnow()
    await schedules.sync(fresh.sessionmaker, registry, now)
    later = now + timedelta(hours=5)  # everything due; the minutely ones missed 300 runs meanwhile
    made = await asyncio.gather(*(schedule_recurring(fresh, registry, later) for _ in range(3)))
    assert sum(made) == 30 * 2 + 1
    assert await _count(fresh, Job) == 30 * 2 + 1  # one job per row: missed runs are not queued 300 times
    async with tenant_session(fresh.sessionmaker, None, writes=False) as session:
        nexts = (await session.execute(select(JobSchedule.kind, JobSchedule.next_due_at))).all()
    assert all(n > later for _, n in nexts)
    # Due again while the last run is still queued: the same job row, not a second one.
    again = later + timedelta(hours=2)
    await schedule_recurring(fresh, registry, again)
    assert await _count(fresh, Job) == 30 * 2 + 1


async def test_claims_are_fair_between_tenants(fresh: Runtime) -> None:
    big, small_a, small_b = await _tenants(fresh, 3)
    async with tenant_session(fresh.sessionmaker, None) as session:
        for i in range(50):
            await queue.enqueue(session, "t.task", tenant_id=big, dedupe_key=f"big-{i}")
        await queue.enqueue(session, "t.task", tenant_id=small_a, dedupe_key="a")
        await queue.enqueue(session, "t.task", tenant_id=small_b, dedupe_key="b")
    claimed = await queue.claim(fresh.sessionmaker, "w1", limit=3, per_tenant=1)
    assert sorted(str(j.tenant_id) for j in claimed) == sorted(str(t) for t in (big, small_a, small_b))
    # A worker already running a job of the big tenant is given the others' work first, never a second of its own.
    more = await queue.claim(fresh.sessionmaker, "w1", limit=3, per_tenant=1, busy_tenants=[big])
    assert more == []


@pytest.mark.postgres_only
async def test_a_sleeping_worker_wakes_when_work_is_queued(postgres_url: str) -> None:
    runtime = Runtime.create(
        settings_for_tests(postgres_url, worker_poll_seconds=30.0, schedule_full_sync_seconds=3600),
        PluginManager(),
    )
    stop = asyncio.Event()
    ran: list[float] = []
    kind = f"t.wake.{uuid.uuid4().hex[:6]}"

    async def handler(rt: Runtime, job: queue.ClaimedJob) -> bool:
        ran.append(time.monotonic())
        return True

    import core.worker as worker_module

    original = worker_module.build_registry

    def with_test_kind(rt: Runtime) -> JobRegistry:
        registry = original(rt)
        registry.register(kind, handler)
        return registry

    worker_module.build_registry = with_test_kind
    task = asyncio.create_task(run_forever(runtime, stop))
    try:
        await asyncio.sleep(8)  # the worker has started, scheduled every tenant, and sleeps for up to 30 s
        queued_at = time.monotonic()
        async with tenant_session(runtime.sessionmaker, None) as session:
            await queue.enqueue(session, kind, dedupe_key=f"{kind}:1")
        deadline = time.monotonic() + 25
        while not ran and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert ran, "the worker slept through the NOTIFY"
        assert ran[0] - queued_at < 10.0  # woken by the NOTIFY, well before the 30 s poll (a loaded machine)
    finally:
        worker_module.build_registry = original
        stop.set()
        await task
        await runtime.close()
