"""The fuel trade's rules as pure functions (no I/O): earning, caps, visits, cents-off discounts, redemption steps,
fraud checks and retention rates. Every figure comes from the tenant's :class:`FuelSettings`."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

from plugins.fuel_station.settings import FuelSettings, GradeSettings

CENT = Decimal("0.01")
#: Litres are measured by the pump to the millilitre at most.
LITRE_PLACES = 3

#: Award sources. Base points (litres or fuel spend, shop) and the premium extra count toward the monthly cap;
#: the visit reward does not.
LITRES, FUEL_SPEND, PREMIUM, SHOP, VISIT_REWARD = (
    "fuel.litres",
    "fuel.fuel_spend",
    "fuel.premium",
    "fuel.shop",
    "fuel.visit_reward",
)
CAPPED_SOURCES = frozenset({LITRES, FUEL_SPEND, PREMIUM, SHOP})


@dataclass(frozen=True)
class Line:
    """One award the plugin gives, before it becomes a core ``Award``."""

    source: str
    points: int
    reason: str
    base: bool = False
    capped_from: int | None = None


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def decimal_places(value: Decimal) -> int:
    """Significant decimal places: 40.500 has 1 (stored amounts carry trailing zeros)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _num(value: Decimal) -> str:
    """A figure as a member reads it: ``75``, ``40.5``, ``1.25``."""
    text = f"{value.normalize():f}"
    return text


# --- earning ----------------------------------------------------------------------------------------------------------


def counted_litres(litres: Decimal, settings: FuelSettings) -> Decimal:
    """The litres that count for points: at most ``max_litres_per_fill_up``."""
    return min(litres, settings.max_litres_per_fill_up)


def whole_litres(litres: Decimal) -> int:
    """Part litres don't count: 40.9 L earns as 40."""
    return _floor(litres)


def fill_up_lines(settings: FuelSettings, grade: GradeSettings, litres: Decimal, amount: Decimal) -> list[Line]:
    """Base points (per whole counted litre, or per currency unit of the counted share of the amount) and the premium
    grade's extra."""
    counted = counted_litres(litres, settings)
    capped_note = f" ({_num(settings.max_litres_per_fill_up)} L counted at most)" if counted < litres else ""
    if settings.earn_mode == "per_litre":
        whole = whole_litres(counted)
        base = _floor(whole * grade.points_per_litre)
        lines = [Line(LITRES, base, f"{whole} whole litres × {_num(grade.points_per_litre)}{capped_note}", base=True)]
    else:
        share = amount if counted == litres else (amount * counted / litres)
        base = _floor(share / grade.amount_per_point)
        lines = [
            Line(
                FUEL_SPEND,
                base,
                f"1 point per {_num(grade.amount_per_point)} of fuel{capped_note}",
                base=True,
            )
        ]
    if grade.multiplier > 1:
        extra = _floor(base * (grade.multiplier - 1))
        lines.append(Line(PREMIUM, extra, f"premium grade × {_num(grade.multiplier)}"))
    return lines


def shop_lines(settings: FuelSettings, amount: Decimal) -> list[Line]:
    points = _floor(amount * settings.shop_points_per_unit)
    return [Line(SHOP, points, f"shop purchase, {_num(settings.shop_points_per_unit)} per currency unit", base=True)]


def apply_monthly_cap(lines: list[Line], used: int, cap: int | None) -> list[Line]:
    """Keep the member's capped points this month at most ``cap``: lines are served in order (base first, then the
    premium extra) from what is left; a trimmed line keeps ``capped_from`` and says why."""
    if cap is None:
        return lines
    left = max(0, cap - used)
    out: list[Line] = []
    for line in lines:
        if line.source not in CAPPED_SOURCES or line.points <= left:
            out.append(line)
            if line.source in CAPPED_SOURCES:
                left -= line.points
            continue
        out.append(
            Line(
                line.source,
                left,
                f"{line.reason}; monthly cap of {cap:,} points reached ({left} of {line.points})",
                line.base,
                capped_from=line.points,
            )
        )
        left = 0
    return out


def capped_points(lines: list[Line] | list[tuple[str, int]]) -> int:
    """The points of these lines (or ``(source, points)`` pairs) that count toward the monthly cap."""
    total = 0
    for line in lines:
        source, points = (line.source, line.points) if isinstance(line, Line) else line
        if source in CAPPED_SOURCES:
            total += points
    return total


# --- visits -------------------------------------------------------------------------------------------------------


