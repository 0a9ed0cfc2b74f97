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
import os
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select

from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.idempotency.service import purge_expired
from core.ids import new_id
from core.jobs import queue
from core.jobs.models import Job
from core.jobs.queue import ClaimedJob
from core.jobs.registry import Handler, JobRegistry
from core.ledger import jobs as ledger_jobs
from core.ledger.jobs import load_program_settings
from core.outbox.service import emit
from core.plugin.types import JobContext
from core.runtime import Runtime
from core.tenancy.models import Tenant

log = structlog.get_logger("fealty.worker")
jobs_table = table_of(Job)
tenants = table_of(Tenant)
DONE_JOBS_KEPT = timedelta(days=1)
#: Feature modules with a ``register(registry, runtime)`` adding their job kinds.
FEATURE_JOB_MODULES: tuple[str, ...] = (
    "core.tiers.jobs",
    "core.rewards.jobs",
    "core.webhooks.jobs",
    "core.billing.jobs",
    "core.care.jobs",
    "core.measurement.jobs",
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


async def purge_finished_jobs(runtime: Runtime, job: ClaimedJob) -> bool:
    async with tenant_session(runtime.sessionmaker, None) as session:
        await session.execute(
            delete(jobs_table).where(
                jobs_table.c.status == "done", jobs_table.c.finished_at < utcnow() - DONE_JOBS_KEPT
            )
        )
        await queue.complete(session, job)
    return True


def build_registry(runtime: Runtime) -> JobRegistry:
    """Every job kind: core's, each feature's, and the plugins' scheduled jobs."""
    registry = JobRegistry()
    every = runtime.settings.housekeeping_every_seconds
    registry.register("idempotency.purge", purge_idempotency_keys, every_seconds=every)
    registry.register("platform.idempotency.purge", purge_idempotency_keys, every_seconds=every, per_tenant=False)
    registry.register("jobs.purge", purge_finished_jobs, every_seconds=every, per_tenant=False)
    ledger_jobs.register(registry, runtime)
    for path in FEATURE_JOB_MODULES:
        importlib.import_module(path).register(registry, runtime)
    for plugin, scheduled in runtime.plugins.scheduled_jobs():
        registry.register(
            f"plugin.{plugin}.{scheduled.name}",
            _plugin_runner(scheduled.name, scheduled.run),
            every_seconds=scheduled.every_seconds,
            plugin=plugin,
        )
    return registry


def _plugin_runner(name: str, run: Callable[[JobContext], Awaitable[None]]) -> Handler:
    async def handler(runtime: Runtime, job: ClaimedJob) -> bool:
        assert job.tenant_id is not None
        tenant_id = job.tenant_id
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            program = await load_program_settings(session, tenant_id)
            tenant, now = program.tenant_view(tenant_id, runtime.plugins), utcnow()
            services = runtime.plugins.services(session, tenant, now)

            async def emit_event(kind: str, data: dict[str, object]) -> None:
                await emit(session, tenant_id, kind, dict(data))

            await run(JobContext(tenant=tenant, session=session, now=now, services=services, job=name, emit=emit_event))
            await queue.complete(session, job)
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
    """Queue each recurring job once per interval (per tenant), however many workers call this at once.

    The dedupe key names the interval, so a second worker's insert for the same interval is ignored. ``force``
    (tests, ``fealty worker --once``) uses a key of its own so that everything runs now.
    """
    query = select(tenants.c.id, tenants.c.enabled_plugins).where(tenants.c.status == "active")
    if tenant_ids is not None:
        query = query.where(tenants.c.id.in_(list(tenant_ids)))
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        active = (await session.execute(query)).all()
    stamp = now.timestamp()
    nonce = new_id().hex if force else None
    rows: list[dict[str, Any]] = []
    for recurring in registry.recurring:
        bucket = nonce or str(int(stamp // recurring.every_seconds))
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
                    "dedupe_key": f"{recurring.kind}:{owner or 'platform'}:{bucket}",
                    "payload": {},
                    "status": "queued",
                    "run_at": now,
                    "attempts": 0,
                    "max_attempts": 10,
                    "created_at": now,
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
    except Exception as exc:  # a failing job is retried with backoff, then buried; the worker goes on
        status = await queue.fail(runtime.sessionmaker, job, "".join(traceback.format_exception(exc))[-4000:])
        report.failed += 1
        log.warning("job_failed", kind=job.kind, attempts=job.attempts, status=status, error=str(exc))
    finally:
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
) -> WorkReport:
    """Claim and run what is due now, until nothing is."""
    report = WorkReport()
    while True:
        claimed = await queue.claim(
            runtime.sessionmaker, worker, limit=limit, lease=runtime.job_lease, tenant_ids=tenant_ids
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


async def run_forever(runtime: Runtime, stop: asyncio.Event) -> None:
    registry = build_registry(runtime)
    worker = worker_name()
    interval = runtime.settings.worker_poll_seconds
    log.info("worker_started", worker=worker, interval_s=interval)
    while not stop.is_set():
        try:
            await schedule_recurring(runtime, registry, utcnow())
            report = await run_due(runtime, registry, worker)
            if report.ran or report.failed:
                log.info("worker_ran", ran=report.ran, failed=report.failed, kinds=report.kinds)
        except Exception:
            log.exception("worker_loop_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    log.info("worker_stopped", worker=worker)
