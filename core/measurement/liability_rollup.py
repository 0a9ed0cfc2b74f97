"""The liability roll-up: the ledger's history summed by the tenant's local day, written set-based by the nightly run,
so that the liability report reads a few thousand roll-up rows and the entries since the roll-up's cut-off instead of
the whole ledger (:func:`core.measurement.liability.liability` combines the two; the figures are the same).

What it covers: the entries created before ``cutoff`` (a local day start in the zone it was built in) and the lots
earned before it, chosen so that none of them can change any more:

* the cut-off is held back to the day of the oldest entry or lot still pending (its status will change), and to the
  day of the oldest entry created before it that was released (or whose original was released) after it: every
  entry rolled up is final and effective before the cut-off;
* what can still change about an old lot, its ``reversed`` points, is not rolled up: the report subtracts it live,
  from the few lots that something reverses.

Rows: ``move`` posted points by (local day created, local day effective, kind); ``earn`` the points of earn lots not
cancelled by local day earned; ``fate`` lot consumptions by (local day the consuming entry was created, first day of
the lot's local month, redeem / expire / other).

Each build replaces the tenant's rows in one transaction that first locks the tenant's state row: two builders at once
run one after the other, and the second writes the same rows again (nothing is counted twice).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, and_, case, cast, delete, func, literal, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import bulk
from core.db.base import UTCDateTime
from core.measurement.liability import _effective, _originals, consumptions, day_start, entries, lots, rollup
from core.measurement.liability import rollup_state as state

#: How long before the build an entry must have been created to be rolled up (a transaction that started earlier
#: may still commit one created then).
HOLD_BACK = timedelta(hours=1)


async def cutoff_for(db: AsyncSession, tenant_id: uuid.UUID, now: datetime, tz: ZoneInfo) -> datetime:
    """The latest local day start before which every entry and lot is final and effective."""
    cut = day_start(now - HOLD_BACK, tz)
    oldest_pending = (
        await db.execute(
            select(func.min(entries.c.created_at)).where(
                entries.c.tenant_id == tenant_id, entries.c.status == "pending"
            )
        )
    ).scalar_one_or_none()
    oldest_pending_lot = (
        await db.execute(
            select(func.min(lots.c.earned_at)).where(lots.c.tenant_id == tenant_id, lots.c.status == "pending")
        )
    ).scalar_one_or_none()
    for at in (oldest_pending, oldest_pending_lot):
        if at is not None and at < cut:
            cut = day_start(at, tz)
    while True:
        # Created before the cut-off but released at or after it (a reversal is created after its original: the
        # original, found here, already holds the cut-off back before both).
        late = (
            await db.execute(
                select(func.min(entries.c.created_at)).where(
                    entries.c.tenant_id == tenant_id,
                    entries.c.available_at.is_not(None),
                    entries.c.available_at >= cut,
                    entries.c.created_at < cut,
                )
            )
        ).scalar_one_or_none()
        if late is None:
            return cut
        cut = day_start(late, tz)


async def build(db: AsyncSession, tenant_id: uuid.UUID, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """Replace the tenant's roll-up (in the caller's transaction, which must commit it). Returns what it wrote."""
    started = time.process_time()
    postgres = bulk.is_postgres(db)
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    # Lock first: a concurrent build waits here for this one to commit, then rewrites the same rows.
    await db.execute(
        dialect_insert(state)
        .values(tenant_id=tenant_id, tz=tz.key, cutoff=now, built_at=now)
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    await db.execute(select(state.c.tenant_id).where(state.c.tenant_id == tenant_id).with_for_update())
    cut = await cutoff_for(db, tenant_id, now, tz)
    await db.execute(delete(rollup).where(rollup.c.tenant_id == tenant_id))
    if postgres:
        await _build_in_sql(db, tenant_id, cut, tz)
    else:
        await _build_in_python(db, tenant_id, cut, tz)
    await db.execute(update(state).where(state.c.tenant_id == tenant_id).values(tz=tz.key, cutoff=cut, built_at=now))
    rows = (await db.execute(select(func.count()).where(rollup.c.tenant_id == tenant_id))).scalar_one()
    return {
        "cutoff": cut.isoformat(),
        "tz": tz.key,
        "rows": int(rows),
        "cpu_s": round(time.process_time() - started, 3),
    }


def _fate(original: Any) -> Any:
    return case(
        (entries.c.kind.in_(("redeem", "expire")), entries.c.kind),
        (and_(entries.c.kind == "reverse", original.c.kind == "redeem"), literal("redeem")),
        else_=literal("other"),
    )


def _sources(tenant_id: uuid.UUID) -> tuple[Any, Any, Any]:
    original = _originals(tenant_id)
    moves = entries.outerjoin(
        original, and_(original.c.tenant_id == entries.c.tenant_id, original.c.id == entries.c.reverses_entry_id)
    )
    taken = (
        consumptions.join(
            entries, and_(entries.c.tenant_id == consumptions.c.tenant_id, entries.c.id == consumptions.c.entry_id)
        )
        .join(lots, and_(lots.c.tenant_id == consumptions.c.tenant_id, lots.c.id == consumptions.c.lot_id))
        .outerjoin(
            original, and_(original.c.tenant_id == entries.c.tenant_id, original.c.id == entries.c.reverses_entry_id)
        )
    )
    return original, moves, taken


def _filters(tenant_id: uuid.UUID, cut: datetime) -> tuple[Any, Any, Any]:
    move = and_(entries.c.tenant_id == tenant_id, entries.c.status == "posted", entries.c.created_at < cut)
    earn = and_(
        lots.c.tenant_id == tenant_id, lots.c.kind == "earn", lots.c.status != "cancelled", lots.c.earned_at < cut
    )
    fate = and_(consumptions.c.tenant_id == tenant_id, lots.c.kind == "earn", entries.c.created_at < cut)
    return move, earn, fate


async def _build_in_sql(db: AsyncSession, tenant_id: uuid.UUID, cut: datetime, tz: ZoneInfo) -> None:
    """PostgreSQL: three grouped ``INSERT ... SELECT`` (the local day computed in the scan)."""
    original, moves, taken = _sources(tenant_id)
    move_filter, earn_filter, fate_filter = _filters(tenant_id, cut)

    def day(column: Any) -> Any:
        return cast(func.timezone(tz.key, column), Date)

    columns = ["tenant_id", "measure", "kind", "day_a", "day_b", "points"]
    tenant = literal(tenant_id, rollup.c.tenant_id.type)
    effective = _effective(original)
    created, released = day(entries.c.created_at), day(effective)
    await db.execute(
        rollup.insert().from_select(
            columns,
            select(tenant, literal("move"), entries.c.kind, created, released, func.sum(entries.c.points))
            .select_from(moves)
            .where(move_filter)
            .group_by(entries.c.kind, created, released),
        )
    )
    earned = day(lots.c.earned_at)
    await db.execute(
        rollup.insert().from_select(
            columns,
            select(tenant, literal("earn"), literal("earn"), earned, earned, func.sum(lots.c.points))
            .where(earn_filter)
            .group_by(earned),
        )
    )
    fate = _fate(original)
    month = cast(func.date_trunc("month", func.timezone(tz.key, lots.c.earned_at)), Date)
    created = day(entries.c.created_at)
    await db.execute(
        rollup.insert().from_select(
            columns,
            select(tenant, literal("fate"), fate, created, month, func.sum(consumptions.c.points))
            .select_from(taken)
            .where(fate_filter)
            .group_by(fate, created, month),
        )
    )


async def _build_in_python(db: AsyncSession, tenant_id: uuid.UUID, cut: datetime, tz: ZoneInfo) -> None:
    """SQLite (no time zones in SQL): the rows read and summed by local day here."""
    original, moves, taken = _sources(tenant_id)
    move_filter, earn_filter, fate_filter = _filters(tenant_id, cut)
    sums: dict[tuple[str, str, date, date], int] = defaultdict(int)

    def day(at: datetime) -> date:
        return at.astimezone(tz).date()

    effective = type_coerce(_effective(original), UTCDateTime())
    for r in await db.execute(
        select(entries.c.kind, entries.c.created_at, effective.label("effective"), entries.c.points)
        .select_from(moves)
        .where(move_filter)
    ):
        sums["move", r.kind, day(r.created_at), day(r.effective)] += int(r.points)
    for r in await db.execute(select(lots.c.earned_at, lots.c.points).where(earn_filter)):
        sums["earn", "earn", day(r.earned_at), day(r.earned_at)] += int(r.points)
    for r in await db.execute(
        select(_fate(original).label("fate"), entries.c.created_at, lots.c.earned_at, consumptions.c.points)
        .select_from(taken)
        .where(fate_filter)
    ):
        sums["fate", r.fate, day(r.created_at), day(r.earned_at).replace(day=1)] += int(r.points)
    if sums:
        await db.execute(
            rollup.insert(),
            [
                {"tenant_id": tenant_id, "measure": m, "kind": k, "day_a": a, "day_b": b, "points": p}
                for (m, k, a, b), p in sums.items()
            ],
        )