def is_visit(kind: str, amount: Decimal | None, settings: FuelSettings) -> bool:
    """A visit is at least ``visit_min_fuel_amount`` of fuel or ``visit_min_shop_amount`` in the shop."""
    if amount is None:
        return False
    threshold = settings.visit_min_fuel_amount if kind == "fill_up" else settings.visit_min_shop_amount
    return amount >= threshold


def visit_reward(visits_before: int, settings: FuelSettings) -> Line | None:
    """The reward of every ``visit_reward_every``-th visit (this visit being number ``visits_before + 1``)."""
    number = visits_before + 1
    if settings.visit_reward_points <= 0 or number % settings.visit_reward_every:
        return None
    return Line(
        VISIT_REWARD,
        settings.visit_reward_points,
        f"visit {number}: a reward every {settings.visit_reward_every} visits",
    )


# --- levels ---------------------------------------------------------------------------------------------------------


def default_levels(settings: FuelSettings) -> list[dict[str, Any]]:
    """The ``POST /v1/tiers`` bodies of ``levels``: ``level_metric`` over a rolling ``level_window_days``, reviewed
    ``level_review_days`` after it was reached (renewed, or down to the level the window still gives). A level from 0
    is the entry level (no criteria, held for good)."""
    bodies: list[dict[str, Any]] = []
    for rank, level in enumerate(settings.levels):
        body: dict[str, Any] = {"code": level.code, "name": level.name, "rank": rank, "downgrade": "to_qualified"}
        if level.min > 0:
            body["qualification"] = {
                "window": {"kind": "rolling_days", "days": settings.level_window_days},
                "criteria": [{"metric": settings.level_metric, "min": _num(level.min)}],
            }
            body["validity"] = {"kind": "days", "days": settings.level_review_days}
        bodies.append(body)
    return bodies


