"""Enqueue, claim, complete and retry jobs.

Claiming is one statement: ``UPDATE jobs ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, so several
workers never claim the same job (on SQLite the write lock serialises claims). A claimed job carries a lease; a job
whose worker died is claimed again once the lease runs out. Handlers are idempotent and, where the work fits in one
transaction, mark the job done inside that transaction (:meth:`JobRun.complete_in`), so a crash between the work and
the bookkeeping neither loses nor repeats it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.ids import new_id
from core.jobs.models import Job

jobs = table_of(Job)
LEASE = timedelta(minutes=5)
#: The PostgreSQL channel on which a commit that queued work wakes the workers (LISTEN in core.worker).
CHANNEL = "fealty_jobs"


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker: str
    #: When it was due (its lateness, for the metrics, is the claim time minus this).
    due_at: datetime | None = None


def _insert(session: AsyncSession) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(jobs)


async def notify(session: AsyncSession) -> None:
    """Wake the listening workers when this transaction commits (PostgreSQL; a no-op elsewhere, where workers poll).

    PostgreSQL folds identical notifications of one transaction into one and delivers none if it rolls back.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def enqueue(
    session: AsyncSession,
    kind: str,
    *,
    tenant_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 10,
    task: bool = False,
    job_id: uuid.UUID | None = None,
) -> bool:
    """Queue a job (in the caller's transaction). With ``dedupe_key``, a second identical request adds nothing.
    ``task``: a job someone started and watches through ``GET /v1/jobs`` (see :func:`start_task`).

    Returns whether a new job was queued.
    """
    values = {
        "id": job_id or new_id(),
        "task": task,
        "tenant_id": tenant_id,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "payload": payload or {},
        "status": "queued",
        "run_at": run_at or utcnow(),
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": utcnow(),
    }
    statement = _insert(session).values(values)
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await session.execute(statement.returning(jobs.c.id))
    queued = result.first() is not None
    if queued and (run_at is None or run_at <= utcnow()):
        await notify(session)
    return queued


async def start_task(
    session: AsyncSession, kind: str, *, tenant_id: uuid.UUID | None, payload: dict[str, Any] | None = None
) -> uuid.UUID:
    """Queue a long task (in the caller's transaction) and return its id, to be followed at ``/v1/jobs/{id}``."""
    job_id = new_id()
    await enqueue(session, kind, tenant_id=tenant_id, payload=payload, task=True, job_id=job_id, max_attempts=3)
    return job_id


async def enqueue_or_wake(
    session: AsyncSession, kind: str, *, tenant_id: uuid.UUID | None, dedupe_key: str, run_at: datetime | None = None
) -> None:
    """Make sure one job ``dedupe_key`` is due: queue it, or requeue it if it already finished.

    A running one is left alone; the recurring schedule catches anything it missed.
    """
    now = run_at or utcnow()
    statement = _insert(session).values(
        id=new_id(),
        tenant_id=tenant_id,
        kind=kind,
        dedupe_key=dedupe_key,
        payload={},
        status="queued",
        run_at=now,
        attempts=0,
        max_attempts=10,
        created_at=now,
    )
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={"status": "queued", "run_at": excluded.run_at, "attempts": 0, "finished_at": None},
        where=jobs.c.status.in_(("done", "dead")),
    )
    await session.execute(statement)
    await notify(session)


