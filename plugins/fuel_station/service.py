"""The fuel plugin's reads and writes (the hooks and routes stay thin; the rules stay pure in ``rules.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    Award,
    Decision,
    EventContext,
    FieldIssue,
    HookContext,
    JobContext,
    MemberContext,
    ReversalView,
    Screening,
    ValidationFailed,
    new_id,
    request_care,
)
from plugins.fuel_station import rules
from plugins.fuel_station.events import FILL_UP, KIND_OF, event_issues
from plugins.fuel_station.models import FuelReview, FuelSite, FuelTransaction
from plugins.fuel_station.settings import FuelSettings

#: Where screening leaves a held fill-up's fraud flags for ``fealty_event_processed`` to record (by event id).
_FLAGS = "fuel.flags"
#: How far back the daily win-back job looks for lapses that began (so a worker that was down catches up).
WIN_BACK_LOOKBACK_DAYS = 30


def settings_of(ctx: EventContext | JobContext) -> FuelSettings:
    settings: FuelSettings = ctx.tenant.settings_for("fuel")
    return settings


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def _text(value: object) -> str | None:
    """A value stored in a text column: PostgreSQL's driver refuses a number there (SQLite took it as it came)."""
    return None if value is None else str(value)


def local_month(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m")


async def site_by_code(session: AsyncSession, code: str) -> FuelSite | None:
    site: FuelSite | None = (await session.execute(select(FuelSite).where(FuelSite.code == code))).scalar_one_or_none()
    return site


async def sites_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, FuelSite]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = (await session.execute(select(FuelSite).where(FuelSite.code.in_(wanted)))).scalars()
    return {site.code: site for site in rows}


async def site_of(ctx: EventContext) -> FuelSite | None:
    """The event's site, read once per request (a batch names few sites many times)."""
    cache: dict[tuple[Any, str], Any] = ctx.session.info.setdefault("fuel.sites", {})
    key = (ctx.tenant.id, ctx.event.attributes.site)
    if key not in cache:
        cache[key] = await site_by_code(ctx.session, ctx.event.attributes.site)
    site: FuelSite | None = cache[key]
    return site


def _excluded(ctx: EventContext) -> list[uuid.UUID]:
    """The event itself and the batch's earlier items: they are counted from the batch, never twice."""
    return [ctx.event.id, *(e.id for e in ctx.earlier)]


# --- validation and screening ---------------------------------------------------------------------------------------


async def validate(ctx: EventContext) -> list[FieldIssue]:
    if ctx.event.type not in KIND_OF:
        return []
    issues = event_issues(ctx.event, settings_of(ctx), ctx.tenant.currency)
    if await site_of(ctx) is None:
        issues.append(FieldIssue("attributes.site", f"no site with code '{ctx.event.attributes.site}'"))
    return issues


async def screen(ctx: EventContext) -> Screening | None:
    """Refuse what a non-participating site sends; hold a fill-up the fraud rules flag (its flags are recorded with
    its row once it is stored)."""
    if ctx.event.type not in KIND_OF:
        return None
    site = await site_of(ctx)
    assert site is not None  # validated
    if not site.participating:
        return Screening(
            "reject", f"site {site.code} does not take part in the programme: nothing is earned there", "fuel.site"
        )
    if ctx.event.type != FILL_UP:
        return None
    flags = await fraud_flags(ctx, site, ZoneInfo(ctx.tenant.timezone))
    if not flags:
        return None
    ctx.session.info.setdefault(_FLAGS, {})[ctx.event.id] = flags
    return Screening("hold", "; ".join(f"{f.detail} [{f.code}]" for f in flags), "fuel.fraud")


# --- fraud ----------------------------------------------------------------------------------------------------------


async def fraud_flags(ctx: EventContext, site: FuelSite, tz: ZoneInfo) -> list[rules.Flag]:
    """The fraud rules for a fill-up, over the member's stored fill-ups (one query) and the batch's earlier ones."""
    settings = settings_of(ctx)
    event = ctx.event
    assert event.quantity is not None
    day = local_day(event.occurred_at, tz)
    window = timedelta(minutes=max(settings.repeat_fill_minutes, 1))
    rows = (
        await ctx.session.execute(
            select(FuelTransaction.occurred_at, FuelTransaction.litres, FuelTransaction.local_day, FuelSite.code)
            .join(
                FuelSite, and_(FuelSite.tenant_id == FuelTransaction.tenant_id, FuelSite.id == FuelTransaction.site_id)
            )
            .where(
                FuelTransaction.member_id == ctx.member.id,
                FuelTransaction.kind == "fill_up",
                # fill-ups refused at non-participating sites are outside the programme; a rejected review counts
                or_(FuelTransaction.status != "rejected", FuelTransaction.flagged.is_(True)),
                FuelTransaction.id.not_in(_excluded(ctx)),
                or_(
                    FuelTransaction.local_day == day,
                    FuelTransaction.occurred_at.between(event.occurred_at - window, event.occurred_at + window),
                ),
            )
        )
    ).all()
    stored = [(rules.FillUp(r.code, r.occurred_at, r.litres or Decimal(0)), r.local_day) for r in rows]
    batch = [
        (
            rules.FillUp(e.event.attributes.site, e.event.occurred_at, e.event.quantity or Decimal(0)),
            local_day(e.event.occurred_at, tz),
        )
        for e in ctx.earlier_results
        if e.event.type == FILL_UP and e.status != "rejected"
    ]
    others = stored + batch
    this = rules.FillUp(site.code, event.occurred_at, event.quantity)
    same_day = [f for f, d in others if d == day]
    nearby = [f for f, _ in others if abs(f.at - event.occurred_at) <= window]
    limits = rules.site_limits(settings, site.tank_size_litres, site.daily_max_fill_ups, site.daily_max_litres)
    return rules.fraud_flags(this, same_day, nearby, limits, settings)


