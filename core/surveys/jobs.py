"""The worker's survey job (``surveys.invitations``): invite the members whose event of a survey's type happened
the survey's number of days ago (set-based, once per event)."""

from __future__ import annotations

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.runtime import Runtime
from core.surveys.service import invite_after_events

INVITATIONS_JOB = "surveys.invitations"


async def run(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
        await invite_after_events(session, job.tenant_id, utcnow())
        await complete(session, job)
    return True


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(INVITATIONS_JOB, run, every_seconds=runtime.settings.survey_invitations_every_seconds)
