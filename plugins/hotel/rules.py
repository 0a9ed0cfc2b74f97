"""The hotel trade's rules as pure functions (no I/O): nights and stays, eligible charges, base points, tier bonus,
milestones, free nights, welcome gifts. Every figure comes from the tenant's :class:`HotelSettings`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from plugins.hotel.settings import GiftRule, HotelSettings

CHANNEL_WORDS = {
    "ota": "an online travel agency",
    "wholesale": "a wholesaler",
    "tour_operator": "a tour operator",
    "travel_agent": "a travel agent",
}
RATE_WORDS = {
    "wholesale": "a wholesale rate",
    "tour_operator": "a tour-operator rate",
    "airline_crew": "an airline crew rate",
    "travel_agent": "a travel-agent rate",
    "staff": "a staff rate",
}


# --- nights and stays -----------------------------------------------------------------------------------------------


def nights_between(check_in: date, check_out: date) -> int:
    """A night is one night-to-morning cycle: check-in on the 1st and check-out on the 3rd is two nights."""
    return max(0, (check_out - check_in).days)


def night_dates(check_in: date, check_out: date) -> set[date]:
    """The dates of the nights (each night named by the evening it starts)."""
    return {check_in + timedelta(days=i) for i in range(nights_between(check_in, check_out))}


@dataclass(frozen=True)
class KnownStay:
    """A stay of the same member that already counted (earned and not reversed)."""

    property: str
    check_in: date
    check_out: date


def qualifying_nights(check_in: date, check_out: date, others: Iterable[KnownStay]) -> int:
    """One qualifying night per night, however many rooms or reservations: nights another of the member's stays
    already counted do not count again."""
    taken: set[date] = set()
    for other in others:
        taken |= night_dates(other.check_in, other.check_out)
    return len(night_dates(check_in, check_out) - taken)


def is_new_stay(property: str, check_in: date, check_out: date, others: Iterable[KnownStay]) -> bool:
    """A stay is consecutive nights at one hotel: a reservation that continues (or overlaps, or is continued by)
    one already counted at the same property is part of that stay, not a new one."""
    for other in others:
        if other.property != property:
            continue
        if other.check_in <= check_out and check_in <= other.check_out:  # touching or overlapping
            return False
    return True


def counted_nights(nights: int, reversed_share: Decimal) -> Decimal:
    """The nights a stay still counts once ``reversed_share`` of it was reversed through the API: core takes the
    same share of its qualification credits back (a folio half refunded keeps half its nights for status), so the
    milestones count what status counts."""
    if reversed_share >= 1:
        return Decimal(0)
    return Decimal(nights) * (1 - reversed_share)


def points_left(points: int, reversed_share: Decimal) -> int:
    """The points a stay still counts once ``reversed_share`` was reversed: core rounds what it removes down, so
    this rounds up (nothing once reversed in full)."""
    if reversed_share >= 1:
        return 0
    return points - int((points * reversed_share).to_integral_value(rounding=ROUND_FLOOR))


# --- eligible charges and base points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolioCharge:
    category: str
    amount: Decimal
    tax: Decimal = Decimal(0)
    room: int | None = None


@dataclass(frozen=True)
class Eligible:
    """What of a folio earns: the eligible amount (tax excluded), what was left out and why."""

    amount: Decimal
    tax_excluded: Decimal
    excluded: dict[str, Decimal]
    rooms_counted: int
    rooms: int


def eligible_charges(
    folio: Sequence[FolioCharge], rooms: int, eligible_categories: Iterable[str], max_rooms: int
) -> Eligible:
    """Eligible charges, tax excluded, on up to ``max_rooms`` rooms.

    Lines naming their ``room`` keep the ``max_rooms`` rooms with the highest eligible charges; lines without a room
    are the reservation's and are shared evenly, so only ``max_rooms / rooms`` of them earn when there are more rooms.
    """
    categories = set(eligible_categories)
    excluded: dict[str, Decimal] = defaultdict(Decimal)
    by_room: dict[int, Decimal] = defaultdict(Decimal)
    shared = Decimal(0)
    tax = Decimal(0)
    for line in folio:
        tax += line.tax
        if line.category not in categories:
            excluded[line.category] += line.amount
            continue
        if line.room is None:
            shared += line.amount
        else:
            by_room[line.room] += line.amount
    counted = min(rooms, max_rooms)
    kept_rooms = sorted(by_room.values(), reverse=True)[:counted]
    dropped_rooms = sum(by_room.values()) - sum(kept_rooms, Decimal(0))
    shared_kept = shared if rooms <= max_rooms else shared * counted / rooms
    if dropped_rooms or shared_kept != shared:
        excluded["rooms_over_limit"] += dropped_rooms + (shared - shared_kept)
    amount = sum(kept_rooms, Decimal(0)) + shared_kept
    return Eligible(
        amount=amount,
        tax_excluded=tax,
        excluded={k: v for k, v in sorted(excluded.items()) if v},
        rooms_counted=counted,
        rooms=rooms,
    )


def points_rate(settings: HotelSettings, brand: str | None, property: str) -> Decimal:
    """Points per currency unit: the property's rate, else the brand's, else the program's."""
    if property in settings.property_points_per_unit:
        rate = settings.property_points_per_unit[property]
    elif brand is not None and brand in settings.brand_points_per_unit:
        rate = settings.brand_points_per_unit[brand]
    else:
        rate = settings.points_per_unit
    return Decimal(str(rate))


