"""The background worker: schedules recurring jobs and runs due ones from the queue.

``fealty worker`` runs it as a process (any number of them); ``fealty serve`` on SQLite runs one in-process. Jobs
are claimed with ``FOR UPDATE SKIP LOCKED`` (see :mod:`core.jobs.queue`), so several workers never run one job at
once, and a job whose worker died is taken over when its lease ends. Every handler is idempotent and commits its
work batch by batch, so a worker killed in the middle of a batch loses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.tenancy import tenant_context
from core.idempotency.service import purge_expired
from core.ids import new_id
from core.jobs import metrics, queue, schedules, sweeps
from core.jobs.models import Job
from core.jobs.queue import ClaimedJob
from core.jobs.registry import Handler, JobRegistry
from core.ledger import jobs as ledger_jobs
from core.outbox.service import emit
from core.plugin.types import JobContext
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.tenancy.models import Tenant

log = structlog.get_logger("fealty.worker")
jobs_table = table_of(Job)
tenants = table_of(Tenant)
#: Feature modules with a ``register(registry, runtime)`` adding their job kinds.
FEATURE_JOB_MODULES: tuple[str, ...] = (
    "core.tiers.jobs",
    "core.rewards.jobs",
    "core.webhooks.jobs",
    "core.billing.jobs",
    "core.care.jobs",
    "core.cases.breaches",
    "core.surveys.jobs",
    "core.measurement.jobs",
    "core.retention.jobs",
    "core.exports.background",
    "core.imports.service",
)


@dataclass
class WorkReport:
    ran: int = 0
    failed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


# --- core housekeeping handlers -------------------------------------------------------------------------------------


async def purge_idempotency_keys(runtime: Runtime, job: ClaimedJob) -> bool:
    async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
        await purge_expired(session, tenant_id=job.tenant_id, now=utcnow())
        await queue.complete(session, job)
    return True


def build_registry(runtime: Runtime) -> JobRegistry:
    """Every job kind: core's, each feature's, and the plugins' scheduled jobs."""
    registry = JobRegistry()
    every = runtime.settings.housekeeping_every_seconds
    registry.register("idempotency.purge", purge_idempotency_keys, every_seconds=every)
    registry.register("platform.idempotency.purge", purge_idempotency_keys, every_seconds=every, per_tenant=False)
    ledger_jobs.register(registry, runtime)
    for path in FEATURE_JOB_MODULES:
        importlib.import_module(path).register(registry, runtime)
    for plugin, scheduled in runtime.plugins.scheduled_jobs():
        if scheduled.when is not None and scheduled.when not in sweeps.PLUGIN_CONDITIONS:
            raise ValueError(
                f"plugin {plugin!r}, job {scheduled.name!r}: unknown condition when={scheduled.when!r}"
                f" (one of: {', '.join(sweeps.PLUGIN_CONDITIONS)})"
            )
        registry.register(
            f"plugin.{plugin}.{scheduled.name}",
            _plugin_runner(scheduled.name, scheduled.run),
            every_seconds=scheduled.every_seconds,
            plugin=plugin,
            sweep=scheduled.when,
        )
    return registry


def _plugin_runner(name: str, run: Callable[[JobContext], Awaitable[None]]) -> Handler:
    async def handler(runtime: Runtime, job: ClaimedJob) -> bool:
        assert job.tenant_id is not None
        tenant_id = job.tenant_id
        # A session without a ``begin()`` block (whose transaction could not be committed half-way): the job may
        # commit page by page (``ctx.commit``); each new transaction is the tenant's again (``after_begin``).
        with tenant_context(tenant_id):
            async with runtime.sessionmaker() as session:
                try:
                    program = await load_program_settings(session, tenant_id)
                    tenant, now = program.tenant_view(tenant_id, runtime.plugins), utcnow()
                    services = runtime.plugins.services(session, tenant, now)

                    async def emit_event(kind: str, data: dict[str, object]) -> None:
                        await emit(session, tenant_id, kind, dict(data))

                    async def commit() -> None:
                        await session.commit()
                        await runtime.between_batches(job)

                    await run(
                        JobContext(
                            tenant=tenant,
                            session=session,
                            now=now,
                            services=services,
                            job=name,
                            emit=emit_event,
                            commit=commit,
                        )
                    )
                    await queue.complete(session, job)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        return True

    return handler


