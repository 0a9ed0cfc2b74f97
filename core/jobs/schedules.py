"""Recurring work, stored once per kind and tenant with its next due time (``job_schedules``).

The worker's idle tick runs :func:`materialize_due`: one indexed read of the rows whose time has come (usually
none), so its cost does not grow with the number of tenants. Each due row becomes (or wakes) that tenant's one job
of that kind, with the dedupe key ``{kind}:{scope}`` that :func:`core.jobs.queue.enqueue_or_wake` uses too, so a
recurring run and a wake-up after a request share one job row and never pile up behind a slow run. Rows are locked
with ``SKIP LOCKED`` and moved forward in the same transaction, so several workers never schedule one run twice.

The swept kinds (:mod:`core.jobs.sweeps`: every per-tenant core kind — releasing and expiring points and vouchers,
dispatching the outbox, delivering webhooks and care messages, the daily retention and loyalty runs... — and the
plugins' jobs that name a condition) have one row for the platform (scope ``sweep``) instead of one per tenant: due,
it queues the jobs of the tenants with due work only (of a plugin's job, only among the tenants that enabled it).

:func:`sync` keeps the rows in line with the tenants (active ones, with the plugin a plugin job needs) and the job
kinds: all of them when a worker starts and every ``FEALTY_SCHEDULE_FULL_SYNC_SECONDS``, only the tenants changed
since the last pass every ``FEALTY_SCHEDULE_SYNC_SECONDS``. A tenant's own rows are also synced at once, in the
request's transaction, when it is created, suspended or resumed and when its plugins change (:func:`sync_tenant`,
called through ``Runtime.tenant_changed``): its recurring work is scheduled before the worker's next pass. A new
tenant's first runs are spread over each kind's interval (a stable offset per tenant and kind), so ten thousand
tenants' hourly work does not fall due at once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import bulk
from core.db.base import table_of
from core.db.engine import tenant_session
from core.jobs import queue, sweeps
from core.jobs.models import JobSchedule
from core.jobs.registry import JobRegistry, Recurring
from core.tenancy.models import Tenant

schedules = table_of(JobSchedule)
tenants = table_of(Tenant)
PLATFORM = "platform"
#: The scope of a swept kind's one row (:mod:`core.jobs.sweeps`): due, it queues the jobs of the tenants with work.
SWEEP = "sweep"
#: Rows read and scheduled per transaction.
BATCH = 1000


def scope_of(tenant_id: uuid.UUID | None) -> str:
    return str(tenant_id) if tenant_id else PLATFORM


def dedupe_key(kind: str, tenant_id: uuid.UUID | None) -> str:
    """The one job row of ``kind`` for a tenant (or the platform): what the schedule and wake-ups share."""
    return f"{kind}:{tenant_id or PLATFORM}"


def first_due(kind: str, scope: str, every_seconds: int, now: datetime) -> datetime:
    """A stable offset within the interval, per kind and scope: first runs are spread, not bunched."""
    digest = hashlib.blake2b(f"{kind}:{scope}".encode(), digest_size=8).digest()
    return now + timedelta(seconds=int.from_bytes(digest, "big") % max(1, every_seconds))


@dataclass(frozen=True)
class SyncReport:
    added: int = 0
    removed: int = 0
    changed: int = 0


def _wanted(
    recurring: Sequence[Recurring], active: Iterable[tuple[uuid.UUID, list[Any] | None]], *, platform: bool
) -> dict[tuple[str, str], tuple[uuid.UUID | None, int]]:
    wanted: dict[tuple[str, str], tuple[uuid.UUID | None, int]] = {}
    rows = list(active)
    for r in recurring:
        if not r.per_tenant or r.sweep is not None:
            if platform:
                wanted[(r.kind, SWEEP if r.per_tenant else PLATFORM)] = (None, r.every_seconds)
            continue
        for tenant_id, plugins in rows:
            if r.plugin is None or r.plugin in (plugins or []):
                wanted[(r.kind, str(tenant_id))] = (tenant_id, r.every_seconds)
    return wanted


async def sync(
    sessionmaker: async_sessionmaker[AsyncSession],
    registry: JobRegistry,
    now: datetime,
    *,
    changed_since: datetime | None = None,
) -> SyncReport:
    """Add the schedule rows missing, remove those no longer wanted, follow interval changes.

    ``changed_since`` limits the pass to tenants updated since then (their status, their plugins); None: everyone,
    the platform's kinds, and kinds no longer registered.
    """
    full = changed_since is None
    query = select(tenants.c.id, tenants.c.status, tenants.c.enabled_plugins)
    if not full:
        query = query.where(tenants.c.updated_at >= changed_since)
    async with tenant_session(sessionmaker, None, writes=False) as session:
        rows = (await session.execute(query)).all()
    if not full and not rows:
        return SyncReport()
    active = [(r.id, r.enabled_plugins) for r in rows if r.status == "active"]
    wanted = _wanted(registry.recurring, active, platform=full)
    scopes = [str(r.id) for r in rows]
    existing: dict[tuple[str, str], int] = {}
    async with tenant_session(sessionmaker, None, writes=False) as session:
        for start in range(0, len(scopes) if not full else 1, BATCH):
            have = select(schedules.c.kind, schedules.c.scope, schedules.c.every_seconds)
            if not full:
                have = have.where(schedules.c.scope.in_(scopes[start : start + BATCH]))
            existing |= {(k, s): e for k, s, e in (await session.execute(have)).all()}
    add = [key for key in wanted if key not in existing]
    remove = [key for key in existing if key not in wanted]
    change = [key for key in wanted if key in existing and existing[key] != wanted[key][1]]
    async with tenant_session(sessionmaker, None) as session:
        for start in range(0, len(add), BATCH):
            await session.execute(
                schedules.insert(),
                [
                    {
                        "kind": kind,
                        "scope": scope,
                        "tenant_id": wanted[(kind, scope)][0],
                        "every_seconds": wanted[(kind, scope)][1],
                        "next_due_at": first_due(kind, scope, wanted[(kind, scope)][1], now),
                    }
                    for kind, scope in add[start : start + BATCH]
                ],
            )
        remove = await _still_unwanted(session, registry, remove)
        for start in range(0, len(remove), BATCH):
            await session.execute(
                delete(schedules).where(tuple_(schedules.c.kind, schedules.c.scope).in_(remove[start : start + BATCH]))
            )
        if change:
            await session.execute(
                update(schedules)
                .where(schedules.c.kind == bindparam("k"), schedules.c.scope == bindparam("s"))
                .values(every_seconds=bindparam("e"), next_due_at=bindparam("n")),
                [
                    {"k": k, "s": s, "e": wanted[(k, s)][1], "n": first_due(k, s, wanted[(k, s)][1], now)}
                    for k, s in change
                ],
            )
    return SyncReport(len(add), len(remove), len(change))


async def sync_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, *, recurring: Sequence[Recurring]
) -> SyncReport:
    """Bring one tenant's schedule rows in line with it (its status, its plugins), in the caller's transaction: what
    a worker's next pass would do for it, done when the tenant is created or its plugins change.

    Safe beside a worker's pass or another request doing the same: a row another transaction added meanwhile is
    kept (``ON CONFLICT DO NOTHING``), removals and interval changes are idempotent."""
    row = (
        await session.execute(select(tenants.c.status, tenants.c.enabled_plugins).where(tenants.c.id == tenant_id))
    ).one_or_none()
    active = [(tenant_id, row.enabled_plugins)] if row is not None and row.status == "active" else []
    wanted = _wanted(recurring, active, platform=False)
    scope = str(tenant_id)
    existing = {
        (kind, scope): every
        for kind, every in (
            await session.execute(select(schedules.c.kind, schedules.c.every_seconds).where(schedules.c.scope == scope))
        ).all()
    }
    add = [key for key in wanted if key not in existing]
    remove = [kind for kind, _ in existing if (kind, scope) not in wanted]
    change = [key for key in wanted if key in existing and existing[key] != wanted[key][1]]
    if add:
        insert = (postgresql.insert if bulk.is_postgres(session) else sqlite.insert)(schedules)
        await session.execute(
            insert.on_conflict_do_nothing(index_elements=["kind", "scope"]),
            [
                {
                    "kind": kind,
                    "scope": scope,
                    "tenant_id": tenant_id,
                    "every_seconds": wanted[(kind, scope)][1],
                    "next_due_at": first_due(kind, scope, wanted[(kind, scope)][1], now),
                }
                for kind, scope in add
            ],
        )
    if remove:
        await session.execute(delete(schedules).where(schedules.c.scope == scope, schedules.c.kind.in_(remove)))
    for kind, _ in change:
        every = wanted[(kind, scope)][1]
        await session.execute(
            update(schedules)
            .where(schedules.c.kind == kind, schedules.c.scope == scope)
            .values(every_seconds=every, next_due_at=first_due(kind, scope, every, now))
        )
    return SyncReport(len(add), len(remove), len(change))


async def _still_unwanted(
    session: AsyncSession, registry: JobRegistry, remove: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Of the rows a pass would remove, those its tenants still do not want, read again in the deleting transaction
    (with a share lock on PostgreSQL): a request that enabled a plugin since the pass read the tenants, and wrote the
    plugin's rows in its own transaction (:func:`sync_tenant`), keeps them."""
    owners = sorted({scope for _, scope in remove if scope not in (PLATFORM, SWEEP)})
    if not owners:
        return remove
    current: list[tuple[uuid.UUID, list[Any] | None]] = []
    for start in range(0, len(owners), BATCH):
        query = select(tenants.c.id, tenants.c.status, tenants.c.enabled_plugins).where(
            tenants.c.id.in_([uuid.UUID(o) for o in owners[start : start + BATCH]])
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        current += [(r.id, r.enabled_plugins) for r in (await session.execute(query)).all() if r.status == "active"]
    wanted_now = _wanted(registry.recurring, current, platform=False)
    return [key for key in remove if key not in wanted_now]


async def materialize_due(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, recurring: Sequence[Recurring] | None = None
) -> int:
    """Turn the schedule rows that are due into due jobs and move them to their next time; returns how many.

    A run missed while no worker ran is done once, not once per missed interval. ``recurring`` (the registry's) says
    the condition and plugin of each swept kind; without it a swept kind is one of core's, on its own condition.
    """
    swept = {r.kind: r for r in recurring or () if r.sweep is not None}
    total = 0
    while True:
        async with tenant_session(sessionmaker, None) as session:
            due = (
                await session.execute(
                    select(
                        schedules.c.kind,
                        schedules.c.scope,
                        schedules.c.tenant_id,
                        schedules.c.every_seconds,
                        schedules.c.next_due_at,
                    )
                    .where(schedules.c.next_due_at <= now)
                    .order_by(schedules.c.next_due_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not due:
                return total
            wanted: list[tuple[str, uuid.UUID | None, str, datetime]] = []
            for r in due:
                if r.scope != SWEEP:
                    wanted.append((r.kind, r.tenant_id, dedupe_key(r.kind, r.tenant_id), r.next_due_at))
                    continue
                owners = await _swept_owners(session, swept.get(r.kind), r.kind, now)
                wanted += [
                    (r.kind, o, dedupe_key(r.kind, o), r.next_due_at + sweeps.spread(r.kind, o, r.every_seconds))
                    for o in owners
                ]
            await queue.wake_many(session, wanted, now)
            moves = []
            for r in due:
                step = timedelta(seconds=r.every_seconds)
                following = r.next_due_at + step
                moves.append({"k": r.kind, "s": r.scope, "n": following if following > now else now + step})
            await session.execute(
                update(schedules)
                .where(and_(schedules.c.kind == bindparam("k"), schedules.c.scope == bindparam("s")))
                .values(next_due_at=bindparam("n")),
                moves,
            )
            total += len(due)
        if len(due) < BATCH:
            return total


async def _swept_owners(
    session: AsyncSession, recurring: Recurring | None, kind: str, now: datetime
) -> list[uuid.UUID]:
    """The tenants a sweep of ``kind`` queues a job for: where its condition holds, and (a plugin's job) that enabled
    the plugin. A sweep row whose kind is no longer registered (the full sync removes it) queues nothing."""
    if recurring is None:
        if not sweeps.swept(kind):
            return []
        return await sweeps.due_tenants(session, kind, now)
    assert recurring.sweep is not None
    owners = await sweeps.due_tenants(session, recurring.sweep, now)
    if recurring.plugin is None or not owners:
        return owners
    enabled: list[uuid.UUID] = []
    for start in range(0, len(owners), BATCH):
        rows = await session.execute(
            select(tenants.c.id, tenants.c.enabled_plugins).where(tenants.c.id.in_(owners[start : start + BATCH]))
        )
        enabled += [r.id for r in rows if recurring.plugin in (r.enabled_plugins or [])]
    return enabled
