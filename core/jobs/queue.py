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

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.ids import new_id
from core.jobs.models import Job

jobs = table_of(Job)
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker: str


def _insert(session: AsyncSession) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(jobs)


async def enqueue(
    session: AsyncSession,
    kind: str,
    *,
    tenant_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 10,
) -> bool:
    """Queue a job (in the caller's transaction). With ``dedupe_key``, a second identical request adds nothing.

    Returns whether a new job was queued.
    """
    values = {
        "id": new_id(),
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
    return result.first() is not None


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


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: str,
    *,
    limit: int = 10,
    now: datetime | None = None,
    kinds: list[str] | None = None,
    lease: timedelta = LEASE,
    tenant_ids: Sequence[uuid.UUID] | None = None,
) -> list[ClaimedJob]:
    now = now or utcnow()
    due = or_(
        and_(jobs.c.status == "queued", jobs.c.run_at <= now),
        and_(jobs.c.status == "running", jobs.c.locked_until < now),
    )
    candidates = select(jobs.c.id).where(due).order_by(jobs.c.run_at).limit(limit).with_for_update(skip_locked=True)
    if kinds:
        candidates = candidates.where(jobs.c.kind.in_(kinds))
    if tenant_ids is not None:
        candidates = candidates.where(or_(jobs.c.tenant_id.in_(list(tenant_ids)), jobs.c.tenant_id.is_(None)))
    statement = (
        update(jobs)
        .where(jobs.c.id.in_(candidates.scalar_subquery()))
        .values(status="running", locked_by=worker, locked_until=now + lease, attempts=jobs.c.attempts + 1)
        .returning(jobs.c.id, jobs.c.tenant_id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)
    )
    async with tenant_session(sessionmaker, None) as session:
        rows = (await session.execute(statement)).all()
    return [
        ClaimedJob(r.id, r.tenant_id, r.kind, dict(r.payload or {}), r.attempts, r.max_attempts, worker) for r in rows
    ]


def _mine(job: ClaimedJob) -> Any:
    return and_(jobs.c.id == job.id, jobs.c.status == "running", jobs.c.locked_by == job.worker)


async def complete(session: AsyncSession, job: ClaimedJob, now: datetime | None = None) -> bool:
    """Mark done in ``session``'s transaction. False if the job is no longer this worker's (lease lost)."""
    result = await session.execute(
        update(jobs).where(_mine(job)).values(status="done", finished_at=now or utcnow(), locked_until=None)
    )
    return bool(getattr(result, "rowcount", 0))


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
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(update(jobs).where(_mine(job)).values(values))
    return status


async def requeue_now(sessionmaker: async_sessionmaker[AsyncSession], job: ClaimedJob) -> None:
    """More of the same work is due at once (a handler that stopped after a batch)."""
    async with tenant_session(sessionmaker, None) as session:
        await session.execute(
            update(jobs).where(_mine(job)).values(status="queued", run_at=utcnow(), locked_until=None, attempts=0)
        )
