"""The ledger's recurring work: release pending points, expire lots."""

from __future__ import annotations

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.ledger import service as ledger
from core.ledger.policy import expiry_of, policy_of
from core.program.settings import load_program_settings as load_program_settings  # where it lived: kept for callers
from core.runtime import Runtime


async def release_pending(runtime: Runtime, job: ClaimedJob) -> bool:
    """Release one batch per transaction; the last (short) batch marks the job done in the same transaction."""
    assert job.tenant_id is not None
    while True:
        async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
            released = await ledger.release_due(
                session, tenant_id=job.tenant_id, now=utcnow(), limit=runtime.settings.worker_batch_size
            )
            if released < runtime.settings.worker_batch_size:
                await complete(session, job)
                return True
        await runtime.between_batches(job)


async def expire_points(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    while True:
        async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
            program = await load_program_settings(session, job.tenant_id)
            expired = 0
            if expiry_of(program).kind != "never":
                expired = await ledger.expire_due(
                    session,
                    tenant_id=job.tenant_id,
                    policy=policy_of(program),
                    now=utcnow(),
                    limit=runtime.settings.worker_batch_size,
                )
            if not expired:
                await complete(session, job)
                return True
        await runtime.between_batches(job)


def register(registry: JobRegistry, runtime: Runtime) -> None:
    settings = runtime.settings
    registry.register("ledger.release", release_pending, every_seconds=settings.release_every_seconds)
    registry.register("ledger.expire", expire_points, every_seconds=settings.expire_every_seconds)