async def wake_many(
    session: AsyncSession, wanted: list[tuple[str, uuid.UUID | None, str, datetime]], now: datetime
) -> None:
    """:func:`enqueue_or_wake` for many ``(kind, tenant_id, dedupe_key, due_at)`` at once (the recurring schedule):
    each job is due at the time its schedule said, so claims take the most overdue first and the lateness metric
    counts from then."""
    if not wanted:
        return
    statement = _insert(session)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["dedupe_key"],
        set_={"status": "queued", "run_at": excluded.run_at, "attempts": 0, "finished_at": None},
        where=or_(jobs.c.status == "done", jobs.c.status == "dead"),  # no expanding IN in an executemany
    )
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "kind": kind,
            "dedupe_key": key,
            "payload": {},
            "status": "queued",
            "run_at": due_at,
            "attempts": 0,
            "max_attempts": 10,
            "created_at": now,
            "task": False,
            "progress_done": 0,
        }
        for kind, tenant_id, key, due_at in wanted
    ]
    await session.execute(statement, rows)
    await notify(session)


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: str,
    *,
    limit: int = 10,
    now: datetime | None = None,
    kinds: list[str] | None = None,
    lease: timedelta = LEASE,
    tenant_ids: Sequence[uuid.UUID] | None = None,
    busy_tenants: Sequence[uuid.UUID] = (),
    per_tenant: int | None = None,
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due jobs for ``worker``.

    Fair between tenants: candidates are ranked within their tenant (oldest due first) and taken rank by rank, so
    a tenant with ten thousand due jobs gets one slot while others wait, not all of them; ``per_tenant`` caps the
    jobs of one tenant in a claim, and ``busy_tenants`` (the tenants this worker is already running a job for) are
    left to the other workers or the next claim. The ranked candidates are then locked with ``SKIP LOCKED`` and
    checked due again, so two workers never claim one job.
    """
    now = now or utcnow()
    due = or_(
        and_(jobs.c.status == "queued", jobs.c.run_at <= now),
        and_(jobs.c.status == "running", jobs.c.locked_until < now),
    )
    filters = [due]
    if kinds:
        filters.append(jobs.c.kind.in_(kinds))
    if tenant_ids is not None:
        filters.append(or_(jobs.c.tenant_id.in_(list(tenant_ids)), jobs.c.tenant_id.is_(None)))
    if busy_tenants:
        filters.append(or_(jobs.c.tenant_id.not_in(list(busy_tenants)), jobs.c.tenant_id.is_(None)))
    rank = func.row_number().over(partition_by=jobs.c.tenant_id, order_by=(jobs.c.run_at, jobs.c.id)).label("rank")
    ranked = select(jobs.c.id, jobs.c.run_at, rank).where(*filters).subquery()
    # A window of the fairest candidates, several times what is wanted, so that workers claiming at once (each
    # skipping the rows another has locked) still find work in it.
    window = select(ranked.c.id, ranked.c.rank, ranked.c.run_at).order_by(ranked.c.rank, ranked.c.run_at)
    if per_tenant is not None:
        window = window.where(ranked.c.rank <= per_tenant)
    fair = window.limit(limit * 4 + 16).subquery()
    candidates = (
        select(jobs.c.id)
        .join(fair, fair.c.id == jobs.c.id)
        .where(due)
        .order_by(fair.c.rank, fair.c.run_at)
        .limit(limit)
        .with_for_update(of=jobs, skip_locked=True)
    )
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(candidates.scalar_subquery()))
        .values(
            status="running", locked_by=worker, locked_until=now + lease, attempts=jobs.c.attempts + 1, started_at=now
        )
        .returning(
            jobs.c.id,
            jobs.c.tenant_id,
            jobs.c.kind,
            jobs.c.payload,
            jobs.c.attempts,
            jobs.c.max_attempts,
            jobs.c.run_at,
        )
    )
    async with tenant_session(sessionmaker, None) as session:
        rows = (await session.execute(statement)).all()
    return [
        ClaimedJob(r.id, r.tenant_id, r.kind, dict(r.payload or {}), r.attempts, r.max_attempts, worker, r.run_at)
        for r in rows
    ]


def _mine(job: ClaimedJob) -> Any:
    return and_(jobs.c.id == job.id, jobs.c.status == "running", jobs.c.locked_by == job.worker)


async def complete(
    session: AsyncSession, job: ClaimedJob, now: datetime | None = None, *, result: dict[str, Any] | None = None
) -> bool:
    """Mark done in ``session``'s transaction, with the task's ``result`` if given. False if the job is no longer
    this worker's (lease lost)."""
    values: dict[str, Any] = {"status": "done", "finished_at": now or utcnow(), "locked_until": None}
    if result is not None:
        values["result"] = result
    updated = await session.execute(update(jobs).where(_mine(job)).values(values))
    return bool(getattr(updated, "rowcount", 0))


