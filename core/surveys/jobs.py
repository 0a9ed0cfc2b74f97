"""The worker's survey jobs: ``surveys.invitations`` (recurring: invite the members whose event of a survey's type
happened the survey's number of days ago, set-based, once per event) and ``surveys.campaign`` (a task a tenant
starts with ``POST /v1/surveys/{id}/invitations`` naming a segment or a tier: every member of it invited, a page per
transaction, followed at ``GET /v1/jobs/{id}``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.runtime import Runtime
from core.segments.service import SCAN_LIMIT
from core.surveys.service import Audience, campaign_page, campaign_size, invite_after_events

INVITATIONS_JOB = "surveys.invitations"
CAMPAIGN_JOB = "surveys.campaign"


async def run(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
        await invite_after_events(session, job.tenant_id, utcnow())
        await complete(session, job)
    return True


def campaign_payload(audience: Audience) -> dict[str, Any]:
    """What the job is given when started (its state is added to it as it goes)."""
    return {
        "survey_id": str(audience.survey_id),
        "campaign": audience.campaign,
        "segment": audience.segment,
        "tier_id": None if audience.tier_id is None else str(audience.tier_id),
    }


async def run_campaign(runtime: Runtime, job: ClaimedJob) -> bool:
    """Invite every active member of the campaign's segment or tier, in member id order, a page per transaction.

    After each page the job records its progress (members looked at, of the active members of the tier, or of all
    for a segment, counted when it started) and where it stands, so a worker that dies resumes after the last
    committed page. A page run again (after a crash, by a second job of the same campaign, or by two workers at
    once) invites nobody twice: one invitation per survey and occasion (``campaign:<name>:<member>``) is the
    database's unique key, and only new invitations reach the care engine. The result: ``{"examined", "matched",
    "invited", "skipped"}`` (``skipped``: already invited by this campaign), and ``stopped`` when the survey stopped
    being active on the way."""
    assert job.tenant_id is not None
    tenant_id = job.tenant_id
    state = dict(job.payload)
    audience = Audience(
        uuid.UUID(state["survey_id"]),
        str(state["campaign"]),
        segment=state.get("segment"),
        tier_id=uuid.UUID(state["tier_id"]) if state.get("tier_id") else None,
    )
    size = max(1, min(runtime.settings.worker_batch_size, SCAN_LIMIT))
    counts = {name: int(state.get(name, 0)) for name in ("examined", "matched", "invited")}
    after = uuid.UUID(state["after"]) if state.get("after") else None
    total = state.get("total")
    if total is None:
        async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
            total = await campaign_size(session, audience)
        state["total"] = total
        await queue.progress(runtime.sessionmaker, job, 0, total, lease=runtime.job_lease, payload=state)
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            page = await campaign_page(session, tenant_id, audience, after=after, size=size, now=utcnow())
            for name, value in (("examined", page.examined), ("matched", page.matched), ("invited", page.invited)):
                counts[name] += value
            if page.stopped or page.examined < size:
                result: dict[str, Any] = {**counts, "skipped": counts["matched"] - counts["invited"]}
                if page.stopped:
                    result["stopped"] = "The survey is no longer active."
                await queue.progress_in(session, job, counts["examined"], max(int(total), counts["examined"]))
                await complete(session, job, result=result)
                return True
            after = page.last
        state.update(counts, after=str(after))
        await queue.progress(
            runtime.sessionmaker,
            job,
            counts["examined"],
            max(int(total), counts["examined"]),
            lease=runtime.job_lease,
            payload=state,
        )
        if runtime.settings.worker_batch_pause_seconds:
            await asyncio.sleep(runtime.settings.worker_batch_pause_seconds)


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(INVITATIONS_JOB, run, every_seconds=runtime.settings.survey_invitations_every_seconds)
    registry.register(CAMPAIGN_JOB, run_campaign)
