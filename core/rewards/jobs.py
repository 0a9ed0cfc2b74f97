"""The rewards' recurring work: expire issued vouchers past their ``expires_at``."""

from __future__ import annotations

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete, heartbeat
from core.jobs.registry import JobRegistry
from core.rewards import service
from core.runtime import Runtime

BATCH = 500


async def expire_vouchers(runtime: Runtime, job: ClaimedJob) -> bool:
    """One batch per transaction; the last (short) batch marks the job done in the same transaction."""
    assert job.tenant_id is not None
    while True:
        async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
            due = await service.expire_due(session, tenant_id=job.tenant_id, now=utcnow(), limit=BATCH)
            if due < BATCH:
                await complete(session, job)
                return True
        await heartbeat(runtime.sessionmaker, job)


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register("rewards.expire", expire_vouchers, every_seconds=runtime.settings.housekeeping_every_seconds)
