"""The measurement's recurring work: the nightly loyalty run of each tenant (and one on demand)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.jobs.queue import ClaimedJob
from core.jobs.registry import JobRegistry
from core.measurement import nightly
from core.runtime import Runtime

KIND = "measurement.loyalty"
DAY = 86_400


async def loyalty_run(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None

    async def between() -> None:
        await runtime.between_batches(job)

    await nightly.run(runtime.sessionmaker, job.tenant_id, utcnow(), between_pages=between)
    async with tenant_session(runtime.sessionmaker, None) as session:
        await queue.complete(session, job)
    return True


async def request_run(db: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Queue a run now (in the caller's transaction): a loyalty model changed, or an admin asked."""
    await queue.enqueue_or_wake(db, KIND, tenant_id=tenant_id, dedupe_key=f"{KIND}:{tenant_id}:requested")


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(KIND, loyalty_run, every_seconds=DAY)
