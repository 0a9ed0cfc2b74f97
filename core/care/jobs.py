"""The worker's care jobs: find core occasions (``care.occasions``) and deliver due messages (``care.deliver``)."""

from __future__ import annotations

import uuid

from core.care import delivery
from core.care.occasions import evaluate
from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, enqueue_or_wake
from core.jobs.registry import JobRegistry
from core.runtime import Runtime

OCCASIONS_JOB = "care.occasions"
DELIVER_JOB = "care.deliver"


async def find_occasions(runtime: Runtime, job: ClaimedJob) -> bool:
    """Every core occasion due for the tenant's active rules; wakes delivery when messages were queued."""
    assert job.tenant_id is not None
    raised = await evaluate(runtime, job.tenant_id, utcnow(), between_pages=lambda: runtime.between_batches(job))
    if raised.messages:
        await wake_delivery(runtime, job.tenant_id)
    return True


async def wake_delivery(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with tenant_session(runtime.sessionmaker, None) as session:
        await enqueue_or_wake(session, DELIVER_JOB, tenant_id=tenant_id, dedupe_key=f"{DELIVER_JOB}:{tenant_id}")


async def deliver(runtime: Runtime, job: ClaimedJob) -> bool:
    """One round of the tenant's due messages; False (run again at once) while more are due."""
    assert job.tenant_id is not None
    await delivery.deliver_round(runtime, job.tenant_id)
    async with tenant_session(runtime.sessionmaker, job.tenant_id, writes=False) as session:
        return not await delivery.has_due(session, job.tenant_id, utcnow())


def register(registry: JobRegistry, runtime: Runtime) -> None:
    settings = runtime.settings
    registry.register(OCCASIONS_JOB, find_occasions, every_seconds=settings.care_occasions_every_seconds)
    registry.register(DELIVER_JOB, deliver, every_seconds=settings.care_deliver_every_seconds)
