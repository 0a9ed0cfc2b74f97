"""The job resource: a tier recalculation answers 202 with its job, the worker runs it in batches with progress,
the tenant follows it; retries with the same Idempotency-Key start one job; another tenant's job is a 404; a job
that fails every attempt shows a problem, not a traceback."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select, update

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import queue
from core.jobs.models import Job
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from core.tiers.jobs import RECALCULATE_JOB, recalculate_tiers
from core.worker import tick


async def _program_with_tiers(tenant: TenantHandle, members: int) -> list[str]:
    enrolled = [(await tenant.enrol(f"j-{i}"))["id"] for i in range(members)]
    await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})  # after them: all will move
    return enrolled


async def test_recalculation_is_a_job_the_tenant_follows(tenant: TenantHandle, runtime: Runtime) -> None:
    await _program_with_tiers(tenant, 5)
    started = await tenant.post("/v1/tiers/recalculate")
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "queued" and job["kind"] == RECALCULATE_JOB
    assert started.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["progress"] == {"done": 0, "total": None} and job["started_at"] is None

    # In batches of two: the job records its progress (and where it stands) after each one.
    small = Runtime(**{**runtime.__dict__, "settings": replace(runtime.settings, worker_batch_size=2)})
    await tick(small, tenant.id)
    done = (await tenant.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "done", done
    assert done["progress"] == {"done": 5, "total": 5}
    assert done["result"] == {"evaluated": 5, "counts": {"enrolment": 5}}
    assert done["started_at"] and done["finished_at"] and done["problem"] is None
    tiers = {t["code"]: t["members"] for t in (await tenant.get("/v1/tiers")).json()}
    assert tiers == {"base": 5}

    listed = (await tenant.get("/v1/jobs")).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert (await tenant.get("/v1/jobs", params={"status": "queued"})).json()["items"] == []
    # The recurring jobs of the tenant are not its tasks: they are not listed.
    assert all(j["kind"] == RECALCULATE_JOB for j in listed["items"])


async def test_a_job_resumes_after_the_last_committed_batch(tenant: TenantHandle, runtime: Runtime) -> None:
    members = sorted(await _program_with_tiers(tenant, 4))
    async with tenant_session(runtime.sessionmaker, None) as session:
        job_id = await queue.start_task(session, RECALCULATE_JOB, tenant_id=tenant.id)
    [claimed] = await queue.claim(runtime.sessionmaker, "w", limit=1, tenant_ids=[tenant.id], kinds=[RECALCULATE_JOB])
    # As if a worker had committed the first two members' batch, recorded it, then died.
    resumed = replace(claimed, payload={"after": members[1], "evaluated": 2, "counts": {"x": 2}, "total": 4})
    assert await recalculate_tiers(runtime, resumed)
    async with tenant_session(runtime.sessionmaker, None) as session:
        job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
    assert job.status == "done" and job.result == {"evaluated": 4, "counts": {"x": 2, "enrolment": 2}}
    assert (job.progress_done, job.progress_total) == (4, 4)


async def test_a_retried_request_starts_one_job(tenant: TenantHandle) -> None:
    headers = {"Idempotency-Key": f"recalc-{uuid.uuid4()}"}
    first = await tenant.post("/v1/tiers/recalculate", headers=headers)
    again = await tenant.post("/v1/tiers/recalculate", headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert len((await tenant.get("/v1/jobs")).json()["items"]) == 1


async def test_another_tenants_job_is_not_found(tenant: TenantHandle, make_tenant: MakeTenant) -> None:
    job = (await tenant.post("/v1/tiers/recalculate")).json()
    other = await make_tenant()
    missing = await other.get(f"/v1/jobs/{job['id']}")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")
    assert (await other.get("/v1/jobs")).json()["items"] == []
    assert (await tenant.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 404


async def test_hostile_queries_are_clear_4xx(tenant: TenantHandle) -> None:
    bad_cursor = await tenant.get("/v1/jobs", params={"cursor": "!!!"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["field"] == "cursor"
    bad_status = await tenant.get("/v1/jobs", params={"status": "exploded"})
    assert bad_status.status_code in (400, 422)
    assert (await tenant.get("/v1/jobs/not-a-uuid")).status_code in (400, 404, 422)


async def test_a_job_that_fails_every_attempt_shows_a_problem(tenant: TenantHandle, runtime: Runtime) -> None:
    async with tenant_session(runtime.sessionmaker, None) as session:
        job_id = await queue.start_task(session, "test.always_fails", tenant_id=tenant.id)
    now = utcnow()
    for attempt in range(3):  # tasks get three attempts
        later = now + timedelta(hours=2 * attempt)
        [claimed] = await queue.claim(
            runtime.sessionmaker, "w", limit=1, now=later, tenant_ids=[tenant.id], kinds=["test.always_fails"]
        )
        await queue.fail(runtime.sessionmaker, claimed, "Traceback ... secret internals")
    job = (await tenant.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "dead" and job["attempts"] == 3
    assert job["problem"]["type"].endswith("/job-failed") and "secret internals" not in str(job)


async def _dead_task(runtime: Runtime, tenant: TenantHandle, kind: str = "test.always_fails") -> uuid.UUID:
    async with tenant_session(runtime.sessionmaker, None) as session:
        job_id = await queue.start_task(session, kind, tenant_id=tenant.id)
    now = utcnow()
    for attempt in range(3):
        [claimed] = await queue.claim(
            runtime.sessionmaker,
            "w",
            limit=1,
            now=now + timedelta(hours=2 * attempt),
            tenant_ids=[tenant.id],
            kinds=[kind],
        )
        await queue.fail(runtime.sessionmaker, claimed, "Traceback ... KeyError: 'secret internals'")
    return job_id


async def test_a_dead_job_is_retried_once_by_its_tenant_and_listed_for_the_operator(
    tenant: TenantHandle, make_tenant: MakeTenant, runtime: Runtime, client, platform_headers
) -> None:
    job_id = await _dead_task(runtime, tenant)
    # The operator sees it among the dead jobs, with its last error (tenants never do).
    listed = await client.get("/v1/platform/jobs", params={"tenant_id": str(tenant.id)}, headers=platform_headers)
    assert listed.status_code == 200, listed.text
    [dead] = listed.json()["items"]
    assert (dead["id"], dead["status"], dead["task"]) == (str(job_id), "dead", True)
    assert "secret internals" in dead["last_error"]
    assert (await tenant.get("/v1/platform/jobs")).status_code == 401  # a tenant key is not the platform's

    # Another tenant's retry is a 404 and changes nothing; the tenant's own requeues it now, attempts afresh.
    other = await make_tenant()
    assert (await other.post(f"/v1/jobs/{job_id}/retry")).status_code == 404
    retried = await tenant.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    job = retried.json()
    assert (job["status"], job["attempts"], job["problem"], job["finished_at"]) == ("queued", 0, None, None)
    # Retried again while queued: a 409 naming the job; the platform's retry says the same.
    again = await tenant.post(f"/v1/jobs/{job_id}/retry")
    assert again.status_code == 409 and again.json()["field"] == "job_id"
    assert (await client.post(f"/v1/platform/jobs/{job_id}/retry", headers=platform_headers)).status_code == 409
    assert (await client.post(f"/v1/platform/jobs/{uuid.uuid4()}/retry", headers=platform_headers)).status_code == 404
    # It is claimed again, once.
    claimed = await queue.claim(runtime.sessionmaker, "w", limit=5, tenant_ids=[tenant.id], kinds=["test.always_fails"])
    assert [c.id for c in claimed] == [job_id]
    await _finish(runtime, job_id)


async def test_two_retries_at_once_requeue_a_dead_job_once(
    tenant: TenantHandle, runtime: Runtime, client, platform_headers
) -> None:
    job_id = await _dead_task(runtime, tenant, "test.fails_then_retried")
    answers = await asyncio.gather(
        tenant.post(f"/v1/jobs/{job_id}/retry"),
        client.post(f"/v1/platform/jobs/{job_id}/retry", headers=platform_headers),
        tenant.post(f"/v1/jobs/{job_id}/retry"),
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    await _finish(runtime, job_id)


async def _finish(runtime: Runtime, job_id: uuid.UUID) -> None:
    """Leave no job of a kind no worker knows queued in the shared database, for another test's worker to fail."""
    async with tenant_session(runtime.sessionmaker, None) as session:
        await session.execute(update(Job).where(Job.id == job_id).values(status="done", finished_at=utcnow()))
