"""The hotel plugin's use cases on the database: what a stay earns and counts, recording reservations, reversals,
milestones, pre-arrival notices, points moved between members. The hooks and routes are thin wrappers of these."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    Award,
    Conflict,
    EventContext,
    EventView,
    FieldIssue,
    HookContext,
    JobContext,
    MemberView,
    NotFound,
    ReversalView,
    Screening,
    TenantView,
    ValidationFailed,
    credit_points,
    debit_points,
    get_member,
    load_member_view,
    local_day,
    new_id,
    request_care,
    table_of,
)
from plugins.hotel import rules
from plugins.hotel.events import GIFT, STAY, TRANSFER, StayAttributes, stay_issues
from plugins.hotel.models import HotelMilestone, HotelStay
from plugins.hotel.settings import HotelSettings

PLUGIN = "hotel"
stays = table_of(HotelStay)
REVERSING = {"cancelled": "cancelled", "no_show": "a no-show"}


def settings_of(tenant: TenantView) -> HotelSettings:
    settings: HotelSettings = tenant.settings_for(PLUGIN)
    return settings


def _stay(event: EventView) -> StayAttributes:
    attributes = event.attributes
    assert isinstance(attributes, StayAttributes)
    return attributes


async def stay_by_reservation(
    session: AsyncSession, reservation_id: str, *, for_update: bool = False
) -> HotelStay | None:
    query = select(HotelStay).where(HotelStay.reservation_id == reservation_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def _earned(row: HotelStay | None) -> bool:
    return row is not None and row.earning_event_id is not None


def _reverses(stay: StayAttributes) -> str | None:
    """Why this update takes back what the reservation earned (None: it does not)."""
    if stay.status in REVERSING:
        return f"stay {REVERSING[stay.status]}"
    if stay.payment_status == "failed":
        return "payment failed"
    return None


# --- set up when enabled -------------------------------------------------------------------------------------------


async def seed_defaults(ctx: HookContext) -> None:
    """The trade's defaults, set up once when the tenant enables the plugin (``seed_defaults``), never over what the
    tenant configured: the status ladder when the program has no tiers, the inactivity expiry while it is ``never``."""
    settings = settings_of(ctx.tenant)
    if not settings.seed_defaults:
        return
    if not await ctx.services.tier_codes():
        for body in rules.default_tiers(settings):
            await ctx.services.create_tier(body)
    if settings.inactivity_expiry_months is not None and (await ctx.services.expiry_policy()).kind == "never":
        await ctx.services.set_expiry_policy("inactivity", settings.inactivity_expiry_months)


# --- validation and screening ---------------------------------------------------------------------------------------


async def validate(ctx: EventContext) -> list[FieldIssue]:
    if ctx.event.type == STAY:
        return await _validate_stay(ctx)
    if ctx.event.type in (GIFT, TRANSFER):
        return await _validate_points_move(ctx)
    return []


async def _validate_stay(ctx: EventContext) -> list[FieldIssue]:
    stay = _stay(ctx.event)
    issues = stay_issues(stay, ctx.event.currency, ctx.tenant.currency)
    occurred = local_day(ctx.event.occurred_at, ZoneInfo(ctx.tenant.timezone))
    if stay.status == "checked_out" and stay.check_out > occurred and not issues:
        issues.append(
            FieldIssue("attributes.check_out", f"a stay checked out on {occurred} cannot end on {stay.check_out}")
        )
    row = await stay_by_reservation(ctx.session, stay.reservation_id)
    if row is not None and row.member_id != ctx.member.id:
        issues.append(FieldIssue("attributes.reservation_id", "this reservation belongs to another member"))
    return issues


async def _validate_points_move(ctx: EventContext) -> list[FieldIssue]:
    quantity = ctx.event.quantity
    if quantity is None or quantity != quantity.to_integral_value():
        return [FieldIssue("quantity", "quantity is the points moved: a whole number")]
    if ctx.event.type == TRANSFER:
        sender = ctx.event.attributes.from_member_id
        if sender == ctx.member.id:
            return [FieldIssue("attributes.from_member_id", "a member cannot transfer points to themselves")]
        try:
            await get_member(ctx.session, sender)
        except NotFound:
            return [FieldIssue("attributes.from_member_id", "no member of this program has that id")]
    return []


async def screen(ctx: EventContext) -> Screening | None:
    """Stay updates that earn nothing say why: not checked out yet, cancelled, no-show, payment failed, an
    ineligible channel or rate, or already earned."""
    if ctx.event.type != STAY:
        return None
    stay = _stay(ctx.event)
    row = await stay_by_reservation(ctx.session, stay.reservation_id)
    reverses = _reverses(stay)
    if reverses is not None:
        code = {"cancelled": "hotel.cancelled", "no_show": "hotel.no_show"}.get(stay.status, "hotel.payment_failed")
        reason = f"{reverses}: the reservation earns nothing"
        if row is not None and _earned(row):
            share = row.reversed_share or Decimal(0)
            taken = rules.points_left(row.base_points + row.bonus_points, share)
            nights = format(rules.counted_nights(row.qualifying_nights, share).normalize(), "f")
            reason += f", and the {taken} points and {nights} nights of {row.earning_event_id} are taken back"
        return Screening("reject", reason, code)
    if stay.status != "checked_out":
        return Screening(
            "reject", f"reservation {stay.status.replace('_', ' ')}: points are earned after check-out", "hotel.not_yet"
        )
    settings = settings_of(ctx.tenant)
    refusal = rules.ineligibility(settings, stay.booking_channel, stay.rate_type)
    if refusal is not None:
        return Screening("reject", refusal[1], refusal[0])
    late = rules.late_claim(
        stay.check_out, local_day(ctx.now, ZoneInfo(ctx.tenant.timezone)), settings.claim_window_days
    )
    if late is not None:
        return Screening("reject", late, "hotel.claim_window")
    if row is not None and _earned(row):
        return Screening(
            "reject",
            f"reservation {stay.reservation_id} already earned with {row.earning_event_id}; to correct its folio, "
            "reverse that event, then send the stay again",
            "hotel.already_earned",
        )
    for earlier in ctx.earlier:
        if earlier.type == STAY and _same_checkout(earlier, stay.reservation_id):
            return Screening(
                "reject",
                f"reservation {stay.reservation_id} already earned with {earlier.event_id}",
                "hotel.already_earned",
            )
    return None


def _same_checkout(event: EventView, reservation_id: str) -> bool:
    attributes = event.attributes
    return (
        isinstance(attributes, StayAttributes)
        and attributes.reservation_id == reservation_id
        and attributes.status == "checked_out"
        and _reverses(attributes) is None
    )


# --- what a stay earns and counts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    stay: StayAttributes
    eligible: rules.Eligible
    rate: Decimal
    base: int
    bonus: int
    bonus_percent: int
    nights: int
    qualifying_nights: int
    new_stay: bool
    available_at: datetime | None
    currency: str


async def _known_stays(ctx: EventContext, stay: StayAttributes) -> list[rules.KnownStay]:
    """The member's other stays that already counted (and this batch's earlier check-outs)."""
    rows = await ctx.session.execute(
        select(HotelStay.property, HotelStay.check_in, HotelStay.check_out).where(
            HotelStay.member_id == ctx.member.id,
            HotelStay.reservation_id != stay.reservation_id,
            HotelStay.earning_event_id.is_not(None),
            HotelStay.check_in <= stay.check_out,
            HotelStay.check_out >= stay.check_in,
        )
    )
    known = [rules.KnownStay(r.property, r.check_in, r.check_out) for r in rows]
    for earlier in ctx.earlier:
        attributes = earlier.attributes
        if (
            earlier.type == STAY
            and isinstance(attributes, StayAttributes)
            and attributes.status == "checked_out"
            and attributes.reservation_id != stay.reservation_id
        ):
            known.append(rules.KnownStay(attributes.property, attributes.check_in, attributes.check_out))
    return known


def posting_time(check_out: date, delay_days: int, tz: ZoneInfo, now: datetime) -> datetime | None:
    """Points post at the start of the day ``delay_days`` after check-out (program time zone); None once past."""
    moment = datetime.combine(check_out + timedelta(days=delay_days), time(0), tzinfo=tz)
    return moment if moment > now else None


async def assess(ctx: EventContext) -> Assessment:
    stay = _stay(ctx.event)
    settings = settings_of(ctx.tenant)
    folio = [rules.FolioCharge(line.category, line.amount, line.tax, line.room) for line in stay.folio]
    eligible = rules.eligible_charges(
        folio, stay.rooms, settings.eligible_charge_categories, settings.max_rooms_earning
    )
    rate = rules.points_rate(settings, stay.brand, stay.property)
    base = rules.points_for(eligible.amount, rate)
    bonus, percent = rules.tier_bonus(base, ctx.member.tier, settings.tier_bonus_percent)
    known = await _known_stays(ctx, stay)
    tz = ZoneInfo(ctx.tenant.timezone)
    return Assessment(
        stay=stay,
        eligible=eligible,
        rate=rate,
        base=base,
        bonus=bonus,
        bonus_percent=percent,
        nights=rules.nights_between(stay.check_in, stay.check_out),
        qualifying_nights=rules.qualifying_nights(stay.check_in, stay.check_out, known),
        new_stay=rules.is_new_stay(stay.property, stay.check_in, stay.check_out, known),
        available_at=posting_time(stay.check_out, settings.posting_delay_days, tz, ctx.now),
        currency=ctx.event.currency or ctx.tenant.currency,
    )


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def stay_awards(a: Assessment) -> list[Award]:
    stay = a.stay
    rate = format(a.rate.normalize(), "f")
    detail: dict[str, Any] = {
        "reservation_id": stay.reservation_id,
        "eligible_amount": _money(a.eligible.amount),
        "currency": a.currency,
        "points_per_unit": rate,
        "tax_excluded": _money(a.eligible.tax_excluded),
        "excluded": {k: _money(v) for k, v in a.eligible.excluded.items()} or None,
        "rooms_earning": a.eligible.rooms_counted,
    }
    nights = f"{a.nights} night{'s' if a.nights != 1 else ''} at {stay.property}"
    if a.base:
        reason = f"{nights}: {_money(a.eligible.amount)} {a.currency} eligible (tax excluded) × {rate} points"
        if a.eligible.rooms_counted < a.eligible.rooms:
            reason += f", on {a.eligible.rooms_counted} of {a.eligible.rooms} rooms"
    else:
        reason = f"{nights}: no eligible charges (the nights still count)"
    awards = [Award(a.base, reason, "hotel.base", a.available_at, base=True, detail=detail)]
    if a.bonus:
        awards.append(
            Award(
                a.bonus,
                f"tier bonus: +{a.bonus_percent}% of {a.base} base points",
                "hotel.tier_bonus",
                a.available_at,
                detail={"percent": a.bonus_percent},
            )
        )
    return awards


def stay_credits(a: Assessment) -> dict[str, Decimal]:
    return {
        "nights": Decimal(a.qualifying_nights),
        "stays": Decimal(1 if a.new_stay else 0),
        "hotel_base_points": Decimal(a.base),
    }


async def compute_awards(ctx: EventContext) -> list[Award] | None:
    if ctx.event.type == STAY:
        return stay_awards(await assess(ctx))
    if ctx.event.type in (GIFT, TRANSFER):
        assert ctx.event.quantity is not None
        points = int(ctx.event.quantity)
        attributes = ctx.event.attributes
        if ctx.event.type == GIFT:
            giver = f" from {attributes.from_name}" if attributes.from_name else ""
            return [Award(points, f"points gift{giver}", "hotel.gift")]
        return [Award(points, f"points transferred from member {attributes.from_member_id}", "hotel.transfer")]
    return None


async def qualifying_credits(ctx: EventContext) -> dict[str, Decimal] | None:
    if ctx.event.type != STAY:
        return None
    return stay_credits(await assess(ctx))


# --- recording ------------------------------------------------------------------------------------------------------


async def _locked_row(ctx: EventContext, stay: StayAttributes) -> HotelStay:
    """The reservation's row, created on its first message, locked for this transaction."""
    row = await stay_by_reservation(ctx.session, stay.reservation_id, for_update=True)
    if row is not None:
        return row
    dialect = postgresql if ctx.session.get_bind().dialect.name == "postgresql" else sqlite
    await ctx.session.execute(
        dialect.insert(stays)
        .values(
            tenant_id=ctx.tenant.id,
            id=new_id(),
            reservation_id=stay.reservation_id,
            member_id=ctx.member.id,
            property=stay.property,
            brand=stay.brand,
            property_category=stay.property_category,
            check_in=stay.check_in,
            check_out=stay.check_out,
            rooms=stay.rooms,
            nights=rules.nights_between(stay.check_in, stay.check_out),
            rate_type=stay.rate_type,
            booking_channel=stay.booking_channel,
            status=stay.status,
            payment_status=stay.payment_status,
            last_event_id=ctx.event.event_id,
            earning_event_id=None,
            base_points=0,
            bonus_points=0,
            qualifying_nights=0,
            stay_credit=0,
            reversed_share=Decimal(0),
            credit_year=None,
            pre_arrival_at=None,
            details={},
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "reservation_id"])
    )
    row = await stay_by_reservation(ctx.session, stay.reservation_id, for_update=True)
    assert row is not None
    return row


