"""SLA breaches: the worker's sweep (``cases.breaches``), exactly once per breach whatever the number of workers.

One statement per clock inserts a ``case_breaches`` row for every case whose clock ran out, keyed by (case, clock,
due time), ``ON CONFLICT DO NOTHING RETURNING``: of two workers sweeping at once, each breach is returned to exactly
one of them. That worker flags the case and writes the ``case.sla_breached`` webhook in the same transaction, so the
flag, the record and the announcement exist together or not at all. A reopened case's new resolution clock has a
new due time: its breach is a new one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.cases.metrics import BREACHES
from core.cases.models import Case, CaseBreach, CaseCategory
from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.outbox.service import emit_many
from core.runtime import Runtime

BREACH_JOB = "cases.breaches"

cases = table_of(Case)
breaches = table_of(CaseBreach)
categories = table_of(CaseCategory)

_CLOCKS = {
    "first_reply": (cases.c.first_reply_due_at, cases.c.first_replied_at, cases.c.first_reply_breached_at),
    "resolution": (cases.c.resolution_due_at, cases.c.resolved_at, cases.c.resolution_breached_at),
}


async def sweep(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> int:
    """Record every breach due by ``now`` for the tenant; returns how many this call recorded."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    recorded = 0
    for clock, (due, done, flagged) in _CLOCKS.items():
        overdue = (
            select(cases.c.tenant_id, cases.c.id, due, cases.c.status)
            .where(cases.c.tenant_id == tenant_id, due.isnot(None), due <= now, done.is_(None), flagged.is_(None))
            .where(cases.c.status != "closed")
        )
        candidates = (await session.execute(overdue)).all()
        if not candidates:
            continue
        inserted = await session.execute(
            dialect.insert(breaches)
            .values(
                [
                    {"tenant_id": tenant_id, "case_id": c.id, "clock": clock, "due_at": c[2], "breached_at": now}
                    for c in candidates
                ]
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "case_id", "clock", "due_at"])
            .returning(breaches.c.case_id, breaches.c.due_at)
        )
        won = {row.case_id: row.due_at for row in inserted}
        if not won:
            continue
        await session.execute(
            update(cases)
            .where(and_(cases.c.tenant_id == tenant_id, cases.c.id.in_(list(won))))
            .values({flagged.name: now})
        )
        rows = (
            await session.execute(
                select(cases, categories.c.code, categories.c.notify)
                .select_from(
                    cases.outerjoin(
                        categories,
                        and_(categories.c.tenant_id == cases.c.tenant_id, categories.c.id == cases.c.category_id),
                    )
                )
                .where(cases.c.tenant_id == tenant_id, cases.c.id.in_(list(won)))
            )
        ).all()
        await emit_many(
            session,
            tenant_id,
            [
                (
                    "case.sla_breached",
                    {
                        "case_id": str(r.id),
                        "clock": clock,
                        "due_at": won[r.id].isoformat() if hasattr(won[r.id], "isoformat") else str(won[r.id]),
                        "breached_at": now.isoformat(),
                        "status": r.status,
                        "priority": r.priority,
                        "category": r.code,
                        "assignee": r.assignee,
                        "notify": list(r.notify or []),
                        "subject": r.subject,
                    },
                    r.member_id,
                )
                for r in rows
            ],
            now,
        )
        BREACHES.labels(clock=clock).inc(len(won))
        recorded += len(won)
    return recorded


async def run(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
        await sweep(session, job.tenant_id, utcnow())
        await complete(session, job)
    return True


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(BREACH_JOB, run, every_seconds=runtime.settings.cases_breach_every_seconds)
