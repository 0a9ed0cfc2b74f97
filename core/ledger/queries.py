"""Reads of the ledger: balances, points about to expire, entries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.db.bulk import is_postgres, one_of
from core.db.lookup import row_or_404
from core.ledger.models import LedgerEntry, Lot, PointBalance
from core.ledger.policy import expiry_of
from core.program.settings import ProgramSettings

balances = table_of(PointBalance)
lots = table_of(Lot)
entries = table_of(LedgerEntry)


async def balance_row(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID) -> Row[Any]:
    row = await row_or_404(
        session,
        select(balances).where(balances.c.tenant_id == tenant_id, balances.c.member_id == member_id),
        "No such member.",
        field="member_id",
    )
    return row


async def balances_of(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Row[Any]]:
    if not member_ids:
        return {}
    rows = await session.execute(_balances(is_postgres(session)), {"b_tenant": tenant_id, "b_members": member_ids})
    return {r.member_id: r for r in rows}


@cache
def _balances(postgres: bool) -> Any:
    """Built once per dialect (building a statement per request costs more than running it)."""
    return select(balances).where(
        balances.c.tenant_id == bindparam("b_tenant"), one_of(balances.c.member_id, "b_members", postgres)
    )


async def expiring_lots(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: list[uuid.UUID], until: datetime
) -> dict[uuid.UUID, list[tuple[datetime, int]]]:
    """Posted points left in lots that expire by ``until``, per member: one query for any number of members."""
    parameters = {"x_tenant": tenant_id, "x_members": member_ids, "x_until": until}
    rows = await session.execute(_expiring(is_postgres(session)), parameters)
    found: dict[uuid.UUID, list[tuple[datetime, int]]] = defaultdict(list)
    for member_id, expires_at, remaining in rows:
        found[member_id].append((expires_at, remaining))
    return found


@cache
def _expiring(postgres: bool) -> Any:
    return select(lots.c.member_id, lots.c.expires_at, lots.c.remaining).where(
        lots.c.tenant_id == bindparam("x_tenant"),
        one_of(lots.c.member_id, "x_members", postgres),
        lots.c.remaining > 0,
        lots.c.status == "posted",
        lots.c.expires_at.is_not(None),
        lots.c.expires_at <= bindparam("x_until"),
    )


def expiring_by_day(
    program: ProgramSettings, balance: Row[Any], lots_expiring: list[tuple[datetime, int]], until: datetime
) -> list[tuple[date, int]]:
    """Points that will expire by ``until``, summed per local date (in the program's time zone)."""
    expiry = expiry_of(program)
    if expiry.kind == "inactivity":
        deadline = expiry.inactivity_deadline(balance.last_activity_at) if balance.last_activity_at else None
        if deadline is None or deadline > until or balance.available <= 0:
            return []
        return [(deadline.astimezone(program.tz).date(), balance.available)]
    by_day: dict[date, int] = defaultdict(int)
    for expires_at, remaining in lots_expiring:
        if expires_at > until:
            continue
        # Points expiring at local midnight are gone by that day: report the last day they can be used.
        local = expires_at.astimezone(program.tz)
        day = local.date() if local.time() != local.time().min else (local - timedelta(days=1)).date()
        by_day[day] += remaining
    return sorted(by_day.items())
