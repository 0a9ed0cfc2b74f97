"""Reads of the ledger: balances, points about to expire, entries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.errors import NotFound
from core.ledger.models import LedgerEntry, Lot, PointBalance
from core.program.settings import ProgramSettings

balances = table_of(PointBalance)
lots = table_of(Lot)
entries = table_of(LedgerEntry)


async def balance_row(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID) -> Row[Any]:
    row = (
        await session.execute(
            select(balances).where(balances.c.tenant_id == tenant_id, balances.c.member_id == member_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such member.", field="member_id")
    return row


async def balances_of(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Row[Any]]:
    if not member_ids:
        return {}
    rows = await session.execute(
        select(balances).where(balances.c.tenant_id == tenant_id, balances.c.member_id.in_(member_ids))
    )
    return {r.member_id: r for r in rows}


async def expiring(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    balance: Row[Any],
    program: ProgramSettings,
    until: datetime,
) -> list[tuple[date, int]]:
    """Points that will expire by ``until``, summed per local date (in the program's time zone)."""
    if program.expiry.kind == "inactivity":
        deadline = program.expiry.inactivity_deadline(balance.last_activity_at) if balance.last_activity_at else None
        if deadline is None or deadline > until or balance.available <= 0:
            return []
        return [(deadline.astimezone(program.tz).date(), balance.available)]
    rows = await session.execute(
        select(lots.c.expires_at, lots.c.remaining).where(
            lots.c.tenant_id == tenant_id,
            lots.c.member_id == member_id,
            lots.c.remaining > 0,
            lots.c.status == "posted",
            lots.c.expires_at.is_not(None),
            lots.c.expires_at <= until,
        )
    )
    by_day: dict[date, int] = defaultdict(int)
    for expires_at, remaining in rows:
        # Points expiring at local midnight are gone by that day: report the last day they can be used.
        local = expires_at.astimezone(program.tz)
        day = local.date() if local.time() != local.time().min else (local - timedelta(days=1)).date()
        by_day[day] += remaining
    return sorted(by_day.items())