async def record(ctx: EventContext, status: str, awards: list[Award], credits: dict[str, Decimal]) -> None:
    if ctx.event.type == STAY:
        await _record_stay(ctx, status, awards, credits)
    elif ctx.event.type == TRANSFER and status == "awarded":
        await _debit_sender(ctx)


async def _record_stay(ctx: EventContext, status: str, awards: list[Award], credits: dict[str, Decimal]) -> None:
    stay = _stay(ctx.event)
    row = await _locked_row(ctx, stay)
    row.property, row.brand, row.property_category = stay.property, stay.brand, stay.property_category
    row.check_in, row.check_out, row.rooms = stay.check_in, stay.check_out, stay.rooms
    row.nights = rules.nights_between(stay.check_in, stay.check_out)
    row.rate_type, row.booking_channel = stay.rate_type, stay.booking_channel
    row.status, row.payment_status = stay.status, stay.payment_status
    row.last_event_id, row.updated_at = ctx.event.event_id, ctx.now
    tz = ZoneInfo(ctx.tenant.timezone)
    if status == "awarded":
        row.earning_event_id = ctx.event.event_id
        row.base_points = sum(a.points for a in awards if a.source == "hotel.base")
        row.bonus_points = sum(a.points for a in awards if a.source == "hotel.tier_bonus")
        row.qualifying_nights = int(credits.get("nights", 0))
        row.stay_credit = int(credits.get("stays", 0))
        row.reversed_share = Decimal(0)
        row.credit_year = local_day(ctx.event.occurred_at, tz).year
        await ctx.session.flush()
        await _offer_milestones(ctx, row)
        return
    why = _reverses(stay)
    if why is not None and row.earning_event_id is not None and ctx.reverse_event is not None:
        earning = row.earning_event_id
        await ctx.reverse_event(earning, Decimal(1), f"{why} ({ctx.event.event_id})")
        if row.earning_event_id is not None:  # fealty_event_reversed has marked it, unless nothing was left to take
            await mark_reversed(ctx.session, ctx.tenant, row, ctx.now)
        return
    await ctx.session.flush()
    if stay.status == "booked":
        await _pre_arrival(ctx.session, ctx.tenant, ctx.member, row, ctx.now)


