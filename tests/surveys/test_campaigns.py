"""A survey campaign to a segment or a tier is a job (202, followed at /v1/jobs/{id}): streamed a page at a time with
its progress, no cap on its size, each member invited once per campaign -- when the campaign is posted again with the
same Idempotency-Key, posted again without one, or run by two workers at once on PostgreSQL. Bad input is a problem
and starts nothing."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from core.care.models import CareOccasion
from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.runtime import Runtime
from core.surveys.jobs import CAMPAIGN_JOB, campaign_payload, run_campaign
from core.surveys.models import SurveyInvitation
from core.surveys.service import Audience, campaign_page
from core.testing import AppClient, MakeTenant, TenantHandle, create_tenant
from core.tiers.models import Tier
from core.worker import tick
from tests.surveys.test_results import SURVEY, regulars_segment


def _small(runtime: Runtime, size: int = 2) -> Runtime:
    """The runtime with pages of ``size`` members."""
    return Runtime(**{**runtime.__dict__, "settings": replace(runtime.settings, worker_batch_size=size)})


async def _program(t: TenantHandle, regulars: int, others: int) -> tuple[dict[str, Any], list[str]]:
    await regulars_segment(t)
    survey = (await t.post("/v1/surveys", json=SURVEY | {"code": f"c-{uuid.uuid4().hex[:8]}"})).json()
    flags = [True] * regulars + [False] * others
    random.Random(7).shuffle(flags)  # members of the segment and others mixed in member order
    wanted = []
    for regular in flags:
        member = await t.enrol(attributes={"regular": regular})
        if regular:
            wanted.append(member["id"])
    assert len(wanted) == regulars
    return survey, sorted(wanted)


async def _invited(runtime: Runtime, tenant_id: uuid.UUID, survey_id: str) -> list[tuple[str, str]]:
    """(member, occasion) of every invitation, and every care occasion raised for one, must match one to one."""
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        rows = (
            await session.execute(
                select(SurveyInvitation.member_id, SurveyInvitation.occasion, SurveyInvitation.segments).where(
                    SurveyInvitation.survey_id == uuid.UUID(survey_id)
                )
            )
        ).all()
        occasions = (
            await session.execute(
                select(func.count())
                .select_from(CareOccasion)
                .where(CareOccasion.tenant_id == tenant_id, CareOccasion.trigger == "survey.invitation")
            )
        ).scalar_one()
    assert occasions == len(rows)
    assert all(r.segments == ["regulars"] for r in rows if r.occasion.startswith("campaign:spring"))
    return sorted((str(r.member_id), r.occasion) for r in rows)


async def test_a_segment_campaign_is_a_job_in_pages(tenant: TenantHandle, runtime: Runtime) -> None:
    survey, regulars = await _program(tenant, 5, 4)
    started = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "spring", "segment": "regulars"}
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["kind"] == CAMPAIGN_JOB and job["status"] == "queued"
    assert started.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["progress"] == {"done": 0, "total": None}
    # Nothing is invited by the request itself.
    assert (await tenant.get(f"/v1/surveys/{survey['id']}/invitations")).json()["items"] == []

    await tick(_small(runtime), tenant.id)  # nine members, pages of two: five pages
    done = (await tenant.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "done", done
    assert done["progress"] == {"done": 9, "total": 9}
    assert done["result"] == {"examined": 9, "matched": 5, "invited": 5, "skipped": 0}
    assert await _invited(runtime, tenant.id, survey["id"]) == [(m, f"campaign:spring:{m}") for m in regulars]

    # Posted again (no Idempotency-Key): a second job, which invites nobody twice.
    again = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "spring", "segment": "regulars"}
    )
    assert again.status_code == 202 and again.json()["id"] != job["id"]
    await tick(_small(runtime, 3), tenant.id)
    second = (await tenant.get(f"/v1/jobs/{again.json()['id']}")).json()
    assert second["result"] == {"examined": 9, "matched": 5, "invited": 0, "skipped": 5}
    assert len(await _invited(runtime, tenant.id, survey["id"])) == 5


async def test_a_tier_campaign_and_a_resumed_job(tenant: TenantHandle, runtime: Runtime) -> None:
    survey, _ = await _program(tenant, 0, 0)
    await tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    gold = []
    for i in range(5):
        member = await tenant.enrol(f"t-{i}")
        if i != 2:
            moved = await tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "test"})
            assert moved.status_code == 200, moved.text
            gold.append(member["id"])
    gold.sort()
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        tier_id = (await session.execute(select(Tier.id).where(Tier.code == "gold"))).scalar_one()
    audience = Audience(uuid.UUID(survey["id"]), "vip", tier_id=tier_id)
    payload = campaign_payload(audience)
    async with tenant_session(runtime.sessionmaker, None) as session:
        job_id = await queue.start_task(session, CAMPAIGN_JOB, tenant_id=tenant.id, payload=payload)
    [claimed] = await queue.claim(runtime.sessionmaker, "w", limit=1, tenant_ids=[tenant.id], kinds=[CAMPAIGN_JOB])
    # As if a worker had committed the first page (two gold members), recorded it, then died.
    small = _small(runtime)
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        page = await campaign_page(session, tenant.id, audience, after=None, size=2, now=utcnow())
    assert (page.examined, page.invited) == (2, 2)
    state = {**payload, "after": str(page.last), "examined": 2, "matched": 2, "invited": 2, "total": 4}
    assert await run_campaign(small, replace(claimed, payload=state))
    job = (await tenant.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "done" and job["progress"] == {"done": 4, "total": 4}
    assert job["result"] == {"examined": 4, "matched": 4, "invited": 4, "skipped": 0}
    invited = await _invited(runtime, tenant.id, survey["id"])
    assert invited == [(m, f"campaign:vip:{m}") for m in gold]
    # Through the API: a tier campaign is a job too.
    started = await tenant.post(f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "vip", "tier": "gold"})
    assert started.status_code == 202, started.text
    await tick(runtime, tenant.id)
    done = (await tenant.get(f"/v1/jobs/{started.json()['id']}")).json()
    assert done["result"] == {"examined": 4, "matched": 4, "invited": 0, "skipped": 4}


async def test_a_retried_request_starts_one_campaign(tenant: TenantHandle, runtime: Runtime) -> None:
    survey, regulars = await _program(tenant, 3, 2)
    headers = {"Idempotency-Key": f"campaign-{uuid.uuid4()}"}
    body = {"campaign": "spring", "segment": "regulars"}
    first = await tenant.post(f"/v1/surveys/{survey['id']}/invitations", json=body, headers=headers)
    again = await tenant.post(f"/v1/surveys/{survey['id']}/invitations", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.headers.get("idempotent-replayed") == "true"
    jobs = (await tenant.get("/v1/jobs", params={"kind": CAMPAIGN_JOB})).json()["items"]
    assert [j["id"] for j in jobs] == [first.json()["id"]]
    await tick(_small(runtime), tenant.id)
    # The same key after the job ran: still the same job, nothing new.
    third = await tenant.post(f"/v1/surveys/{survey['id']}/invitations", json=body, headers=headers)
    assert third.json()["id"] == first.json()["id"]
    await tick(runtime, tenant.id)
    assert await _invited(runtime, tenant.id, survey["id"]) == [(m, f"campaign:spring:{m}") for m in regulars]


async def test_bad_campaigns_are_problems_that_start_nothing(tenant: TenantHandle, make_tenant: MakeTenant) -> None:
    survey, _ = await _program(tenant, 1, 0)
    url = f"/v1/surveys/{survey['id']}/invitations"
    both = await tenant.post(url, json={"campaign": "x", "segment": "regulars", "tier": "gold"})
    assert both.status_code == 422 and both.json()["field"] == "member_ids"
    no_segment = await tenant.post(url, json={"campaign": "x", "segment": "nobody"})
    assert no_segment.status_code == 404 and no_segment.json()["field"] == "segment"
    no_tier = await tenant.post(url, json={"campaign": "x", "tier": "platinum"})
    assert no_tier.status_code == 422 and no_tier.json()["field"] == "tier"
    draft = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "draft", "status": "draft"})).json()
    closed = await tenant.post(f"/v1/surveys/{draft['id']}/invitations", json={"campaign": "x", "segment": "regulars"})
    assert closed.status_code == 409 and closed.json()["field"] == "status"
    # Another tenant cannot start a campaign on this survey, nor see it.
    other = await make_tenant()
    assert (await other.post(url, json={"campaign": "x", "segment": "regulars"})).status_code == 404
    assert (await tenant.get("/v1/jobs", params={"kind": CAMPAIGN_JOB})).json()["items"] == []
    assert (await other.get("/v1/jobs", params={"kind": CAMPAIGN_JOB})).json()["items"] == []


async def test_a_survey_closed_meanwhile_stops_the_campaign(tenant: TenantHandle, runtime: Runtime) -> None:
    survey, _ = await _program(tenant, 2, 1)
    started = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "spring", "segment": "regulars"}
    )
    assert started.status_code == 202
    assert (await tenant.patch(f"/v1/surveys/{survey['id']}", json={"status": "closed"})).status_code == 200
    await tick(runtime, tenant.id)
    job = (await tenant.get(f"/v1/jobs/{started.json()['id']}")).json()
    assert job["status"] == "done" and job["result"]["invited"] == 0 and "no longer active" in job["result"]["stopped"]
    assert await _invited(runtime, tenant.id, survey["id"]) == []


async def test_two_workers_invite_each_member_once(pg_client: AppClient) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    t = await create_tenant(pg_client)
    survey, regulars = await _program(t, 12, 8)
    body = {"campaign": "spring", "segment": "regulars"}
    ids = []
    for _ in range(2):
        started = await t.post(f"/v1/surveys/{survey['id']}/invitations", json=body)
        assert started.status_code == 202, started.text
        ids.append(started.json()["id"])
    claimed = []
    for worker in ("w1", "w2"):
        claimed += await queue.claim(runtime.sessionmaker, worker, limit=1, tenant_ids=[t.id], kinds=[CAMPAIGN_JOB])
    assert sorted(c.id for c in claimed) == sorted(uuid.UUID(i) for i in ids)
    small = _small(runtime, 3)
    assert await asyncio.gather(*(run_campaign(small, job) for job in claimed)) == [True, True]
    results = [(await t.get(f"/v1/jobs/{i}")).json()["result"] for i in ids]
    assert all(r["matched"] == 12 and r["examined"] == 20 for r in results)
    assert sum(r["invited"] for r in results) == 12 and sum(r["skipped"] for r in results) == 12
    assert await _invited(runtime, t.id, survey["id"]) == [(m, f"campaign:spring:{m}") for m in regulars]
