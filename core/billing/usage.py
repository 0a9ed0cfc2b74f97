"""Usage metering: events processed and active members per tenant and usage period (a calendar month, UTC).

:func:`record_activity` sits on the hot path (every event transaction calls it once, from the event pipeline's write
step; point adjustments and redemptions call it too) and runs inside the caller's transaction, so the counts commit
exactly when the activity does. It is built not to serialise a tenant's transactions:

* each member's activity in a period is one row of ``billing_active_members``, inserted ``ON CONFLICT DO NOTHING``
  (an existing row is neither locked nor rewritten); the rows inserted tell how many members are newly active;
* the counts go to one of :data:`~core.billing.models.USAGE_SLOTS` counter rows of the tenant and period, picked at
  random per session (``ON CONFLICT DO UPDATE SET events = events + ...``): two concurrent transactions of one
  tenant meet on a counter row's lock only when they picked the same slot. Reads sum the slots.

One statement on PostgreSQL (the active-member insert is a CTE of the counter upsert), two on SQLite, whatever the
number of events and members. Concurrent calls for one member count it once: the unique key decides which insert is
first.

The period is the one containing the time the activity is *processed* (``occurred_at`` may be backdated into a month
that is already closed and billed).
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import USAGE_SLOTS, ActiveMember, UsageCount
from core.billing.rules import usage_period
from core.db.base import table_of

active_members = table_of(ActiveMember)
counts = table_of(UsageCount)
#: Session info key: the counter slot this session's transactions add to.
SLOT_KEY = "fealty.usage_slot"


def dialect_of(session: AsyncSession) -> Any:
    """The dialect module whose ``insert`` has ``ON CONFLICT`` (PostgreSQL or SQLite)."""
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def _slot(session: AsyncSession) -> int:
    """One slot per session: a transaction that records activity twice takes one counter row, never two."""
    slot: int | None = session.info.get(SLOT_KEY)
    if slot is None:
        slot = session.info[SLOT_KEY] = secrets.randbelow(USAGE_SLOTS)
    return slot


#: PostgreSQL: mark the members active and add to the slot's counters in one statement (members as one array, so
#: the statement text, its prepared statement and plan are the same whatever the batch).
_RECORD_PG = text(
    """
    WITH fresh AS (
        INSERT INTO billing_active_members (tenant_id, period_start, member_id, first_activity_at)
        SELECT CAST(:tenant AS uuid), CAST(:start AS timestamptz), m, CAST(:now AS timestamptz)
        FROM unnest(CAST(:members AS uuid[])) AS m
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), n AS (SELECT count(*) AS c FROM fresh)
    INSERT INTO billing_usage_counts (tenant_id, period_start, slot, events, active_members)
    SELECT CAST(:tenant AS uuid), CAST(:start AS timestamptz), CAST(:slot AS smallint), CAST(:events AS bigint), n.c
    FROM n
    WHERE CAST(:events AS bigint) > 0 OR n.c > 0
    ON CONFLICT (tenant_id, period_start, slot) DO UPDATE
    SET events = billing_usage_counts.events + excluded.events,
        active_members = billing_usage_counts.active_members + excluded.active_members
    """
)


@functools.cache
def _sqlite_statements() -> tuple[Any, Any]:
    mark = (
        sqlite.insert(active_members)
        .on_conflict_do_nothing(index_elements=["tenant_id", "period_start", "member_id"])
        .returning(active_members.c.member_id)
    )
    add = sqlite.insert(counts).on_conflict_do_update(
        index_elements=["tenant_id", "period_start", "slot"],
        set_={
            "events": counts.c.events + sqlite.insert(counts).excluded.events,
            "active_members": counts.c.active_members + sqlite.insert(counts).excluded.active_members,
        },
    )
    return mark, add


async def record_activity(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_ids: Iterable[uuid.UUID],
    now: datetime,
    events: int = 0,
) -> None:
    """Count ``events`` processed for ``tenant_id`` and mark ``member_ids`` active in the usage period of ``now``."""
    members = sorted(set(member_ids), key=str)  # one order for every transaction: no deadlock on the unique index
    if not members and events <= 0:
        return
    start, _ = usage_period(now)
    slot = _slot(session)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _RECORD_PG,
            {"tenant": tenant_id, "start": start, "now": now, "members": members, "slot": slot, "events": events},
        )
        return
    mark, add = _sqlite_statements()
    fresh = 0
    if members:
        rows = [
            {"tenant_id": tenant_id, "period_start": start, "member_id": m, "first_activity_at": now} for m in members
        ]
        fresh = len((await session.execute(mark, rows)).all())
    if events > 0 or fresh > 0:
        await session.execute(
            add,
            {"tenant_id": tenant_id, "period_start": start, "slot": slot, "events": events, "active_members": fresh},
        )


@dataclass(frozen=True, slots=True)
class Usage:
    period_start: datetime
    period_end: datetime
    active_members: int = 0
    events: int = 0


async def usage_of(session: AsyncSession, tenant_id: uuid.UUID, at: datetime) -> Usage:
    """The tenant's usage in the period containing ``at`` (zeros when nothing was recorded)."""
    return (await usage_of_tenants(session, [tenant_id], at)).get(tenant_id) or Usage(*usage_period(at))


async def usage_of_tenants(
    session: AsyncSession, tenant_ids: Iterable[uuid.UUID], at: datetime
) -> dict[uuid.UUID, Usage]:
    """Usage in the period containing ``at`` for each of ``tenant_ids`` (the platform's view across tenants): the
    sums of the period's counter slots."""
    ids = list(tenant_ids)
    start, end = usage_period(at)
    if not ids:
        return {}
    rows = await session.execute(
        select(counts.c.tenant_id, func.sum(counts.c.active_members), func.sum(counts.c.events))
        .where(counts.c.tenant_id.in_(ids), counts.c.period_start == start)
        .group_by(counts.c.tenant_id)
    )
    return {tenant: Usage(start, end, int(members or 0), int(events or 0)) for tenant, members, events in rows}