async def mark_reversed(session: AsyncSession, tenant: TenantView, row: HotelStay, now: datetime) -> None:
    """The reservation's earning event was taken back: it counts no more, and milestone offers it alone reached
    (and that were not chosen yet) are withdrawn."""
    year = row.credit_year
    row.details = {**(row.details or {}), "reversed_event_id": row.earning_event_id, "reversed_at": now.isoformat()}
    row.earning_event_id = None
    row.base_points = row.bonus_points = row.qualifying_nights = row.stay_credit = 0
    row.reversed_share = Decimal(0)
    row.credit_year = None
    await session.flush()
    if year is not None:
        await _withdraw_milestones(session, row.member_id, year, now)


async def _withdraw_milestones(session: AsyncSession, member_id: uuid.UUID, year: int, now: datetime) -> None:
    """Milestone offers (not chosen yet) the member's nights of ``year`` no longer reach are withdrawn."""
    total = await year_nights(session, member_id, year)
    offers = await session.execute(
        select(HotelMilestone).where(
            HotelMilestone.member_id == member_id,
            HotelMilestone.year == year,
            HotelMilestone.status == "offered",
            HotelMilestone.nights > total,
        )
    )
    for offer in offers.scalars():
        offer.status, offer.decided_at = "withdrawn", now
    await session.flush()


