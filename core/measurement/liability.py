"""Points liability and breakage, read from the ledger so that an auditor can tie every figure to it.

Every ledger entry changes the posted balance by its ``points`` once it is posted. An entry created posted counts
from its ``created_at``; a pending credit (and the reversals taken from it while pending) counts from its release,
``available_at``. So, for any instant T:

* **posted** outstanding = sum of the points of posted entries effective at or before T;
* **pending** outstanding = sum of the points of entries created by T that are (or were then) still pending;
  cancelled pending credits never count (the ledger does not record when they were cancelled);
* the **movement** of a month = the posted entries effective in it, by kind; opening + movement = closing, exactly.

**Breakage** is estimated from the program's own history: earned points whose fate is known (redeemed or expired,
from the lot consumptions) give the share that expired; that share of the outstanding points is expected never to
be redeemed. A tenant may set the rate instead (``breakage_rate``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.db import bulk
from core.db.base import table_of
from core.ledger.models import LedgerEntry, Lot, LotConsumption
from core.measurement.models import LiabilityRollup, LiabilityRollupState

entries = table_of(LedgerEntry)
lots = table_of(Lot)
consumptions = table_of(LotConsumption)
rollup = table_of(LiabilityRollup)
rollup_state = table_of(LiabilityRollupState)
KINDS = ("earn", "redeem", "expire", "adjust", "reverse", "transfer")
CENT = Decimal("0.01")


def month_starts(as_of: datetime, months: int, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the last ``months`` local months start (the last one holds ``as_of``), plus
    ``as_of`` itself as the end."""
    local = as_of.astimezone(tz)
    first = date(local.year, local.month, 1)
    starts = [first]
    for _ in range(months - 1):
        previous = starts[0] - timedelta(days=1)
        starts.insert(0, previous.replace(day=1))
    return [datetime(d.year, d.month, 1, tzinfo=tz).astimezone(ZoneInfo("UTC")) for d in starts] + [as_of]