# --- scheduling -----------------------------------------------------------------------------------------------------


async def schedule_recurring(
    runtime: Runtime,
    registry: JobRegistry,
    now: datetime,
    *,
    force: bool = False,
    tenant_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Queue the recurring runs that are due (:func:`core.jobs.schedules.materialize_due`): only the schedule rows
    whose time has come are read, however many tenants there are.

    ``force`` (tests, ``fealty worker --once``) queues every recurring job now instead, for every active tenant or
    the given ones, each with a key of its own so that everything runs now.
    """
    if not force:
        return await schedules.materialize_due(runtime.sessionmaker, now, registry.recurring)
    query = select(tenants.c.id, tenants.c.enabled_plugins).where(tenants.c.status == "active")
    if tenant_ids is not None:
        query = query.where(tenants.c.id.in_(list(tenant_ids)))
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        active = (await session.execute(query)).all()
    nonce = new_id().hex
    rows: list[dict[str, Any]] = []
    for recurring in registry.recurring:
        owners: list[uuid.UUID | None]
        if not recurring.per_tenant:
            owners = [None]
        else:
            owners = [t.id for t in active if recurring.plugin is None or recurring.plugin in (t.enabled_plugins or [])]
        for owner in owners:
            rows.append(
                {
                    "id": new_id(),
                    "tenant_id": owner,
                    "kind": recurring.kind,
                    "dedupe_key": f"{recurring.kind}:{owner or 'platform'}:{nonce}",
                    "payload": {},
                    "status": "queued",
                    "run_at": now,
                    "attempts": 0,
                    "max_attempts": 10,
                    "created_at": now,
                    "task": False,
                    "progress_done": 0,
                }
            )
    if not rows:
        return 0
    async with tenant_session(runtime.sessionmaker, None) as session:
        dialect = session.get_bind().dialect.name
        from sqlalchemy.dialects import postgresql, sqlite

        statement = (
            (postgresql if dialect == "postgresql" else sqlite)
            .insert(jobs_table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        await session.execute(statement, rows)
    return len(rows)


# --- running --------------------------------------------------------------------------------------------------------


async def run_job(runtime: Runtime, registry: JobRegistry, job: ClaimedJob, report: WorkReport) -> None:
    handler = registry.handlers.get(job.kind)
    structlog.contextvars.bind_contextvars(job=job.kind, tenant_id=str(job.tenant_id) if job.tenant_id else None)
    started = time.monotonic()
    if job.due_at is not None:
        metrics.LATENESS.labels(job.kind).observe(max(0.0, (utcnow() - job.due_at).total_seconds()))
    metrics.RUNNING.inc()
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        finished = await handler(runtime, job)
        if finished:
            async with tenant_session(runtime.sessionmaker, None) as session:
                await queue.complete(session, job)  # a no-op when the handler already completed it
        else:
            await queue.requeue_now(runtime.sessionmaker, job)
        report.ran += 1
        report.kinds[job.kind] = report.kinds.get(job.kind, 0) + 1
        metrics.JOBS.labels(job.kind, "done" if finished else "more").inc()
    except Exception as exc:  # a failing job is retried with backoff, then buried; the worker goes on
        status = await queue.fail(runtime.sessionmaker, job, "".join(traceback.format_exception(exc))[-4000:])
        report.failed += 1
        metrics.JOBS.labels(job.kind, "dead" if status == "dead" else "failed").inc()
        if status != "dead":
            metrics.RETRIES.labels(job.kind).inc()
        log.warning("job_failed", kind=job.kind, attempts=job.attempts, status=status, error=str(exc))
    finally:
        metrics.RUNNING.dec()
        metrics.DURATION.labels(job.kind).observe(time.monotonic() - started)
        structlog.contextvars.unbind_contextvars("job", "tenant_id")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id().hex[:6]}"


async def run_due(
    runtime: Runtime,
    registry: JobRegistry,
    worker: str,
    *,
    limit: int = 20,
    tenant_ids: Sequence[uuid.UUID] | None = None,
    kinds: list[str] | None = None,
) -> WorkReport:
    """Claim and run what is due now, one job after another, until nothing is (tests, ``--once``, commands)."""
    report = WorkReport()
    while True:
        claimed = await queue.claim(
            runtime.sessionmaker, worker, limit=limit, lease=runtime.job_lease, tenant_ids=tenant_ids, kinds=kinds
        )
        if not claimed:
            return report
        for job in claimed:
            await run_job(runtime, registry, job, report)


async def tick(runtime: Runtime, *tenant_ids: uuid.UUID, registry: JobRegistry | None = None) -> WorkReport:
    """Run every recurring job now, and everything else that is due (``fealty worker --once``, tests), for every
    tenant or only the given ones (and the platform's jobs)."""
    registry = registry or build_registry(runtime)
    only = list(tenant_ids) if tenant_ids else None
    await schedule_recurring(runtime, registry, utcnow(), force=True, tenant_ids=only)
    return await run_due(runtime, registry, worker_name(), tenant_ids=only)


# --- the long-running loop ------------------------------------------------------------------------------------------


async def listen_for_work(url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``wake`` whenever a transaction that queued work commits (PostgreSQL LISTEN), reconnecting after a lost
    connection; the worker polls meanwhile, so a lost notification only delays work by the poll interval."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pause = 1.0
    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(queue.CHANNEL, lambda *_: wake.set())
            wake.set()  # whatever was queued while we were not listening
            pause = 1.0
            while not stop.is_set() and not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("worker_listen_failed", error=str(exc), retry_in_s=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(pause * 2, 30.0)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()


@dataclass
class _Loop:
    """One worker's state: the jobs it runs now (at most ``slots``, one per tenant) and what wakes it."""

    runtime: Runtime
    registry: JobRegistry
    worker: str
    slots: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    running: dict[asyncio.Task[None], ClaimedJob] = field(default_factory=dict)
    report: WorkReport = field(default_factory=WorkReport)

    def start(self, job: ClaimedJob) -> None:
        task = asyncio.create_task(run_job(self.runtime, self.registry, job, self.report))
        self.running[task] = job
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        self.wake.set()  # a slot is free

    async def fill(self) -> int:
        """Claim as many due jobs as there are free slots, never two of one tenant; returns how many started."""
        free = self.slots - len(self.running)
        if free <= 0:
            return 0
        busy = [j.tenant_id for j in self.running.values() if j.tenant_id is not None]
        claimed = await queue.claim(
            self.runtime.sessionmaker,
            self.worker,
            limit=free,
            lease=self.runtime.job_lease,
            busy_tenants=busy,
            per_tenant=1,
        )
        for job in claimed:
            self.start(job)
        return len(claimed)


async def run_forever(runtime: Runtime, stop: asyncio.Event) -> None:
    """The worker: schedule what is due, run up to ``worker_slots`` jobs at once, sleep until woken.

    Woken by a NOTIFY (PostgreSQL), a finished job, or the poll interval, whichever comes first.
    """
    settings = runtime.settings
    loop = _Loop(runtime, build_registry(runtime), worker_name(), settings.worker_slots)
    interval = settings.worker_poll_seconds
    listener = None
    if settings.is_postgres and settings.worker_listen:
        listener = asyncio.create_task(listen_for_work(settings.listen_url, loop.wake, stop))
    log.info("worker_started", worker=loop.worker, interval_s=interval, slots=loop.slots, listen=listener is not None)
    last_sync: datetime | None = None
    last_full = -math.inf
    while not stop.is_set():
        loop.wake.clear()
        try:
            now = utcnow()
            if time.monotonic() - last_full >= settings.schedule_full_sync_seconds:
                await schedules.sync(runtime.sessionmaker, loop.registry, now)
                last_full, last_sync = time.monotonic(), now
            elif last_sync is None or (now - last_sync).total_seconds() >= settings.schedule_sync_seconds:
                # Tenants changed since the last pass (a little overlap: clocks of API hosts differ).
                await schedules.sync(
                    runtime.sessionmaker, loop.registry, now, changed_since=(last_sync or now) - timedelta(seconds=5)
                )
                last_sync = now
            metrics.SCHEDULED.inc(await schedule_recurring(runtime, loop.registry, now))
            await loop.fill()
        except Exception:
            log.exception("worker_loop_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_either(stop, loop.wake), timeout=interval)
    if loop.running:
        await asyncio.gather(*loop.running, return_exceptions=True)  # let running jobs finish their batch
    if listener is not None:
        await listener
    log.info("worker_stopped", worker=loop.worker, ran=loop.report.ran, failed=loop.report.failed)


async def _either(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