async def progress_in(session: AsyncSession, job: ClaimedJob, done: int, total: int | None = None) -> None:
    """Record progress in the caller's transaction (with the batch it counts)."""
    values: dict[str, Any] = {"progress_done": done}
    if total is not None:
        values["progress_total"] = total
    await session.execute(update(jobs).where(_mine(job)).values(values))


async def progress(
    sessionmaker: async_sessionmaker[AsyncSession],
    job: ClaimedJob,
    done: int,
    total: int | None = None,
    *,
    lease: timedelta = LEASE,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record a long job's progress (and where to resume, in ``payload``) and extend its lease, in one short
    transaction of its own."""
    values: dict[str, Any] = {"progress_done": done, "locked_until": utcnow() + lease}
    if total is not None:
        values["progress_total"] = total
    if payload is not None:
        values["payload"] = payload
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(update(jobs).where(_mine(job)).values(values))


async def heartbeat(
    sessionmaker: async_sessionmaker[AsyncSession], job: ClaimedJob, *, lease: timedelta = LEASE, pause: float = 0.0
) -> None:
    """Between two batches of a long job: extend its lease, and pause if the operator asked to throttle."""
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(update(jobs).where(_mine(job)).values(locked_until=utcnow() + lease))
    if pause:
        await asyncio.sleep(pause)


def backoff(attempts: int, *, base: float = 5.0, cap: float = 3600.0) -> timedelta:
    """Exponential backoff with jitter: about base x 2^(attempts-1) seconds, at most ``cap``."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


async def fail(sessionmaker: async_sessionmaker[AsyncSession], job: ClaimedJob, error: str) -> str:
    """Requeue with backoff, or bury as ``dead`` after ``max_attempts``. Returns the new status."""
    status = "dead" if job.attempts >= job.max_attempts else "queued"
    values: dict[str, Any] = {"status": status, "last_error": error[:4000], "locked_until": None}
    if status == "queued":
        values["run_at"] = utcnow() + backoff(job.attempts)
    else:
        values["finished_at"] = utcnow()
        # What GET /v1/jobs/{id} shows: a problem document, not the traceback kept in last_error for the operator.
        values["problem"] = {
            "type": "https://fealty.dev/problems/job-failed",
            "title": "The job failed",
            "status": 500,
            "detail": f"The job failed {job.attempts} time(s) and was stopped; the operator has the details.",
        }
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(update(jobs).where(_mine(job)).values(values))
    return status


async def requeue_now(sessionmaker: async_sessionmaker[AsyncSession], job: ClaimedJob) -> None:
    """More of the same work is due at once (a handler that stopped after a batch)."""
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(
            update(jobs).where(_mine(job)).values(status="queued", run_at=utcnow(), locked_until=None, attempts=0)
        )
        await notify(session)


async def retry_dead(session: AsyncSession, job_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None) -> bool:
    """Queue a dead job again now, with its attempts counted afresh (an operator fixed the cause, or a tenant asks
    again): one atomic update of a row that is still dead, so two retries at once requeue it once. ``tenant_id``
    limits it to that tenant's tasks. Returns whether it was requeued (False: no such dead job)."""
    query = update(jobs).where(jobs.c.id == job_id, jobs.c.status == "dead")
    if tenant_id is not None:
        query = query.where(jobs.c.tenant_id == tenant_id, jobs.c.task.is_(True))
    result = await session.execute(
        query.values(
            status="queued",
            run_at=utcnow(),
            attempts=0,
            locked_by=None,
            locked_until=None,
            finished_at=None,
            problem=None,
        ).returning(jobs.c.id)
    )
    if result.first() is None:
        return False
    await notify(session)
    return True
