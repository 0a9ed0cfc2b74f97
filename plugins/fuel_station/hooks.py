"""The fuel plugin's hook implementations: thin, they read the settings and call ``rules`` and ``service``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from core import (
    Award,
    EventContext,
    EventType,
    FieldIssue,
    JobContext,
    MemberView,
    RedemptionView,
    ScheduledJob,
    Screening,
    TenantView,
    ValidationFailed,
    assign_tier,
    hookimpl,
    utcnow,
)
from plugins.fuel_station import rules, service
from plugins.fuel_station.service import FILL_UP, SHOP

CENTS_OFF = "fuel.cents_off"
LITRE_UNITS = frozenset({"litre", "litres", "liter", "liters", "l"})
_FLAGS = "fuel.flags"

Text40 = Annotated[str, Meta(min_length=1, max_length=40)]


class FillUpAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """A fill-up: litres in the event's ``quantity`` (``unit`` litre), the money in ``amount``/``currency``."""

    #: The site's code (``POST /v1/fuel/sites``).
    site: Text40
    #: One of the program's grades (settings ``grades``: gasoline, premium, diesel by default).
    grade: Text40
    pump: Annotated[str, Meta(min_length=1, max_length=20)] | Annotated[int, Meta(ge=0, le=9999)] | None = None
    payment_method: Literal["card", "cash", "mobile", "fleet_card", "voucher", "other"] | None = None


class ShopAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """A shop purchase: the money in ``amount``/``currency``."""

    site: Text40
    category: Annotated[str, Meta(min_length=1, max_length=60)] = "general"


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return [
        EventType(
            FILL_UP,
            "A fill-up at a pump: litres as quantity (unit litre), amount and currency, site, grade, pump, payment.",
            attributes=FillUpAttributes,
            requires_amount=True,
            requires_quantity=True,
        ),
        EventType(
            SHOP,
            "A purchase in a station's shop: amount and currency, site, category.",
            attributes=ShopAttributes,
            requires_amount=True,
        ),
    ]


@hookimpl
def fealty_routes() -> list[Any]:
    from plugins.fuel_station import api

    return api.CONTROLLERS


async def _site(ctx: EventContext) -> Any:
    """The event's site, read once per request (a batch names few sites many times)."""
    cache: dict[tuple[Any, str], Any] = ctx.session.info.setdefault("fuel.sites", {})
    key = (ctx.tenant.id, ctx.event.attributes.site)
    if key not in cache:
        cache[key] = await service.site_by_code(ctx.session, ctx.event.attributes.site)
    return cache[key]


@hookimpl
async def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    event = ctx.event
    if event.type not in service.KIND_OF:
        return None
    settings = service.settings_of(ctx)
    issues: list[FieldIssue] = []
    if event.currency != ctx.tenant.currency:
        issues.append(FieldIssue("currency", f"this program earns on {ctx.tenant.currency} only"))
    if event.type == FILL_UP:
        litres = event.quantity
        assert litres is not None
        if event.unit is not None and event.unit.lower() not in LITRE_UNITS:
            issues.append(FieldIssue("unit", "fill-ups are measured in litres (unit 'litre')"))
        if rules.decimal_places(litres) > rules.LITRE_PLACES:
            issues.append(FieldIssue("quantity", f"litres have at most {rules.LITRE_PLACES} decimal places"))
        if litres > settings.max_valid_litres:
            issues.append(
                FieldIssue("quantity", f"{litres} litres is not a fill-up (at most {settings.max_valid_litres})")
            )
        if event.attributes.grade not in settings.grades:
            issues.append(
                FieldIssue("attributes.grade", f"unknown grade; this program knows {sorted(settings.grades)}")
            )
    if await _site(ctx) is None:
        issues.append(FieldIssue("attributes.site", f"no site with code '{event.attributes.site}'"))
    return issues or None


