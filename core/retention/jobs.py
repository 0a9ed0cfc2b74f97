"""Retention: old rows are deleted by the worker, in small batches, so nothing grows forever.

* platform rows, by ``retention.platform`` (one job): finished jobs older than ``FEALTY_RETENTION_DAYS``, dead jobs
  older than ``FEALTY_RETENTION_DEAD_DAYS`` (kept longer: the operator lists them with ``fealty jobs dead``),
  processed Stripe events older than ``FEALTY_RETENTION_DAYS`` (Stripe retries an event for three days at most, so
  the de-duplication they serve is long over);
* tenant rows, by ``retention.tenant`` (one job per tenant, inside its row-level security scope): dispatched outbox
  events and finished webhook deliveries (with their attempts) older than the tenant's ``retention_days`` (a program
  setting within ``FEALTY_RETENTION_MIN_DAYS``..``FEALTY_RETENTION_MAX_DAYS``, default ``FEALTY_RETENTION_DAYS``),
  dead deliveries after ``FEALTY_RETENTION_DEAD_DAYS`` (or the tenant's days, if longer), so they can be replayed
  meanwhile. Deliveries still waiting and undispatched events are never deleted.

Each batch is one short transaction (``FEALTY_WORKER_BATCH_SIZE`` rows); the job heartbeats between batches.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import StripeEvent
from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.jobs import metrics
from core.jobs.models import Job
from core.jobs.queue import ClaimedJob
from core.jobs.registry import JobRegistry
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.settings import Settings
from core.webhooks.models import WebhookDelivery

PLATFORM_JOB = "retention.platform"
TENANT_JOB = "retention.tenant"
jobs = table_of(Job)
stripe_events = table_of(StripeEvent)
outbox = table_of(OutboxEvent)
deliveries = table_of(WebhookDelivery)


def tenant_days(settings: Settings, options: dict[str, Any] | None) -> int:
    """The tenant's retention in days: its program setting if any, kept within the platform's bounds."""
    wanted = (options or {}).get("retention_days")
    days = int(wanted) if isinstance(wanted, int) else settings.retention_days
    return min(settings.retention_max_days, max(settings.retention_min_days, days))


async def _batched(runtime: Runtime, job: ClaimedJob, tenant_id: uuid.UUID | None, table: Any, *where: Any) -> int:
    """Delete the rows matching ``where``, a batch per transaction; returns how many."""
    key = table.c.id
    size = runtime.settings.worker_batch_size
    total = 0
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            ids = (await session.execute(select(key).where(*where).limit(size))).scalars().all()
            if ids:
                scope = [table.c.tenant_id == tenant_id] if tenant_id is not None else []
                await session.execute(delete(table).where(*scope, key.in_(ids)))
        total += len(ids)
        if ids:
            metrics.PURGED.labels(table.name).inc(len(ids))
        if len(ids) < size:
            return total
        await runtime.between_batches(job)


async def purge_platform(runtime: Runtime, job: ClaimedJob) -> bool:
    settings, now = runtime.settings, utcnow()
    kept, dead_kept = now - timedelta(days=settings.retention_days), now - timedelta(days=settings.retention_dead_days)
    await _batched(
        runtime,
        job,
        None,
        jobs,
        or_(
            and_(jobs.c.status == "done", jobs.c.finished_at < kept),
            and_(jobs.c.status == "dead", jobs.c.finished_at < dead_kept),
        ),
    )
    await _batched(runtime, job, None, stripe_events, stripe_events.c.received_at < kept)
    return True


async def purge_tenant(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    tenant_id, settings, now = job.tenant_id, runtime.settings, utcnow()
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        days = tenant_days(settings, await _options(session, tenant_id))
    kept = now - timedelta(days=days)
    dead_kept = now - timedelta(days=max(days, settings.retention_dead_days))
    scope = deliveries.c.tenant_id == tenant_id
    # Replays point at the delivery they replay (replay_of): delete the newer rows first.
    await _batched(
        runtime,
        job,
        tenant_id,
        deliveries,
        scope,
        or_(
            and_(deliveries.c.status.in_(("succeeded", "cancelled")), deliveries.c.finished_at < kept),
            and_(deliveries.c.status == "dead", deliveries.c.finished_at < dead_kept),
        ),
        ~deliveries.c.id.in_(select(deliveries.c.replay_of).where(scope, deliveries.c.replay_of.is_not(None))),
    )
    await _batched(runtime, job, tenant_id, outbox, outbox.c.tenant_id == tenant_id, outbox.c.dispatched_at < kept)
    return True


async def _options(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, Any]:
    from core.program.models import Program

    options = (await session.execute(select(Program.options).where(Program.tenant_id == tenant_id))).scalar()
    return dict(options or {})


def register(registry: JobRegistry, runtime: Runtime) -> None:
    every = runtime.settings.retention_every_seconds
    registry.register(PLATFORM_JOB, purge_platform, every_seconds=every, per_tenant=False)
    registry.register(TENANT_JOB, purge_tenant, every_seconds=every)


def cutoff(days: int, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)
