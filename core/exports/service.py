"""Exports as CSV, produced page by page: each page is one keyset query on the table's primary key
(``tenant_id, id > :after ORDER BY id LIMIT n``), written out and forgotten before the next, so an export of millions
of rows holds one page in memory and never an OFFSET scan.

Text cells that a spreadsheet would take for a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) are prefixed with ``'`` (OWASP's advice against CSV injection); numbers and timestamps are written as they
are, timestamps in RFC 3339 with their offset.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.events.models import Event
from core.ledger.models import LedgerEntry, PointBalance
from core.members.models import Member
from core.tiers.models import Tier

PAGE_SIZE = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

members = table_of(Member)
balances = table_of(PointBalance)
tiers = table_of(Tier)
entries = table_of(LedgerEntry)
events = table_of(Event)

MEMBER_COLUMNS = (
    "member_id",
    "external_id",
    "status",
    "tier",
    "tier_valid_until",
    "available",
    "pending",
    "lifetime_earned",
    "lifetime_redeemed",
    "lifetime_expired",
    "lifetime_adjusted",
    "lifetime_written_off",
    "last_activity_at",
    "enrolled_at",
)
LEDGER_COLUMNS = (
    "entry_id",
    "member_id",
    "created_at",
    "kind",
    "points",
    "status",
    "cause_type",
    "cause_id",
    "reason",
    "actor",
    "available_at",
    "expires_at",
    "reverses_entry_id",
)


def cell(value: Any) -> Any:
    """One CSV cell: text guarded against formulas, timestamps in RFC 3339, None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([[cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode()


async def _pages(
    session: AsyncSession,
    query: Callable[[uuid.UUID | None], Select[Any]],
    row_of: Callable[[Any], Sequence[Any]],
    header: Sequence[str],
) -> AsyncIterator[bytes]:
    """The header, then one CSV chunk per page of ``query(after)`` (ordered by id, at most PAGE_SIZE rows)."""
    yield _csv([header])
    after: uuid.UUID | None = None
    while True:
        rows = (await session.execute(query(after))).all()
        if rows:
            yield _csv([row_of(r) for r in rows])
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1].id


def members_csv(session: AsyncSession, tenant_id: uuid.UUID) -> AsyncIterator[bytes]:
    """Every member of the tenant (anonymized ones too, keeping their totals), oldest first."""
    return _pages(session, members_page(tenant_id), lambda r: tuple(r), MEMBER_COLUMNS)


def members_page(tenant_id: uuid.UUID) -> Callable[[uuid.UUID | None], Select[Any]]:
    """The members export's page query: the page after ``after`` (by id)."""

    def page(after: uuid.UUID | None) -> Select[Any]:
        query = (
            select(
                members.c.id,
                members.c.external_id,
                members.c.status,
                tiers.c.code.label("tier"),
                members.c.tier_valid_until,
                balances.c.available,
                balances.c.pending,
                balances.c.lifetime_earned,
                balances.c.lifetime_redeemed,
                balances.c.lifetime_expired,
                balances.c.lifetime_adjusted,
                balances.c.lifetime_written_off,
                balances.c.last_activity_at,
                members.c.created_at,
            )
            .select_from(
                members.join(
                    balances,
                    and_(balances.c.tenant_id == members.c.tenant_id, balances.c.member_id == members.c.id),
                ).outerjoin(tiers, and_(tiers.c.tenant_id == members.c.tenant_id, tiers.c.id == members.c.tier_id))
            )
            .where(members.c.tenant_id == tenant_id)
            .order_by(members.c.id)
            .limit(PAGE_SIZE)
        )
        return query if after is None else query.where(members.c.id > after)

    return page


def ledger_csv(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    member_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> AsyncIterator[bytes]:
    """The tenant's ledger entries (of one member, in a time window: ``created_after`` inclusive,
    ``created_before`` exclusive), in the order they were written."""
    page = ledger_page(tenant_id, member_id=member_id, created_after=created_after, created_before=created_before)
    return _pages(session, page, lambda r: tuple(r), LEDGER_COLUMNS)


def ledger_page(
    tenant_id: uuid.UUID,
    *,
    member_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Callable[[uuid.UUID | None], Select[Any]]:
    """The ledger export's page query."""

    def page(after: uuid.UUID | None) -> Select[Any]:
        query = (
            select(
                entries.c.id,
                entries.c.member_id,
                entries.c.created_at,
                entries.c.kind,
                entries.c.points,
                entries.c.status,
                entries.c.cause_type,
                entries.c.cause_id,
                entries.c.reason,
                entries.c.actor,
                entries.c.available_at,
                entries.c.expires_at,
                entries.c.reverses_entry_id,
            )
            .where(entries.c.tenant_id == tenant_id)
            .order_by(entries.c.id)
            .limit(PAGE_SIZE)
        )
        if member_id is not None:
            query = query.where(entries.c.member_id == member_id)
        if created_after is not None:
            query = query.where(entries.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(entries.c.created_at < created_before)
        return query if after is None else query.where(entries.c.id > after)

    return page


EVENT_COLUMNS = (
    "id",
    "event_id",
    "type",
    "member_id",
    "occurred_at",
    "received_at",
    "amount",
    "currency",
    "quantity",
    "unit",
    "status",
    "points",
    "reversed_points",
)


def events_page(tenant_id: uuid.UUID) -> Callable[[uuid.UUID | None], Select[Any]]:
    """The events export's page query (the events as received, with their outcome's status and points)."""

    def page(after: uuid.UUID | None) -> Select[Any]:
        query = (
            select(*(events.c[name] for name in EVENT_COLUMNS))
            .where(events.c.tenant_id == tenant_id)
            .order_by(events.c.id)
            .limit(PAGE_SIZE)
        )
        return query if after is None else query.where(events.c.id > after)

    return page
