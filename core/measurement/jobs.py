"""The measurement's recurring work: the nightly loyalty run of each tenant (and one on demand, queued by
:func:`core.measurement.service.request_run`)."""

from __future__ import annotations

import uuid
from typing import Any

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.jobs.queue import ClaimedJob
from core.jobs.registry import JobRegistry
from core.measurement import liability_rollup, nightly
from core.measurement.service import LOYALTY_RUN
from core.program.settings import load_program_settings
from core.runtime import Runtime

KIND = LOYALTY_RUN
DAY = 86_400


async def loyalty_run(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None

    async def between() -> None:
        await runtime.between_batches(job)

    await nightly.run(runtime.sessionmaker, job.tenant_id, utcnow(), between_pages=between)
    await between()  # a fresh lease for the roll-up (one transaction: about a minute at 10M entries)
    await build_liability_rollup(runtime, job.tenant_id)
    async with tenant_session(runtime.sessionmaker, None) as session:
        await queue.complete(session, job)
    return True


async def build_liability_rollup(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Rebuild the tenant's liability roll-up in its program's zone (one transaction)."""
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        program = await load_program_settings(session, tenant_id)
        return await liability_rollup.build(session, tenant_id, utcnow(), program.tz)


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(KIND, loyalty_run, every_seconds=DAY)
