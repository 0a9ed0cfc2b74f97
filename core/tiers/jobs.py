"""The tiers' work: close expired status (renew, or move down), recurring; re-evaluate every member, a task."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from sqlalchemy import func, select

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.members.models import Member
from core.program.config import current_config
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.tiers import service


async def close_tier_periods(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    tenant_id = job.tenant_id
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            now = utcnow()
            program = await load_program_settings(session, tenant_id)
            config = await current_config(session, runtime.configs, tenant_id)
            due = (
                (
                    await session.execute(
                        select(Member)
                        .where(Member.tier_valid_until <= now, Member.status == "active")
                        .order_by(Member.tier_valid_until)
                        .limit(runtime.settings.worker_batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            planned = await service.plan_moves(session, tenant_id, config, program, due, now, expired_only=True)
            await service.apply_moves(
                session,
                tenant_id,
                planned,
                now,
                hooks=program.hooks(runtime.plugins),
                tenant=program.tenant_view(tenant_id, runtime.plugins),
            )
            if len(due) < runtime.settings.worker_batch_size:
                await complete(session, job)
                return True
        await runtime.between_batches(job)


RECALCULATE_JOB = "tiers.recalculate"


async def recalculate_tiers(runtime: Runtime, job: ClaimedJob) -> bool:
    """``POST /v1/tiers/recalculate``: every active member re-evaluated, a batch per transaction, in member id
    order. After each batch the job records its progress and where it stands (the last member id and the counts so
    far), so a worker that dies resumes after the last committed batch; a batch repeated after a crash moves
    nobody twice (a member already moved no longer qualifies for the move)."""
    assert job.tenant_id is not None
    tenant_id = job.tenant_id
    state = job.payload
    counts: Counter[str] = Counter(state.get("counts", {}))
    evaluated = int(state.get("evaluated", 0))
    after = state.get("after")
    total = state.get("total")
    size = runtime.settings.worker_batch_size
    if total is None:
        async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
            total = int(
                (await session.execute(select(func.count(Member.id)).where(Member.status == "active"))).scalar_one()
            )
        await queue.progress(runtime.sessionmaker, job, 0, total, lease=runtime.job_lease)
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            now = utcnow()
            program = await load_program_settings(session, tenant_id)
            config = await current_config(session, runtime.configs, tenant_id)
            query = select(Member).where(Member.status == "active").order_by(Member.id).limit(size)
            if after is not None:
                query = query.where(Member.id > uuid.UUID(after))
            chunk = (await session.execute(query)).scalars().all()
            planned = await service.plan_moves(session, tenant_id, config, program, chunk, now)
            await service.apply_moves(
                session,
                tenant_id,
                planned,
                now,
                hooks=program.hooks(runtime.plugins),
                tenant=program.tenant_view(tenant_id, runtime.plugins),
                reason_prefix="recalc:",
            )
            counts.update(p.move.reason for p in planned)
            evaluated += len(chunk)
            if len(chunk) < size:
                result = {"evaluated": evaluated, "counts": dict(counts)}
                await queue.progress_in(session, job, evaluated, max(total, evaluated))
                await complete(session, job, result=result)
                return True
            after = str(chunk[-1].id)
        state = {"after": after, "evaluated": evaluated, "counts": dict(counts), "total": total}
        await queue.progress(runtime.sessionmaker, job, evaluated, total, lease=runtime.job_lease, payload=state)
        if runtime.settings.worker_batch_pause_seconds:
            await asyncio.sleep(runtime.settings.worker_batch_pause_seconds)


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(
        "tiers.close_periods", close_tier_periods, every_seconds=runtime.settings.housekeeping_every_seconds
    )
    registry.register(RECALCULATE_JOB, recalculate_tiers)