# --- awards ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What the member already has this month (capped points) and in all (visits), before this event."""

    month_points: int
    visits: int


async def usage(ctx: EventContext, tz: ZoneInfo) -> Usage:
    """Stored awarded transactions, less what reversals took back (one query), plus the batch's earlier items that
    were awarded."""
    month = local_month(ctx.event.occurred_at, tz)
    row = (
        await ctx.session.execute(
            select(
                func.coalesce(
                    func.sum(
                        case(
                            (
                                FuelTransaction.local_month == month,
                                FuelTransaction.points - FuelTransaction.reversed_points,
                            ),
                            else_=0,
                        )
                    ),
                    0,
                ),
                func.coalesce(func.sum(case((FuelTransaction.visit.is_(True), 1), else_=0)), 0),
            ).where(
                FuelTransaction.member_id == ctx.member.id,
                FuelTransaction.status == "awarded",
                FuelTransaction.id.not_in(_excluded(ctx)),
            )
        )
    ).one()
    month_points, visits = int(row[0]), int(row[1])
    settings = settings_of(ctx)
    for earlier in ctx.earlier_results:
        if earlier.status != "awarded" or earlier.event.type not in KIND_OF:
            continue
        if local_month(earlier.event.occurred_at, tz) == month:
            month_points += rules.capped_points([(a.source, a.points) for a in earlier.awards])
        visits += rules.is_visit(KIND_OF[earlier.event.type], earlier.event.amount, settings)
    return Usage(month_points, visits)


async def compute_awards(ctx: EventContext) -> list[Award] | None:
    """Base points by grade or in the shop, the premium extra, under the monthly cap; a visit's reward."""
    event = ctx.event
    kind = KIND_OF.get(event.type)
    if kind is None:
        return None
    settings = settings_of(ctx)
    assert event.amount is not None
    if kind == "fill_up":
        assert event.quantity is not None
        lines = rules.fill_up_lines(settings, settings.grades[event.attributes.grade], event.quantity, event.amount)
    else:
        lines = rules.shop_lines(settings, event.amount)
    lines = [line for line in lines if line.points or line.source != rules.PREMIUM]
    used = await usage(ctx, ZoneInfo(ctx.tenant.timezone))
    lines = rules.apply_monthly_cap(lines, used.month_points, settings.monthly_points_cap)
    if rules.is_visit(kind, event.amount, settings):
        reward = rules.visit_reward(used.visits, settings)
        if reward is not None:
            lines.append(reward)
    return to_awards(lines)


def qualifying_credits(ctx: EventContext) -> dict[str, Decimal] | None:
    """What levels count: litres, fuel and shop spend, fill-ups, visits."""
    event = ctx.event
    kind = KIND_OF.get(event.type)
    if kind is None:
        return None
    assert event.amount is not None
    visit = Decimal(1) if rules.is_visit(kind, event.amount, settings_of(ctx)) else Decimal(0)
    if kind == "fill_up":
        assert event.quantity is not None
        return {"litres": event.quantity, "fuel_spend": event.amount, "fill_ups": Decimal(1), "visits": visit}
    return {"shop_spend": event.amount, "visits": visit}


def to_awards(lines: Sequence[rules.Line]) -> list[Award]:
    return [
        Award(line.points, line.reason, line.source, base=line.base, detail={"capped_from": line.capped_from})
        for line in lines
    ]


# --- recording ------------------------------------------------------------------------------------------------------


async def processed(ctx: EventContext, status: str, awards: Sequence[Award]) -> None:
    """Record the event's row with its status (and the fraud flags screening found, when it was held)."""
    if ctx.event.type not in KIND_OF:
        return
    flags = ctx.session.info.get(_FLAGS, {}).pop(ctx.event.id, None)
    row = await record(ctx, status, awards, flags)
    if row is not None and row.flagged and ctx.decision is not None:
        await record_decision(ctx.session, row, ctx.decision, sum(a.points for a in awards))