def add_months(at: datetime, months: int) -> datetime:
    """The same day ``months`` later (the last day of a shorter month): how long a new member's level lasts."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


# --- reversals -------------------------------------------------------------------------------------------------------


def reversed_points(points: int, reversed_fraction: Decimal) -> int:
    """Of a transaction's capped ``points``, those reversals of ``reversed_fraction`` in all took back: rounded down
    as core rounds what it removes (several partial reversals add up to a full one), all of them once in full."""
    if reversed_fraction >= 1:
        return points
    return _floor(points * reversed_fraction)


def visit_after_reversal(kind: str, amount: Decimal, reversed_fraction: Decimal, settings: FuelSettings) -> bool:
    """Whether a visit still is one once ``reversed_fraction`` of it was refunded: what is left of its amount must
    still reach the visit threshold; a full reversal always removes it."""
    if reversed_fraction >= 1:
        return False
    return is_visit(kind, amount * (1 - reversed_fraction), settings)


# --- rewards: redemption steps and cents off ------------------------------------------------------------------------


def redemption_step_problem(points: int, settings: FuelSettings) -> str | None:
    """Why ``points`` is not a redeemable amount (None when it is): from the minimum, in whole steps."""
    if points < settings.redemption_min_points:
        return f"Redeem at least {settings.redemption_min_points:,} points."
    if points % settings.redemption_step_points:
        return f"Redeem points in steps of {settings.redemption_step_points:,}."
    return None


def redemption_steps(available: int, settings: FuelSettings) -> list[int]:
    """Every amount a member with ``available`` points can redeem, while each step still adds a discount."""
    steps: list[int] = []
    points = settings.redemption_min_points
    while points <= available:
        steps.append(points)
        if off_per_litre_for(points, settings) >= settings.max_off_per_litre:
            break
        points += settings.redemption_step_points
    return steps


def off_per_litre_for(points: int, settings: FuelSettings) -> Decimal:
    """What ``points`` buy off each litre: ``off_per_litre_per_step`` a step, at most ``max_off_per_litre``."""
    steps = Decimal(points // settings.redemption_step_points)
    return min(steps * settings.off_per_litre_per_step, settings.max_off_per_litre)


@dataclass(frozen=True)
class Discount:
    litres: Decimal
    litres_discounted: Decimal
    price_per_litre: Decimal
    off_per_litre: Decimal
    amount_off: Decimal
    price_after: Decimal
    #: Why the voucher's full value was not given: ``max_off_per_litre``, ``floor_price``, ``max_litres``.
    limited_by: tuple[str, ...]


def discount(litres: Decimal, price_per_litre: Decimal, voucher_off: Decimal, settings: FuelSettings) -> Discount:
    """The cents-off discount on one fill-up: at most ``max_off_per_litre`` off each litre, never taking the price
    below ``floor_price_per_litre``, on at most ``discount_max_litres``. Amounts are rounded down to the cent."""
    limited: list[str] = []
    off = voucher_off
    if off > settings.max_off_per_litre:
        off, limited = settings.max_off_per_litre, [*limited, "max_off_per_litre"]
    room = max(Decimal(0), price_per_litre - settings.floor_price_per_litre)
    if off > room:
        off, limited = room, [*limited, "floor_price"]
    counted = litres
    if counted > settings.discount_max_litres:
        counted, limited = settings.discount_max_litres, [*limited, "max_litres"]
    amount_off = (off * counted).quantize(CENT, rounding=ROUND_DOWN)
    return Discount(
        litres=litres,
        litres_discounted=counted,
        price_per_litre=price_per_litre,
        off_per_litre=off,
        amount_off=amount_off,
        price_after=price_per_litre - off,
        limited_by=tuple(limited),
    )


# --- fraud ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteLimits:
    """A site's limits, its own overrides resolved against the tenant's settings."""

    tank_size_litres: Decimal
    daily_max_fill_ups: int | None
    daily_max_litres: Decimal | None


def site_limits(
    settings: FuelSettings,
    tank_size_litres: Decimal | None = None,
    daily_max_fill_ups: int | None = None,
    daily_max_litres: Decimal | None = None,
) -> SiteLimits:
    return SiteLimits(
        tank_size_litres if tank_size_litres is not None else settings.tank_size_litres,
        daily_max_fill_ups if daily_max_fill_ups is not None else settings.site_daily_max_fill_ups,
        daily_max_litres if daily_max_litres is not None else settings.site_daily_max_litres,
    )


@dataclass(frozen=True)
class FillUp:
    """A fill-up as the fraud rules see it."""

    site: str
    at: datetime
    litres: Decimal


@dataclass(frozen=True)
class Flag:
    code: str
    detail: str


def fraud_flags(
    fill_up: FillUp,
    same_day: list[FillUp],
    nearby: list[FillUp],
    limits: SiteLimits,
    settings: FuelSettings,
) -> list[Flag]:
    """Why this fill-up should be held for review (empty: it should not).

    ``same_day`` is the member's other fill-ups on the same local day, ``nearby`` those within
    ``repeat_fill_minutes`` of it (any site).
    """
    flags: list[Flag] = []
    if len(same_day) + 1 > settings.max_fill_ups_per_day:
        flags.append(
            Flag(
                "fuel.daily_fill_ups",
                f"{len(same_day) + 1} fill-ups today, more than {settings.max_fill_ups_per_day}",
            )
        )
    if settings.repeat_fill_minutes:
        repeats = [
            f
            for f in nearby
            if f.site == fill_up.site and abs((f.at - fill_up.at).total_seconds()) < settings.repeat_fill_minutes * 60
        ]
        if repeats:
            gap = min(abs((f.at - fill_up.at).total_seconds()) for f in repeats) / 60
            flags.append(
                Flag(
                    "fuel.repeat_fill",
                    f"another fill-up at {fill_up.site} {gap:.0f} minutes apart "
                    f"(within {settings.repeat_fill_minutes})",
                )
            )
    if fill_up.litres > limits.tank_size_litres:
        flags.append(
            Flag(
                "fuel.tank_size",
                f"{_num(fill_up.litres)} L is more than the tank size of {_num(limits.tank_size_litres)} L",
            )
        )
    at_site = [f for f in same_day if f.site == fill_up.site]
    if limits.daily_max_fill_ups is not None and len(at_site) + 1 > limits.daily_max_fill_ups:
        flags.append(
            Flag(
                "fuel.site_daily_fill_ups",
                f"{len(at_site) + 1} fill-ups at {fill_up.site} today, more than {limits.daily_max_fill_ups}",
            )
        )
    litres_today = sum((f.litres for f in at_site), fill_up.litres)
    if limits.daily_max_litres is not None and litres_today > limits.daily_max_litres:
        flags.append(
            Flag(
                "fuel.site_daily_litres",
                f"{_num(litres_today)} L at {fill_up.site} today, more than {_num(limits.daily_max_litres)} L",
            )
        )
    return flags


# --- measures -------------------------------------------------------------------------------------------------------


def rate(part: int, whole: int) -> Decimal | None:
    """``part / whole`` to four places (None for an empty cohort)."""
    if whole <= 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))
