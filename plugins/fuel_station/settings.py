"""A tenant's settings for the fuel plugin. Every figure of docs/domain.md ("Fuel stations") is a field with that
default.

Tenants set them with ``PATCH /v1/program {"plugins": ["fuel"], "plugin_settings": {"fuel": {...}}}``; an unknown
field or a value out of range is a 422 naming ``plugin_settings.fuel.<field>``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
GRADE_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class GradeSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How one fuel grade earns."""

    #: ``per_litre`` mode: points per whole litre.
    points_per_litre: Decimal = Decimal(1)
    #: ``per_amount`` mode: currency units per point (1 point per CNY 1 of gasoline, per CNY 2 of diesel).
    amount_per_point: Decimal = Decimal(1)
    #: Premium grades multiply: 2 doubles the base points (the extra is its own ``fuel.premium`` award).
    multiplier: Decimal = Decimal(1)


class LevelSettings(msgspec.Struct, forbid_unknown_fields=True):
    """One level of the ladder set up when the plugin is enabled: reached with at least ``min`` of ``level_metric``
    over the rolling window (0: the entry level everyone has)."""

    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    min: Decimal = Decimal(0)


def default_levels() -> list[LevelSettings]:
    """Circle K's 90-day spend ladder: 0-150, 150-300, 300+."""
    return [
        LevelSettings("member", "Member", Decimal(0)),
        LevelSettings("silver", "Silver", Decimal(150)),
        LevelSettings("gold", "Gold", Decimal(300)),
    ]


def default_grades() -> dict[str, GradeSettings]:
    return {
        "gasoline": GradeSettings(),
        "premium": GradeSettings(multiplier=Decimal(2)),
        "diesel": GradeSettings(amount_per_point=Decimal(2)),
    }