@hookimpl
async def fealty_screen_event(ctx: EventContext) -> Screening | None:
    if ctx.event.type not in service.KIND_OF:
        return None
    site = await _site(ctx)
    if not site.participating:
        return Screening(
            "reject", f"site {site.code} does not take part in the programme: nothing is earned there", "fuel.site"
        )
    if ctx.event.type != FILL_UP:
        return None
    flags = await service.fraud_flags(ctx, site, ZoneInfo(ctx.tenant.timezone))
    if not flags:
        return None
    ctx.session.info.setdefault(_FLAGS, {})[ctx.event.id] = flags
    return Screening("hold", "; ".join(f"{f.detail} [{f.code}]" for f in flags), "fuel.fraud")


@hookimpl
async def fealty_compute_awards(ctx: EventContext, rule_awards: list[Award]) -> list[Award] | None:
    event = ctx.event
    kind = service.KIND_OF.get(event.type)
    if kind is None:
        return None
    settings = service.settings_of(ctx)
    assert event.amount is not None
    if kind == "fill_up":
        assert event.quantity is not None
        lines = rules.fill_up_lines(settings, settings.grades[event.attributes.grade], event.quantity, event.amount)
    else:
        lines = rules.shop_lines(settings, event.amount)
    lines = [line for line in lines if line.points or line.source != rules.PREMIUM]
    used = await service.usage(ctx, ZoneInfo(ctx.tenant.timezone))
    lines = rules.apply_monthly_cap(lines, used.month_points, settings.monthly_points_cap)
    if rules.is_visit(kind, event.amount, settings):
        reward = rules.visit_reward(used.visits, settings)
        if reward is not None:
            lines.append(reward)
    return service.to_awards(lines)


@hookimpl
def fealty_qualifying_credits(ctx: EventContext, awards: list[Award]) -> dict[str, Decimal] | None:
    event = ctx.event
    kind = service.KIND_OF.get(event.type)
    if kind is None:
        return None
    settings = service.settings_of(ctx)
    assert event.amount is not None
    visit = Decimal(1) if rules.is_visit(kind, event.amount, settings) else Decimal(0)
    if kind == "fill_up":
        assert event.quantity is not None
        return {"litres": event.quantity, "fuel_spend": event.amount, "fill_ups": Decimal(1), "visits": visit}
    return {"shop_spend": event.amount, "visits": visit}


@hookimpl
async def fealty_event_processed(
    ctx: EventContext, status: str, awards: list[Award], credits: dict[str, Decimal]
) -> None:
    if ctx.event.type not in service.KIND_OF:
        return
    flags = ctx.session.info.get(_FLAGS, {}).pop(ctx.event.id, None)
    await service.record(ctx, status, awards, flags)


def add_months(at: datetime, months: int) -> datetime:
    """The same day ``months`` later (the last day of a shorter month)."""
    import calendar

    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


@hookimpl
async def fealty_member_enrolled(tenant: TenantView, member: MemberView, session: Any) -> None:
    settings = tenant.settings_for("fuel")
    if settings.new_member_level is None:
        return
    now = utcnow()
    try:
        await assign_tier(
            session,
            tenant.id,
            member.id,
            settings.new_member_level,
            until=add_months(now, settings.new_member_months),
            reason="new member",
            now=now,
        )
    except ValidationFailed:
        return  # the program has no such tier (yet): members start where core's tiers put them


@hookimpl
def fealty_fulfil_reward(tenant: TenantView, redemption: RedemptionView, session: Any) -> dict[str, Any] | None:
    reward = redemption.reward
    if reward.kind != CENTS_OFF:
        return None
    settings = tenant.settings_for("fuel")
    problem = rules.redemption_step_problem(redemption.points, settings)
    if problem is not None:
        raise ValidationFailed(f"{problem} This reward costs {redemption.points:,}.", field="reward_id")
    off = rules.off_per_litre_for(redemption.points, settings)
    return {
        "kind": CENTS_OFF,
        "off_per_litre": str(off),
        "currency": tenant.currency,
        "max_litres": str(settings.discount_max_litres),
        "floor_price_per_litre": str(settings.floor_price_per_litre),
        "apply": f"/v1/fuel/redemptions/{redemption.id}/apply",
    }


async def _win_back(ctx: JobContext) -> None:
    await service.request_win_backs(ctx)


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("win_back", 24 * 3600, _win_back)]
