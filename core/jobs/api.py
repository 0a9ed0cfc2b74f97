"""HTTP: the job resource. Long work a tenant starts (a tier recalculation; exports and imports may follow) answers
202 with a job, which is followed here: state, progress, timings, and the result or a problem."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from core.http.deps import CurrentPrincipal, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.jobs import queue
from core.jobs.models import Job

JobState = Literal["queued", "running", "done", "dead"]


class ProgressOut(msgspec.Struct):
    done: int
    #: Null until the job knows how much there is.
    total: int | None


class JobOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    #: queued (waiting for a worker, or for a retry), running, done (``result`` holds the answer) or dead (it failed
    #: every attempt: ``problem`` says so; the operator has the details).
    status: str
    progress: ProgressOut
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    problem: dict[str, Any] | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            job.id,
            job.kind,
            job.status,
            ProgressOut(job.progress_done, job.progress_total),
            job.attempts,
            job.created_at,
            job.started_at,
            job.finished_at,
            job.result,
            job.problem,
        )


def accepted(job: Job) -> Response[JobOut]:
    """A 202 answer for work that became a job, pointing at where to follow it."""
    return Response(JobOut.of(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


async def get_task(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """One of the tenant's tasks. ``jobs`` is a platform table (the worker sees every row), so the tenant filter is
    explicit here: another tenant's job is a 404, like any of its resources."""
    job = (
        await session.execute(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id, Job.task.is_(True)))
    ).scalar_one_or_none()
    if job is None:
        raise NotFound("No such job.", field="job_id")
    return job


class JobsController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @get(operation_id="listJobs")
    async def list_jobs(
        self,
        db: Db,
        principal: CurrentPrincipal,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        status: FromQuery[JobState | None] = None,
        kind: FromQuery[str | None] = None,
    ) -> Page[JobOut]:
        """The tenant's jobs (long tasks it started), newest first."""
        assert principal.tenant_id is not None
        check_limit(limit)
        query = (
            select(Job)
            .where(Job.tenant_id == principal.tenant_id, Job.task.is_(True))
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit + 1)
        )
        if cursor:
            created, last = decode_cursor(cursor, 2)
            when = datetime.fromisoformat(str(created))
            query = query.where((Job.created_at < when) | ((Job.created_at == when) & (Job.id < cursor_uuid(last))))
        if status:
            query = query.where(Job.status == status)
        if kind:
            query = query.where(Job.kind == kind)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda j: encode_cursor(j.created_at, j.id))
        return Page([JobOut.of(j) for j in items], next_cursor)

    @get("/{job_id:uuid}", operation_id="getJob")
    async def get_job(self, db: Db, principal: CurrentPrincipal, job_id: FromPath[uuid.UUID]) -> JobOut:
        """One job: its state, progress (done of total), when it started and finished, its result or problem."""
        assert principal.tenant_id is not None
        return JobOut.of(await get_task(db, principal.tenant_id, job_id))

    @post("/{job_id:uuid}/retry", operation_id="retryJob", opt={"scope": "admin"}, status_code=200)
    async def retry_job(self, db: Db, principal: CurrentPrincipal, job_id: FromPath[uuid.UUID]) -> JobOut:
        """Run a dead job again (it failed every attempt): queued now with its attempts counted afresh, resuming
        from its last committed batch. Only a dead job is retried: any other state is a 409, and of two retries at
        once one requeues it, the other is a 409."""
        assert principal.tenant_id is not None
        await get_task(db, principal.tenant_id, job_id)
        if not await queue.retry_dead(db, job_id, tenant_id=principal.tenant_id):
            raise Conflict("Only a dead job can be retried; this one is not dead.", field="job_id")
        await db.flush()
        return JobOut.of(await _refreshed(db, job_id))


async def _refreshed(db: AsyncSession, job_id: uuid.UUID) -> Job:
    job = (await db.execute(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))).scalar_one()
    return job


class PlatformJobOut(msgspec.Struct):
    """A job as the operator sees it: any kind (recurring ones too), any tenant, with its last error."""

    id: uuid.UUID
    kind: str
    #: None: a platform job.
    tenant_id: uuid.UUID | None
    status: str
    #: Whether a tenant started it (a task, followed at /v1/jobs/{id}) or it is recurring or internal work.
    task: bool
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    finished_at: datetime | None
    #: The last failure's error and traceback (the operator's only: tenants see a problem document).
    last_error: str | None

    @classmethod
    def of(cls, job: Job) -> PlatformJobOut:
        return cls(
            job.id,
            job.kind,
            job.tenant_id,
            job.status,
            job.task,
            job.attempts,
            job.max_attempts,
            job.created_at,
            job.run_at,
            job.finished_at,
            job.last_error,
        )


class PlatformJobsController(Controller):
    """The operator's view of the queue: dead jobs (or any state) of every tenant and kind, and their retry."""

    path = "/v1/platform/jobs"
    tags = ["platform"]
    opt = {"auth": "platform"}

    @get(operation_id="listPlatformJobs")
    async def list_jobs(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        status: FromQuery[JobState] = "dead",
        kind: FromQuery[str | None] = None,
        tenant_id: FromQuery[uuid.UUID | None] = None,
    ) -> Page[PlatformJobOut]:
        """Jobs in one state (``dead`` by default: they failed every attempt), newest first, with their last error."""
        check_limit(limit)
        query = select(Job).where(Job.status == status).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        if cursor:
            created, last = decode_cursor(cursor, 2)
            when = datetime.fromisoformat(str(created))
            query = query.where((Job.created_at < when) | ((Job.created_at == when) & (Job.id < cursor_uuid(last))))
        if kind:
            query = query.where(Job.kind == kind)
        if tenant_id:
            query = query.where(Job.tenant_id == tenant_id)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda j: encode_cursor(j.created_at, j.id))
        return Page([PlatformJobOut.of(j) for j in items], next_cursor)

    @post("/{job_id:uuid}/retry", operation_id="retryPlatformJob", status_code=200)
    async def retry_job(self, db: Db, job_id: FromPath[uuid.UUID]) -> PlatformJobOut:
        """Run a dead job again now (any tenant's, any kind), its attempts counted afresh; 404 for no such job, 409
        when it is not dead (of two retries at once, one requeues it)."""
        if (await db.execute(select(Job.id).where(Job.id == job_id))).scalar_one_or_none() is None:
            raise NotFound("No such job.", field="job_id")
        if not await queue.retry_dead(db, job_id):
            raise Conflict("Only a dead job can be retried; this one is not dead.", field="job_id")
        await db.flush()
        return PlatformJobOut.of(await _refreshed(db, job_id))