async def on_event_reversed(ctx: EventContext, reversal: ReversalView) -> None:
    """An earning stay reversed (through the API, or by a cancellation, a no-show or a failed payment): in full it
    counts no more; in part (a folio partly refunded) it counts that much less, nights included, as core's credits
    do, and milestone offers the year's nights no longer reach are withdrawn."""
    if ctx.event.type != STAY:
        return
    reservation_id = ctx.event.raw_attributes.get("reservation_id")
    if not isinstance(reservation_id, str):
        return
    row = await stay_by_reservation(ctx.session, reservation_id, for_update=True)
    if row is None or row.earning_event_id != ctx.event.event_id:
        return
    share = Decimal(reversal.reversed_fraction)
    if share >= 1:
        await mark_reversed(ctx.session, ctx.tenant, row, ctx.now)
        return
    row.reversed_share = share
    row.updated_at = ctx.now
    await ctx.session.flush()
    if row.credit_year is not None:
        await _withdraw_milestones(ctx.session, row.member_id, row.credit_year, ctx.now)


async def year_nights(session: AsyncSession, member_id: uuid.UUID, year: int) -> Decimal:
    """The member's qualifying nights of calendar ``year``, less what partial reversals took back (as core's
    ``nights`` credits count them)."""
    rows = await session.execute(
        select(HotelStay.qualifying_nights, HotelStay.reversed_share).where(
            HotelStay.member_id == member_id,
            HotelStay.credit_year == year,
            HotelStay.earning_event_id.is_not(None),
        )
    )
    return sum((rules.counted_nights(nights, Decimal(share or 0)) for nights, share in rows.all()), Decimal(0))