async def record_decision(session: AsyncSession, row: FuelTransaction, decision: Decision, points: int) -> None:
    """A reviewer's decision on a held fill-up, however it was made (this plugin's queue or core's
    ``/v1/events/{id}/approve|reject``): kept with who, when, why and what it earned."""
    session.add(
        FuelReview(
            tenant_id=row.tenant_id,
            id=new_id(),
            transaction_id=row.id,
            decision=decision.decision,
            reason=decision.reason,
            decided_by=decision.decided_by,
            decided_at=decision.decided_at,
            points=points if decision.decision == "approved" else 0,
        )
    )
    await session.flush()


async def record(
    ctx: EventContext, status: str, awards: Sequence[Award], flags: Sequence[rules.Flag] | None
) -> FuelTransaction | None:
    """Keep the plugin's row of this event in step with its status (inserted when first seen, updated when a held
    event is decided). Returns the row."""
    event = ctx.event
    kind = KIND_OF.get(event.type)
    if kind is None:
        return None
    settings = settings_of(ctx)
    tz = ZoneInfo(ctx.tenant.timezone)
    row: FuelTransaction | None = await ctx.session.get(FuelTransaction, (ctx.tenant.id, event.id))
    points = rules.capped_points([(a.source, a.points) for a in awards]) if status == "awarded" else 0
    visit = status == "awarded" and rules.is_visit(kind, event.amount, settings)
    if row is None:
        site = await site_by_code(ctx.session, event.attributes.site)
        if site is None:  # the site was removed since validation: nothing to attach the row to
            return None
        attrs = event.attributes
        row = FuelTransaction(
            tenant_id=ctx.tenant.id,
            id=event.id,
            event_id=event.event_id,
            kind=kind,
            member_id=ctx.member.id,
            site_id=site.id,
            occurred_at=event.occurred_at,
            local_day=local_day(event.occurred_at, tz),
            local_month=local_month(event.occurred_at, tz),
            litres=event.quantity if kind == "fill_up" else None,
            grade=getattr(attrs, "grade", None),
            pump=_text(getattr(attrs, "pump", None)),  # a number (docs/fuel.md's "pump": 4) or a code
            payment_method=getattr(attrs, "payment_method", None),
            category=getattr(attrs, "category", None),
            amount=event.amount or Decimal(0),
            currency=event.currency or ctx.tenant.currency,
            status=status,
            points=points,
            visit=visit,
            flagged=bool(flags),
            flags=[{"code": f.code, "detail": f.detail} for f in flags or ()],
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.session.add(row)
    else:
        row.status, row.points, row.visit, row.updated_at = status, points, visit, ctx.now
        if flags:
            row.flagged, row.flags = True, [{"code": f.code, "detail": f.detail} for f in flags]
    await ctx.session.flush()
    return row


# --- set up when enabled -------------------------------------------------------------------------------------------


async def seed_defaults(ctx: HookContext) -> None:
    """The trade's defaults, set up once when the tenant enables the plugin (``seed_defaults``), never over what the
    tenant configured: the level ladder when the program has no tiers, expiry after ``points_expiry_days`` while it
    is ``never``."""
    settings: FuelSettings = ctx.tenant.settings_for("fuel")
    if not settings.seed_defaults:
        return
    if not await ctx.services.tier_codes():
        for body in rules.default_levels(settings):
            await ctx.services.create_tier(body)
    if settings.points_expiry_days is not None and (await ctx.services.expiry_policy()).kind == "never":
        await ctx.services.set_expiry_policy("days_after_earn", settings.points_expiry_days)


# --- new members ----------------------------------------------------------------------------------------------------


async def start_new_member(ctx: MemberContext) -> None:
    """A new member starts on ``new_member_level`` (as a floor) for ``new_member_months``, when the program has it."""
    settings: FuelSettings = ctx.tenant.settings_for("fuel")
    if settings.new_member_level is None:
        return
    try:
        await ctx.services.assign_tier(
            ctx.member.id,
            settings.new_member_level,
            until=rules.add_months(ctx.now, settings.new_member_months),
            reason="new member",
        )
    except ValidationFailed:
        return  # the program has no such tier (yet): members start where core's tiers put them


# --- reversals -------------------------------------------------------------------------------------------------------


async def on_event_reversed(ctx: EventContext, reversal: ReversalView) -> None:
    """(Part of) an awarded transaction was reversed through the API: it counts that much less toward the monthly
    cap, keeps its visit only while what is left still reaches the threshold, and once reversed in full is no visit
    and no activity any more."""
    kind = KIND_OF.get(ctx.event.type)
    if kind is None:
        return
    row = await ctx.session.get(FuelTransaction, (ctx.tenant.id, ctx.event.id), with_for_update=True)
    if row is None or row.status != "awarded":
        return
    share = min(Decimal(1), Decimal(reversal.reversed_fraction))
    row.reversed_fraction = share
    row.reversed_points = rules.reversed_points(row.points, share)
    row.visit = row.visit and rules.visit_after_reversal(kind, row.amount, share, settings_of(ctx))
    row.updated_at = ctx.now
    await ctx.session.flush()


def counts_as_activity() -> Any:
    """The transactions that are activity: awarded, and not reversed in full."""
    return and_(FuelTransaction.status == "awarded", FuelTransaction.reversed_fraction < 1)


# --- measures -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRow:
    site_id: uuid.UUID | None
    cohort: int
    returned: int
    churned: int


async def retention(
    session: AsyncSession, tenant_id: uuid.UUID, as_of: datetime, days: int
) -> tuple[RetentionRow, list[RetentionRow]]:
    """Return and churn over two back-to-back windows of ``days``: the cohort is who had activity (awarded and not
    reversed in full) in the earlier window; *returned* came back in the later one (to the same site, for a site's
    row; anywhere, for the network), *churned* had no activity anywhere in the network in the later one. Set-based:
    three statements."""
    recent_start = as_of - timedelta(days=days)
    base_start = recent_start - timedelta(days=days)
    tx = FuelTransaction
    awarded = and_(tx.tenant_id == tenant_id, counts_as_activity())
    cohort = (
        select(tx.site_id, tx.member_id)
        .where(awarded, tx.occurred_at >= base_start, tx.occurred_at < recent_start)
        .distinct()
        .subquery("cohort")
    )
    recent_site = (
        select(tx.site_id, tx.member_id)
        .where(awarded, tx.occurred_at >= recent_start, tx.occurred_at < as_of)
        .distinct()
        .subquery("recent_site")
    )
    recent_any = (
        select(tx.member_id).where(awarded, tx.occurred_at >= recent_start, tx.occurred_at < as_of).distinct()
    ).subquery("recent_any")
    per_site = (
        select(
            cohort.c.site_id,
            func.count(),
            func.count(recent_site.c.member_id),
            func.sum(case((recent_any.c.member_id.is_(None), 1), else_=0)),
        )
        .select_from(cohort)
        .outerjoin(
            recent_site,
            and_(recent_site.c.site_id == cohort.c.site_id, recent_site.c.member_id == cohort.c.member_id),
        )
        .outerjoin(recent_any, recent_any.c.member_id == cohort.c.member_id)
        .group_by(cohort.c.site_id)
    )
    sites = [
        RetentionRow(site_id, int(n), int(back), int(lost or 0))
        for site_id, n, back, lost in (await session.execute(per_site)).all()
    ]
    members = select(cohort.c.member_id).distinct().subquery("members")
    network_query = (
        select(func.count(), func.count(recent_any.c.member_id))
        .select_from(members)
        .outerjoin(recent_any, recent_any.c.member_id == members.c.member_id)
    )
    n, back = (await session.execute(network_query)).one()
    network = RetentionRow(None, int(n), int(back), int(n) - int(back))
    return network, sites


# --- win-back -------------------------------------------------------------------------------------------------------


async def request_win_backs(ctx: JobContext) -> int:
    """Members whose last fill-up or shop purchase began a lapse of ``win_back_after_days``: one care request per
    member and lapse (its dedupe key names the last activity's day), however often the job runs."""
    settings = settings_of(ctx)
    tz = ZoneInfo(ctx.tenant.timezone)
    lapse_start = ctx.now - timedelta(days=settings.win_back_after_days)
    last = func.max(FuelTransaction.occurred_at)
    rows = (
        await ctx.session.execute(
            select(FuelTransaction.member_id, last.label("last_at"), func.count().label("transactions"))
            .where(FuelTransaction.tenant_id == ctx.tenant.id, counts_as_activity())
            .group_by(FuelTransaction.member_id)
            .having(last <= lapse_start, last > lapse_start - timedelta(days=WIN_BACK_LOOKBACK_DAYS))
            .order_by(FuelTransaction.member_id)
        )
    ).all()
    recorded = 0
    for member_id, last_at, transactions in rows:
        last_day = local_day(last_at, tz)
        recorded += await request_care(
            ctx.session,
            tenant_id=ctx.tenant.id,
            member_id=member_id,
            kind="fuel.win_back",
            purpose="marketing",
            source="fuel",
            dedupe_key=f"win-back:{member_id}:{last_day.isoformat()}",
            payload={
                "last_activity_at": last_at.isoformat(),
                "days_inactive": (ctx.now - last_at).days,
                "transactions": int(transactions),
            },
            now=ctx.now,
        )
    return recorded