def day_start(at: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the local day (in ``tz``) holding ``at`` starts."""
    local = at.astimezone(tz)
    return datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)


def _originals(tenant_id: uuid.UUID) -> Any:
    """The entries that some entry reverses (found by the reversals' index), with what a reversal reads of its
    original: outer-joined to every entry, this is a small hash table, where the whole ledger was one before."""
    reversal = aliased(entries, name="reversal")
    reversed_ids = select(reversal.c.reverses_entry_id).where(
        reversal.c.tenant_id == tenant_id, reversal.c.reverses_entry_id.is_not(None)
    )
    return (
        select(entries.c.tenant_id, entries.c.id, entries.c.kind, entries.c.available_at)
        .where(entries.c.tenant_id == tenant_id, entries.c.id.in_(reversed_ids))
        .subquery("original")
    )


def _taken_from_lots(original: Any) -> Any:
    """Each lot consumption with the entry that took it, the lot it took from, and (for a reversal) its original."""
    return (
        consumptions.join(
            entries, and_(entries.c.tenant_id == consumptions.c.tenant_id, entries.c.id == consumptions.c.entry_id)
        )
        .join(lots, and_(lots.c.tenant_id == consumptions.c.tenant_id, lots.c.id == consumptions.c.lot_id))
        .outerjoin(
            original, and_(original.c.tenant_id == entries.c.tenant_id, original.c.id == entries.c.reverses_entry_id)
        )
    )


def _effective(original: Any) -> Any:
    """When an entry moved the posted balance: its release for a pending credit (or a reversal taken from one while
    pending), else its creation."""
    released = func.coalesce(original.c.available_at, entries.c.available_at)
    return case((and_(released.is_not(None), released > entries.c.created_at), released), else_=entries.c.created_at)


@dataclass
class Movement:
    month: str
    opening: int
    by_kind: dict[str, int]
    closing: int


@dataclass
class Cohort:
    month: str
    earned: int
    redeemed: int
    expired: int
    outstanding: int


@dataclass
class Liability:
    as_of: datetime
    currency: str
    point_value: Decimal
    posted: int
    pending: int
    breakage_rate: float | None
    breakage_source: str
    movement: list[Movement] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)

    @property
    def outstanding(self) -> int:
        return self.posted + self.pending

    def value(self, points: int | float) -> Decimal:
        return (Decimal(str(points)) * self.point_value).quantize(CENT, rounding=ROUND_HALF_EVEN)

    @property
    def expected_breakage_points(self) -> int:
        return round(self.outstanding * (self.breakage_rate or 0.0))


async def liability(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    as_of: datetime,
    months: int,
    tz: ZoneInfo,
    currency: str,
    point_value: Decimal,
    breakage_rate: float | None,
) -> Liability:
    bounds = month_starts(as_of, months, tz)
    rolled = await _from_rollup(db, tenant_id, as_of, months, bounds, tz)
    if rolled is not None:
        (before, pending, moved), cohorts = rolled
    else:  # no roll-up yet, or one built in another zone: the whole ledger
        before, pending, moved = await _scan(db, tenant_id, as_of, months, bounds)
        cohorts = await _cohorts(db, tenant_id, as_of, tz)
    running = before
    movement = []
    for i in range(months):
        closing = running + sum(moved[i].values())
        local = bounds[i].astimezone(tz)
        movement.append(Movement(f"{local.year:04d}-{local.month:02d}", running, moved[i], closing))
        running = closing
    result = Liability(as_of, currency, point_value, running, pending, breakage_rate, "settings")
    result.movement = movement
    result.cohorts = cohorts
    if breakage_rate is None:
        redeemed = sum(c.redeemed for c in result.cohorts)
        expired = sum(c.expired for c in result.cohorts)
        if redeemed + expired:
            result.breakage_rate = expired / (redeemed + expired)
            result.breakage_source = "history"
        else:
            result.breakage_source = "none: no points redeemed or expired yet"
    return result


Sums = tuple[int, int, dict[int, dict[str, int]]]


async def _scan(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    as_of: datetime,
    months: int,
    bounds: list[datetime],
    scope: Callable[[Any], Any] | None = None,
) -> Sums:
    """From the ledger (the entries ``scope``, given the effective-time expression, picks; else all): the posted
    balance before the first month, what is pending at ``as_of`` and each month's posted movement by kind."""
    original = _originals(tenant_id)
    effective = _effective(original)
    source = entries.outerjoin(
        original, and_(original.c.tenant_id == entries.c.tenant_id, original.c.id == entries.c.reverses_entry_id)
    )
    mine = and_(
        entries.c.tenant_id == tenant_id, entries.c.created_at <= as_of, *([] if scope is None else [scope(effective)])
    )
    month_index = _month_index(effective, bounds)
    posted = entries.c.status == "posted"
    # One scan: the posted balance before the first month, each month's posted movement by kind, and the pending.
    before = func.sum(case((and_(posted, effective < bounds[0]), entries.c.points), else_=0))
    pending_now = func.sum(
        case(
            (
                or_(
                    entries.c.status == "pending",
                    and_(posted, effective > as_of),
                ),
                entries.c.points,
            ),
            else_=0,
        )
    )
    head = (
        await db.execute(select(before.label("before"), pending_now.label("pending")).select_from(source).where(mine))
    ).one()
    rows = await db.execute(
        select(month_index.label("m"), entries.c.kind, func.sum(entries.c.points).label("points"))
        .select_from(source)
        .where(mine, posted, effective >= bounds[0], effective <= as_of)
        .group_by(month_index, entries.c.kind)
    )
    moved: dict[int, dict[str, int]] = {i: dict.fromkeys(KINDS, 0) for i in range(months)}
    for r in rows:
        moved[int(r.m)][r.kind] = int(r.points or 0)
    return int(head.before or 0), int(head.pending or 0), moved


def _month_of(day: date, bounds: list[datetime], tz: ZoneInfo) -> int:
    """Which month of ``bounds`` a local day falls in: -1 before the first."""
    first = bounds[0].astimezone(tz)
    return max(-1, (day.year - first.year) * 12 + day.month - first.month)


def _key(at: datetime | date, tz: ZoneInfo) -> str:
    local = at.astimezone(tz) if isinstance(at, datetime) else at
    return f"{local.year:04d}-{local.month:02d}"


async def _from_rollup(
    db: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, months: int, bounds: list[datetime], tz: ZoneInfo
) -> tuple[Sums, list[Cohort]] | None:
    """The same figures from the roll-up (the entries created before a local day start ``start``: the roll-up's
    cut-off, or the day of ``as_of`` if that is earlier) and the ledger since ``start``. None without a roll-up
    built in ``tz``."""
    found = (
        await db.execute(select(rollup_state.c.tz, rollup_state.c.cutoff).where(rollup_state.c.tenant_id == tenant_id))
    ).one_or_none()
    if found is None or found.tz != tz.key:
        return None
    start = min(found.cutoff, day_start(as_of, tz))
    start_day = start.astimezone(tz).date()
    next_start = datetime.combine(start_day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    mine = and_(rollup.c.tenant_id == tenant_id, rollup.c.day_a < start_day)
    # Posted entries created before ``start``: effective before it (posted by as_of), on its day (read from the
    # ledger below: the exact instant decides), or later (pending at as_of; only when as_of is before the cut-off).
    before, pending = 0, 0
    moved: dict[int, dict[str, int]] = {i: dict.fromkeys(KINDS, 0) for i in range(months)}
    for r in await db.execute(
        select(rollup.c.day_b, rollup.c.kind, func.sum(rollup.c.points).label("points"))
        .where(mine, rollup.c.measure == "move")
        .group_by(rollup.c.day_b, rollup.c.kind)
    ):
        points = int(r.points)
        if r.day_b < start_day:
            month = _month_of(r.day_b, bounds, tz)
            if month < 0:
                before += points
            else:
                moved[month][r.kind] += points
        elif r.day_b > start_day:
            pending += points
    live = [await _scan(db, tenant_id, as_of, months, bounds, lambda _: entries.c.created_at >= start)]
    if start < found.cutoff:
        # The entries released on ``start``'s day (few; by the release index), then those and their reversals by key.
        released = list(
            (
                await db.execute(
                    select(entries.c.id).where(
                        entries.c.tenant_id == tenant_id,
                        entries.c.available_at.is_not(None),
                        entries.c.available_at >= start,
                        entries.c.available_at < next_start,
                    )
                )
            ).scalars()
        )

        def released_that_day(effective: Any) -> Any:
            return and_(
                entries.c.created_at < start,
                or_(entries.c.id.in_(released), entries.c.reverses_entry_id.in_(released)),
                effective >= start,
                effective < next_start,
            )

        if released:
            live.append(await _scan(db, tenant_id, as_of, months, bounds, released_that_day))
    for b, p, m in live:
        before += b
        pending += p
        for i in range(months):
            for kind in KINDS:
                moved[i][kind] += m[i][kind]
    return (before, pending, moved), await _cohorts_from_rollup(db, tenant_id, as_of, start, start_day, tz)


async def _cohorts_from_rollup(
    db: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, start: datetime, start_day: date, tz: ZoneInfo
) -> list[Cohort]:
    earned: dict[str, int] = defaultdict(int)
    fates: dict[tuple[str, str], int] = defaultdict(int)
    mine = and_(rollup.c.tenant_id == tenant_id, rollup.c.day_a < start_day)
    for r in await db.execute(
        select(rollup.c.day_a, func.sum(rollup.c.points).label("points"))
        .where(mine, rollup.c.measure == "earn")
        .group_by(rollup.c.day_a)
    ):
        earned[_key(r.day_a, tz)] += int(r.points)
    for fated in await db.execute(
        select(rollup.c.day_b, rollup.c.kind, func.sum(rollup.c.points).label("points"))
        .where(mine, rollup.c.measure == "fate")
        .group_by(rollup.c.day_b, rollup.c.kind)
    ):
        fates[_key(fated.day_b, tz), fated.kind] += int(fated.points)
    # What reversals took from the rolled-up lots (it can change after the roll-up): from the lots something reverses.
    reversed_ids = select(entries.c.reverses_entry_id).where(
        entries.c.tenant_id == tenant_id, entries.c.reverses_entry_id.is_not(None)
    )
    earn_lot = and_(lots.c.tenant_id == tenant_id, lots.c.kind == "earn", lots.c.earned_at <= as_of)
    for r in await db.execute(
        select(lots.c.earned_at, lots.c.reversed).where(
            earn_lot,
            lots.c.status != "cancelled",
            lots.c.earned_at < start,
            lots.c.id.in_(reversed_ids),
            lots.c.reversed > 0,
        )
    ):
        earned[_key(r.earned_at, tz)] -= int(r.reversed)
    # Since ``start``: the lots earned, and what the entries created took from lots.
    for r in await db.execute(
        select(lots.c.earned_at, (lots.c.points - lots.c.reversed).label("points")).where(
            earn_lot, lots.c.status != "cancelled", lots.c.earned_at >= start
        )
    ):
        earned[_key(r.earned_at, tz)] += int(r.points)
    original = _originals(tenant_id)
    fate = case(
        (entries.c.kind.in_(("redeem", "expire")), entries.c.kind),
        (and_(entries.c.kind == "reverse", original.c.kind == "redeem"), literal("redeem")),
        else_=literal("other"),
    )
    for taken in await db.execute(
        select(lots.c.earned_at, fate.label("fate"), consumptions.c.points)
        .select_from(_taken_from_lots(original))
        .where(earn_lot, entries.c.tenant_id == tenant_id, entries.c.created_at >= start, entries.c.created_at <= as_of)
    ):
        fates[_key(taken.earned_at, tz), taken.fate] += int(taken.points)
    return _assemble(earned, fates, as_of, tz)


def _assemble(earned: dict[str, int], fates: dict[tuple[str, str], int], as_of: datetime, tz: ZoneInfo) -> list[Cohort]:
    """Cohorts from points by local month of earning, as :func:`_cohorts` makes them (at most the last 120 months;
    older ones counted in the first)."""
    keys = [*earned, *(month for month, _ in fates)]
    if not keys:
        return []
    local_end = as_of.astimezone(tz)
    year, first_month = map(int, min(keys).split("-"))
    span = (local_end.year - year) * 12 + local_end.month - first_month + 1
    bounds = month_starts(as_of, min(span, MAX_COHORTS), tz)
    index = {_month_name(start, tz): i for i, start in enumerate(bounds[:-1])}
    cohorts = [Cohort(_month_name(start, tz), 0, 0, 0, 0) for start in bounds[:-1]]
    for month, points in earned.items():
        cohorts[index.get(month, 0)].earned += points
    for (month, fate), points in fates.items():
        if fate == "redeem":
            cohorts[index.get(month, 0)].redeemed += points
        elif fate == "expire":
            cohorts[index.get(month, 0)].expired += points
    for c in cohorts:
        c.outstanding = max(0, c.earned - c.redeemed - c.expired)
    return [c for c in cohorts if c.earned or c.redeemed or c.expired]


MAX_COHORTS = 120


def _month_index(column: Any, bounds: list[datetime]) -> Any:
    """Which of the months starting at ``bounds`` (the last bound ends them) ``column`` falls in; earlier is 0."""
    if len(bounds) <= 2:
        return literal(0)
    return case(*((column < bounds[i + 1], literal(i)) for i in range(len(bounds) - 2)), else_=literal(len(bounds) - 2))


async def _cohorts(db: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, tz: ZoneInfo) -> list[Cohort]:
    """Earned points by month of earning (at most the last 120 months; older ones are counted in the first), and
    what became of them by ``as_of``: redeemed, expired, outstanding. Two grouped scans."""
    local_end = as_of.astimezone(tz)
    if bulk.is_postgres(db):
        # The local month of earning computed in the scan: a CASE over up to 120 month bounds costs far more per lot.
        month = func.to_char(func.timezone(tz.key, lots.c.earned_at), "YYYY-MM")
        earned, fates = await _cohort_sums(db, tenant_id, as_of, month)
        if not earned and not fates:
            return []
        year, first_month = map(int, min(str(r.c) for r in (*earned, *fates)).split("-"))
        span = (local_end.year - year) * 12 + local_end.month - first_month + 1
        bounds = month_starts(as_of, min(span, MAX_COHORTS), tz)
        index = {_month_name(start, tz): i for i, start in enumerate(bounds[:-1])}

        def position(key: Any) -> int:
            return index.get(str(key), 0)  # older than the first cohort: counted in it

    else:
        earn_lot = and_(lots.c.tenant_id == tenant_id, lots.c.kind == "earn", lots.c.earned_at <= as_of)
        first = (await db.execute(select(func.min(lots.c.earned_at)).where(earn_lot))).scalar_one_or_none()
        if first is None:
            return []
        local_first = first.astimezone(tz)
        span = (local_end.year - local_first.year) * 12 + local_end.month - local_first.month + 1
        bounds = month_starts(as_of, min(span, MAX_COHORTS), tz)
        earned, fates = await _cohort_sums(db, tenant_id, as_of, _month_index(lots.c.earned_at, bounds))

        def position(key: Any) -> int:
            return int(key)

    cohorts = [Cohort(_month_name(start, tz), 0, 0, 0, 0) for start in bounds[:-1]]
    for row in earned:
        cohorts[position(row.c)].earned += int(row.points or 0)
    for row in fates:
        if row.fate == "redeem":
            cohorts[position(row.c)].redeemed += int(row.points or 0)
        elif row.fate == "expire":
            cohorts[position(row.c)].expired += int(row.points or 0)
    for c in cohorts:
        c.outstanding = max(0, c.earned - c.redeemed - c.expired)
    return [c for c in cohorts if c.earned or c.redeemed or c.expired]


def _month_name(start: datetime, tz: ZoneInfo) -> str:
    local = start.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


async def _cohort_sums(
    db: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, cohort_of: Any
) -> tuple[Sequence[Any], Sequence[Any]]:
    """Per cohort (``cohort_of``, an expression of the lot), the points earned, and those redeemed or expired."""
    earn_lot = and_(lots.c.tenant_id == tenant_id, lots.c.kind == "earn", lots.c.earned_at <= as_of)
    earned = (
        await db.execute(
            select(cohort_of.label("c"), func.sum(lots.c.points - lots.c.reversed).label("points"))
            .where(earn_lot, lots.c.status != "cancelled")
            .group_by(cohort_of)
        )
    ).all()
    # A cancelled redemption gives its points back to the lots (a reverse entry of the redeem, negative takes).
    original = _originals(tenant_id)
    fate = case(
        (entries.c.kind.in_(("redeem", "expire")), entries.c.kind),
        (and_(entries.c.kind == "reverse", original.c.kind == "redeem"), literal("redeem")),
        else_=literal("other"),
    )
    fates = (
        await db.execute(
            select(cohort_of.label("c"), fate.label("fate"), func.sum(consumptions.c.points).label("points"))
            .select_from(_taken_from_lots(original))
            .where(earn_lot, consumptions.c.tenant_id == tenant_id, entries.c.created_at <= as_of)
            .group_by(cohort_of, fate)
        )
    ).all()
    return earned, fates
