"""The tiers' recurring work: close expired status (renew, or move down)."""

from __future__ import annotations

from sqlalchemy import select

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.ledger.jobs import load_program_settings
from core.members.models import Member
from core.program.config import current_config
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


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(
        "tiers.close_periods", close_tier_periods, every_seconds=runtime.settings.housekeeping_every_seconds
    )