class FuelSettings(msgspec.Struct, forbid_unknown_fields=True):
    # --- set up when the plugin is enabled ------------------------------------------------------------------------
    #: When the tenant enables the plugin, create ``levels`` if the program has no tiers yet and set points to expire
    #: ``points_expiry_days`` after earning if the expiry is still ``never``; false: leave the program as it is.
    seed_defaults: bool = True
    #: The level ladder created then, lowest first (ranks 0, 1, 2...): ``level_metric`` over the last
    #: ``level_window_days`` (``spend``: fuel and shop; or ``fuel_spend``, ``litres``, ``fill_ups``, ``visits``).
    levels: Annotated[list[LevelSettings], Meta(max_length=20)] = msgspec.field(default_factory=default_levels)
    level_metric: Literal["spend", "fuel_spend", "shop_spend", "litres", "fill_ups", "visits"] = "spend"
    level_window_days: Annotated[int, Meta(ge=1, le=3660)] = 90
    #: A level is reviewed this many days after it was reached: renewed while the window still qualifies, else the
    #: member moves down to the level it does.
    level_review_days: Annotated[int, Meta(ge=1, le=3660)] = 30
    #: Points (and so rewards) expire this many days after earning, oldest first (docs/domain.md: 90); null: not set up.
    points_expiry_days: Annotated[int, Meta(ge=1, le=1200)] | None = 90

    # --- earning ------------------------------------------------------------------------------------------------
    #: ``per_litre``: points per whole litre (part litres don't count); ``per_amount``: per currency unit, by grade.
    earn_mode: Literal["per_litre", "per_amount"] = "per_litre"
    #: The grades a fill-up may name, and how each earns.
    grades: dict[str, GradeSettings] = msgspec.field(default_factory=default_grades)
    #: Shop purchases earn per currency unit.
    shop_points_per_unit: Decimal = Decimal(2)
    #: Litres counted per fill-up (20 US gallons, about 75 L).
    max_litres_per_fill_up: Decimal = Decimal(75)
    #: Points from fuel and shop purchases per member per calendar month (program time zone); null: no cap.
    monthly_points_cap: Annotated[int, Meta(ge=1)] | None = 7000

    # --- visits -------------------------------------------------------------------------------------------------
    #: A visit is a fill-up of at least this amount, or a shop purchase of at least ``visit_min_shop_amount``.
    visit_min_fuel_amount: Decimal = Decimal(10)
    visit_min_shop_amount: Decimal = Decimal(2)
    #: Every this many visits earn ``visit_reward_points`` (0: no visit reward).
    visit_reward_every: Annotated[int, Meta(ge=1, le=1000)] = 10
    visit_reward_points: Annotated[int, Meta(ge=0, le=1_000_000)] = 100

    # --- fraud (a flagged fill-up is held for review, nothing awarded) ----------------------------------------------
    #: More than this many fill-ups per member per day (program time zone).
    max_fill_ups_per_day: Annotated[int, Meta(ge=1, le=100)] = 3
    #: A repeat fill at the same site within this many minutes (0: off).
    repeat_fill_minutes: Annotated[int, Meta(ge=0, le=1440)] = 30
    #: Volume above the tank size (a site may override it, e.g. a truck stop).
    tank_size_litres: Decimal = Decimal(100)
    #: Per-site daily anomaly limits for one member at one site (a site may override them; null: off).
    site_daily_max_fill_ups: Annotated[int, Meta(ge=1, le=100)] | None = None
    site_daily_max_litres: Decimal | None = Decimal(150)
    #: A quantity above this is not a fill-up at all: refused as bad input (422), not held.
    max_valid_litres: Decimal = Decimal(2000)

    # --- rewards (cents off per litre) ----------------------------------------------------------------------------
    #: Points are redeemed in steps: at least ``redemption_min_points``, in multiples of ``redemption_step_points``.
    redemption_min_points: Annotated[int, Meta(ge=1)] = 1000
    redemption_step_points: Annotated[int, Meta(ge=1)] = 1000
    #: Currency units off per litre for each step (0.10: ten cents a litre per 1,000 points).
    off_per_litre_per_step: Decimal = Decimal("0.10")
    #: At most this much off per litre (1 currency unit), and never below the floor price per litre: docs/domain.md's
    #: 10.9 cents a US gallon is 0.109 / 3.785411784 = 0.0288 a litre (to 4 places, in the program's currency).
    max_off_per_litre: Decimal = Decimal(1)
    floor_price_per_litre: Decimal = Decimal("0.0288")
    #: Litres discounted per fill-up at most.
    discount_max_litres: Decimal = Decimal(75)

    # --- levels and care ------------------------------------------------------------------------------------------
    #: New members start on this tier (its code) for ``new_member_months`` (Shell: Gold for 6 months); null: off.
    new_member_level: Code | None = None
    new_member_months: Annotated[int, Meta(ge=1, le=120)] = 6
    #: A member with no fill-up or shop purchase for this many days is lapsing: the win-back care request.
    win_back_after_days: Annotated[int, Meta(ge=1, le=3650)] = 60

    def __post_init__(self) -> None:
        checks: list[tuple[str, Decimal | None, Decimal, Decimal, bool]] = [
            ("shop_points_per_unit", self.shop_points_per_unit, Decimal(0), Decimal(1000), True),
            ("max_litres_per_fill_up", self.max_litres_per_fill_up, Decimal(0), Decimal(10000), False),
            ("visit_min_fuel_amount", self.visit_min_fuel_amount, Decimal(0), Decimal(1_000_000), True),
            ("visit_min_shop_amount", self.visit_min_shop_amount, Decimal(0), Decimal(1_000_000), True),
            ("tank_size_litres", self.tank_size_litres, Decimal(0), Decimal(10000), False),
            ("site_daily_max_litres", self.site_daily_max_litres, Decimal(0), Decimal(100000), False),
            ("max_valid_litres", self.max_valid_litres, Decimal(0), Decimal(100000), False),
            ("off_per_litre_per_step", self.off_per_litre_per_step, Decimal(0), Decimal(100), False),
            ("max_off_per_litre", self.max_off_per_litre, Decimal(0), Decimal(100), False),
            ("floor_price_per_litre", self.floor_price_per_litre, Decimal(0), Decimal(100), True),
            ("discount_max_litres", self.discount_max_litres, Decimal(0), Decimal(10000), False),
        ]
        for name, grade in self.grades.items():
            if not GRADE_CODE.match(name):
                raise ValueError(f"field `grades.{name}` is not a grade code (lower-case letters, digits, - and _)")
            checks += [
                (f"grades.{name}.points_per_litre", grade.points_per_litre, Decimal(0), Decimal(1000), True),
                (f"grades.{name}.amount_per_point", grade.amount_per_point, Decimal(0), Decimal(10000), False),
                (f"grades.{name}.multiplier", grade.multiplier, Decimal(1), Decimal(20), True),
            ]
        checks += [
            (f"levels[{i}].min", level.min, Decimal(0), Decimal(10**12), True) for i, level in enumerate(self.levels)
        ]
        for name, value, low, high, low_allowed in checks:
            if value is None:
                continue
            if not value.is_finite() or value > high or value < low or (value == low and not low_allowed):
                relation = "at least" if low_allowed else "more than"
                raise ValueError(f"field `{name}` must be {relation} {low} and at most {high}")
        if not self.grades:
            raise ValueError("field `grades` must name at least one grade")
        codes = [level.code for level in self.levels]
        if len(set(codes)) != len(codes):
            raise ValueError("field `levels` needs a different code for each level")
        if any(b.min <= a.min for a, b in pairwise(self.levels)):
            raise ValueError("field `levels` must go up: each level's min above the one before")
        if self.redemption_min_points % self.redemption_step_points:
            raise ValueError("field `redemption_min_points` must be a multiple of redemption_step_points")