def points_for(amount: Decimal, rate: Decimal) -> int:
    """Whole points, rounded down (a fraction of a point is never credited)."""
    return int((amount * rate).to_integral_value(rounding=ROUND_FLOOR))


def tier_bonus(base_points: int, tier: str | None, percent_by_tier: Mapping[str, int]) -> tuple[int, int]:
    """The tier bonus on base points (rounded down) and its percentage; 0 without a tier or a bonus."""
    percent = percent_by_tier.get(tier, 0) if tier else 0
    return (base_points * percent) // 100, percent


# --- eligibility ----------------------------------------------------------------------------------------------------


def ineligibility(settings: HotelSettings, channel: str, rate_type: str) -> tuple[str, str] | None:
    """Why a booking earns nothing: ``(code, reason)``, or None when it is eligible."""
    if channel in settings.ineligible_channels:
        words = CHANNEL_WORDS.get(channel, f"the '{channel}' channel")
        return "hotel.ineligible_channel", f"booked through {words} ({channel}): such bookings earn no points or nights"
    if rate_type in settings.ineligible_rate_types:
        words = RATE_WORDS.get(rate_type, f"the '{rate_type}' rate")
        return "hotel.ineligible_rate", f"stayed on {words} ({rate_type}): such rates earn no points or nights"
    return None


def late_claim(check_out: date, today: date, window_days: int) -> str | None:
    """Why a stay sent ``today`` is too late to earn (None while it is within ``window_days`` of its check-out)."""
    days = (today - check_out).days
    if days <= window_days:
        return None
    return (
        f"checked out on {check_out.isoformat()}, {days} days ago: a stay can be claimed up to {window_days} days "
        "after check-out, so it earns no points or nights"
    )


# --- milestones -----------------------------------------------------------------------------------------------------


def milestones(settings: HotelSettings) -> list[int]:
    """The night counts that open a milestone choice (20, 30, ... 100 by default)."""
    return list(
        range(settings.milestone_first_nights, settings.milestone_last_nights + 1, settings.milestone_every_nights)
    )


def milestones_crossed(before: Decimal | int, after: Decimal | int, settings: HotelSettings) -> list[int]:
    """Milestones reached by going from ``before`` to ``after`` nights in the year."""
    return [m for m in milestones(settings) if before < m <= after]


def milestone_offer(choice: str, settings: HotelSettings) -> dict[str, Any]:
    """What a milestone choice gives."""
    if choice == "points":
        return {"choice": "points", "points": settings.milestone_points}
    if choice == "food_vouchers":
        return {"choice": "food_vouchers", "vouchers": settings.milestone_food_vouchers}
    return {"choice": "suite_upgrade", "upgrades": 1}


# --- the status ladder set up when the plugin is enabled -----------------------------------------------------------

VALID_UNTIL = {"end_of_february": (2, 29), "march_31": (3, 31)}


def default_tiers(settings: HotelSettings) -> list[dict[str, Any]]:
    """The ``POST /v1/tiers`` bodies of ``status_tiers``: per calendar year on nights OR stays OR base points, valid
    until the end of February (29 stands for its last day) or 31 March of year N + ``status_valid_years_after``."""
    month, day = VALID_UNTIL[settings.status_valid_until]
    return [
        {
            "code": tier.code,
            "name": tier.name,
            "rank": rank,
            "qualification": {
                "window": {"kind": "calendar_year"},
                "mode": "any",
                "criteria": [
                    {"metric": "nights", "min": str(tier.nights)},
                    {"metric": "stays", "min": str(tier.stays)},
                    {"metric": "hotel_base_points", "min": str(tier.base_points)},
                ],
            },
            "validity": {
                "kind": "fixed_date",
                "years_after": settings.status_valid_years_after,
                "month": month,
                "day": day,
            },
        }
        for rank, tier in enumerate(settings.status_tiers, start=1)
    ]


# --- free nights ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointsStayQuote:
    category: str
    nights: int
    nightly_points: int
    free_nights: int
    points: int
    paid_nights: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paid_nights", self.nights - self.free_nights)


def free_nights(nights: int, every: int, cap: int) -> int:
    """On a points stay every ``every``-th night is free (the 5th, 10th...), at most ``cap`` a stay."""
    return min(nights // every, cap)


def quote_points_stay(category: str, nights: int, settings: HotelSettings) -> PointsStayQuote:
    """The points price of a points stay of ``nights`` nights at a hotel of ``category``. Raises KeyError for an
    unknown category and ValueError for a number of nights out of range."""
    if not 1 <= nights <= settings.max_points_stay_nights:
        raise ValueError(f"a points stay is 1 to {settings.max_points_stay_nights} nights")
    nightly = settings.free_night_points[category]
    free = free_nights(nights, settings.free_night_every, settings.max_free_nights_per_stay)
    return PointsStayQuote(category, nights, nightly, free, nightly * (nights - free))


# --- welcome gifts --------------------------------------------------------------------------------------------------


def welcome_gift(preferences: Mapping[str, Any] | None, rules: Sequence[GiftRule], default: str) -> str:
    """The gift for a guest, drawn from their stated preferences: the first rule whose preference the guest stated
    (with the rule's value, if it names one; case does not matter), else the default."""
    stated = {
        str(k).lower(): str(v).strip()
        for k, v in (preferences or {}).items()
        if isinstance(v, str | int | float) and str(v).strip()
    }
    for rule in rules:
        value = stated.get(rule.preference.lower())
        if value is None:
            continue
        if rule.value is not None and rule.value.lower() != value.lower():
            continue
        return rule.gift.replace("{value}", value)
    return default