# --- milestones -----------------------------------------------------------------------------------------------------


async def _offer_milestones(ctx: EventContext, row: HotelStay) -> None:
    assert row.credit_year is not None
    settings = settings_of(ctx.tenant)
    after = await year_nights(ctx.session, row.member_id, row.credit_year)
    before = after - row.qualifying_nights
    for nights in rules.milestones_crossed(before, after, settings):
        existing = (
            await ctx.session.execute(
                select(HotelMilestone).where(
                    HotelMilestone.member_id == row.member_id,
                    HotelMilestone.year == row.credit_year,
                    HotelMilestone.nights == nights,
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing.status == "withdrawn":  # reached again after a reversal
                existing.status, existing.decided_at, existing.event_id = "offered", None, ctx.event.event_id
            continue
        options = [rules.milestone_offer(choice, settings) for choice in settings.milestone_choices]
        milestone = HotelMilestone(
            tenant_id=ctx.tenant.id,
            id=new_id(),
            member_id=row.member_id,
            year=row.credit_year,
            nights=nights,
            status="offered",
            options=options,
            choice=None,
            fulfilment={},
            event_id=ctx.event.event_id,
            offered_at=ctx.now,
            decided_at=None,
        )
        ctx.session.add(milestone)
        await ctx.session.flush()
        await request_care(
            ctx.session,
            tenant_id=ctx.tenant.id,
            member_id=row.member_id,
            kind="hotel.milestone",
            purpose="service",
            source=PLUGIN,
            dedupe_key=f"hotel.milestone:{row.member_id}:{row.credit_year}:{nights}",
            payload={"milestone_id": str(milestone.id), "nights": nights, "year": row.credit_year, "options": options},
            now=ctx.now,
        )


async def choose_milestone(
    session: AsyncSession, tenant: TenantView, member_id: uuid.UUID, milestone_id: uuid.UUID, choice: str, now: datetime
) -> HotelMilestone:
    milestone = (
        await session.execute(
            select(HotelMilestone)
            .where(HotelMilestone.id == milestone_id, HotelMilestone.member_id == member_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if milestone is None:
        raise NotFound("No such milestone for this member.", field="milestone_id")
    if milestone.status == "chosen" and milestone.choice == choice:
        return milestone  # asked again: the same answer, nothing twice
    if milestone.status != "offered":
        raise Conflict(f"This milestone is {milestone.status}; it can no longer be chosen.", field="milestone_id")
    offered = {o["choice"]: o for o in milestone.options}
    if choice not in offered:
        raise ValidationFailed(f"choice must be one of {sorted(offered)}.", field="choice")
    fulfilment: dict[str, Any] = dict(offered[choice])
    if choice == "points":
        moved = await credit_points(
            session,
            tenant_id=tenant.id,
            member_id=member_id,
            points=int(offered[choice]["points"]),
            plugin=PLUGIN,
            reason=f"{milestone.nights}-night milestone {milestone.year}",
            reference=f"milestone:{milestone.id}",
            now=now,
        )
        fulfilment["entry_id"] = str(moved.entry_id)
    else:
        # Vouchers and upgrades are handed over by the hotel: its staff (or CRM) get a service request.
        await request_care(
            session,
            tenant_id=tenant.id,
            member_id=member_id,
            kind="hotel.milestone_choice",
            purpose="service",
            source=PLUGIN,
            dedupe_key=f"hotel.milestone_choice:{milestone.id}",
            payload={"milestone_id": str(milestone.id), "nights": milestone.nights, **offered[choice]},
            now=now,
        )
    milestone.status, milestone.choice, milestone.fulfilment, milestone.decided_at = "chosen", choice, fulfilment, now
    await session.flush()
    return milestone


async def member_milestones(session: AsyncSession, member_id: uuid.UUID) -> list[HotelMilestone]:
    await get_member(session, member_id)
    rows = await session.execute(
        select(HotelMilestone)
        .where(HotelMilestone.member_id == member_id)
        .order_by(HotelMilestone.year.desc(), HotelMilestone.nights)
    )
    return list(rows.scalars())


# --- perks and pre-arrival ------------------------------------------------------------------------------------------


def perks_of(member: MemberView, settings: HotelSettings) -> dict[str, Any]:
    perks = settings.perks.get(member.tier or "")
    preferences = member.attributes.get("preferences")
    gift = None
    if perks is not None and perks.welcome_gift:
        gift = rules.welcome_gift(
            preferences if isinstance(preferences, dict) else None,
            settings.welcome_gifts,
            settings.default_welcome_gift,
        )
    return {
        "member_id": str(member.id),
        "tier": member.tier,
        "priority_check_in": bool(perks and perks.priority_check_in),
        "late_checkout": perks.late_checkout if perks else None,
        "welcome_gift": gift,
        "butler": bool(perks and perks.butler),
        "tier_bonus_percent": settings.tier_bonus_percent.get(member.tier or "", 0),
        "pre_arrival_notice": (member.tier or "") in settings.pre_arrival_tiers,
    }


async def _pre_arrival(
    session: AsyncSession, tenant: TenantView, member: MemberView, row: HotelStay, now: datetime
) -> bool:
    """Ask for a pre-arrival notice for a top-tier guest arriving within the window (once per reservation)."""
    settings = settings_of(tenant)
    if row.pre_arrival_at is not None or row.status != "booked" or member.tier not in settings.pre_arrival_tiers:
        return False
    today = local_day(now, ZoneInfo(tenant.timezone))
    if not today <= row.check_in <= today + timedelta(days=settings.pre_arrival_days):
        return False
    perks = perks_of(member, settings)
    payload = {
        "reservation_id": row.reservation_id,
        "property": row.property,
        "check_in": row.check_in.isoformat(),
        "check_out": row.check_out.isoformat(),
        "tier": member.tier,
        "welcome_gift": perks["welcome_gift"],
        "perks": {k: perks[k] for k in ("priority_check_in", "late_checkout", "butler")},
    }
    asked = await request_care(
        session,
        tenant_id=tenant.id,
        member_id=member.id,
        kind="hotel.pre_arrival",
        purpose="service",
        source=PLUGIN,
        dedupe_key=f"hotel.pre_arrival:{row.reservation_id}",
        payload=payload,
        now=now,
    )
    row.pre_arrival_at = now
    await session.flush()
    return asked


async def pre_arrival_job(ctx: JobContext) -> None:
    """Daily: bookings made long ago come within the pre-arrival window."""
    settings = settings_of(ctx.tenant)
    today = local_day(ctx.now, ZoneInfo(ctx.tenant.timezone))
    rows = await ctx.session.execute(
        select(HotelStay)
        .where(
            HotelStay.status == "booked",
            HotelStay.pre_arrival_at.is_(None),
            HotelStay.check_in >= today,
            HotelStay.check_in <= today + timedelta(days=settings.pre_arrival_days),
        )
        .order_by(HotelStay.check_in)
        .limit(1000)
    )
    for row in list(rows.scalars()):
        member = await load_member_view(ctx.session, row.member_id)
        await _pre_arrival(ctx.session, ctx.tenant, member, row, ctx.now)


# --- transfers ------------------------------------------------------------------------------------------------------


async def _debit_sender(ctx: EventContext) -> None:
    assert ctx.event.quantity is not None
    await debit_points(
        ctx.session,
        tenant_id=ctx.tenant.id,
        member_id=ctx.event.attributes.from_member_id,
        points=int(ctx.event.quantity),
        plugin=PLUGIN,
        reason=f"points transferred to member {ctx.member.external_id}",
        reference=ctx.event.event_id,
        now=ctx.now,
    )
