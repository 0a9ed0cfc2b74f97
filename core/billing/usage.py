"""Usage metering: events processed and active members per tenant and usage period (a calendar month, UTC).

:func:`record_activity` sits on the hot path of event ingestion and runs inside the caller's transaction, so the
counts commit exactly when the activity does: two statements, both set-based -- mark the member active in the
period (``ON CONFLICT DO NOTHING``, which tells whether it is the member's first activity of the period) and add to
the period's counters (``ON CONFLICT DO UPDATE SET events = events + :n``). Concurrent calls for one member count it
once: the database's unique key decides which insert is first.

The period is the one containing the time the activity is *processed* (``occurred_at`` may be backdated into a month
that is already closed and billed); ``occurred_at`` is kept as the member's first activity in the period.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import ActiveMember, BillingUsage
from core.billing.rules import usage_period
from core.clock import utcnow
from core.db.base import table_of

active_members = table_of(ActiveMember)
usage = table_of(BillingUsage)


def dialect_of(session: AsyncSession) -> Any:
    """The dialect module whose ``insert`` has ``ON CONFLICT`` (PostgreSQL or SQLite)."""
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


async def record_activity(
    session: AsyncSession, *, tenant_id: uuid.UUID, member_id: uuid.UUID, occurred_at: datetime, events: int = 1
) -> None:
    """Count ``events`` processed for ``tenant_id`` and mark ``member_id`` active in the current usage period."""
    now = utcnow()
    start, end = usage_period(now)
    dialect = dialect_of(session)
    first = (
        await session.execute(
            dialect.insert(active_members)
            .values(tenant_id=tenant_id, period_start=start, member_id=member_id, first_activity_at=occurred_at)
            .on_conflict_do_nothing(index_elements=["tenant_id", "period_start", "member_id"])
            .returning(active_members.c.member_id)
        )
    ).first() is not None
    newly_active = 1 if first else 0
    await session.execute(
        dialect.insert(usage)
        .values(
            tenant_id=tenant_id,
            period_start=start,
            period_end=end,
            events=events,
            active_members=newly_active,
            status="open",
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["tenant_id", "period_start"],
            set_={
                "events": usage.c.events + events,
                "active_members": usage.c.active_members + newly_active,
                "updated_at": now,
            },
        )
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
    """Usage in the period containing ``at`` for each of ``tenant_ids`` (the platform's view across tenants)."""
    ids = list(tenant_ids)
    start, end = usage_period(at)
    if not ids:
        return {}
    rows = await session.execute(
        select(usage.c.tenant_id, usage.c.active_members, usage.c.events).where(
            usage.c.tenant_id.in_(ids), usage.c.period_start == start
        )
    )
    return {row.tenant_id: Usage(start, end, row.active_members, row.events) for row in rows}
