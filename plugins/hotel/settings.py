"""A tenant's hotel settings (``PATCH /v1/program {"plugin_settings": {"hotel": {...}}}``).

Every figure of docs/domain.md ("Hotels") is a field here, with that page's figure as its default; unknown fields are
refused, so a misspelt setting is a 422 naming ``plugin_settings.hotel.<field>`` rather than a silent default.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Code = Annotated[str, Meta(min_length=1, max_length=40)]
#: A tier's code as core's tiers take it.
TierCode = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
#: Points per currency unit (a multiplier, not money: 2.5 reads exactly as a float).
Rate = Annotated[float, Meta(ge=0, le=1000)]
Percent = Annotated[int, Meta(ge=0, le=1000)]
Points = Annotated[int, Meta(ge=1, le=10_000_000)]
Words = Annotated[str, Meta(min_length=1, max_length=200)]
MilestoneChoice = Literal["points", "food_vouchers", "suite_upgrade"]
MILESTONE_CHOICES: tuple[MilestoneChoice, ...] = ("points", "food_vouchers", "suite_upgrade")


class TierPerks(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a tier gets at the hotel."""

    priority_check_in: bool = False
    #: Guaranteed late checkout, local time at the hotel ("14:00"); None: the hotel's usual time.
    late_checkout: Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] | None = None
    #: A welcome gift chosen from the guest's stated preferences (``welcome_gifts``).
    welcome_gift: bool = False
    butler: bool = False


class GiftRule(msgspec.Struct, forbid_unknown_fields=True):
    """One line of the welcome-gift table: a guest whose ``preferences[preference]`` is ``value`` (any value when
    ``value`` is None) gets ``gift``; ``{value}`` in ``gift`` is replaced by the stated value."""

    preference: Code
    gift: Words
    value: Annotated[str, Meta(min_length=1, max_length=80)] | None = None


def _default_perks() -> dict[str, TierPerks]:
    return {
        "silver": TierPerks(priority_check_in=True, late_checkout="14:00"),
        "gold": TierPerks(priority_check_in=True, late_checkout="14:00", welcome_gift=True),
        "platinum": TierPerks(priority_check_in=True, late_checkout="16:00", welcome_gift=True),
        "ambassador": TierPerks(priority_check_in=True, late_checkout="16:00", welcome_gift=True, butler=True),
        # the top tier of the seeded ladder (``status_tiers``) gets the top tier's perks
        "diamond": TierPerks(priority_check_in=True, late_checkout="16:00", welcome_gift=True, butler=True),
    }


class StatusTier(msgspec.Struct, forbid_unknown_fields=True):
    """One status of the ladder set up when the plugin is enabled: reached in a calendar year on ``nights`` OR
    ``stays`` OR ``base_points`` (the plugin's ``hotel_base_points`` credit)."""

    code: TierCode
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    nights: Annotated[int, Meta(ge=1, le=366)]
    stays: Annotated[int, Meta(ge=1, le=366)]
    base_points: Annotated[int, Meta(ge=1, le=100_000_000)]


def _default_status_tiers() -> list[StatusTier]:
    """Hilton's: Silver 10 nights or 4 stays or 25,000 base points; Gold 40 / 20 / 75,000; Diamond 60 / 30 / 120,000."""
    return [
        StatusTier("silver", "Silver", 10, 4, 25_000),
        StatusTier("gold", "Gold", 40, 20, 75_000),
        StatusTier("diamond", "Diamond", 60, 30, 120_000),
    ]


def _default_gifts() -> list[GiftRule]:
    return [
        GiftRule("drink", "a chilled bottle of champagne", value="champagne"),
        GiftRule("drink", "a selection of {value} in the room"),
        GiftRule("snack", "{value} with seasonal fruit"),
        GiftRule("pillow", "a {value} pillow made up on the bed"),
    ]


class HotelSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # --- set up when the plugin is enabled -----------------------------------------------------------------------
    #: When the tenant enables the plugin, create ``status_tiers`` if the program has no tiers yet and set the points
    #: expiry to ``inactivity_expiry_months`` if it is still ``never``; false: leave the program as it is.
    seed_defaults: bool = True
    #: The status ladder created then, lowest first (ranks 1, 2, 3...), per calendar year.
    status_tiers: Annotated[list[StatusTier], Meta(max_length=20)] = msgspec.field(
        default_factory=_default_status_tiers
    )
    #: Status earned in year N lasts until the end of February (or 31 March) of year N + ``status_valid_years_after``.
    status_valid_years_after: Annotated[int, Meta(ge=0, le=10)] = 2
    status_valid_until: Literal["end_of_february", "march_31"] = "end_of_february"
    #: Points expire after this many months without qualifying activity (docs/domain.md: 24); null: not set up.
    inactivity_expiry_months: Annotated[int, Meta(ge=1, le=1200)] | None = 24
    # --- earning -----------------------------------------------------------------------------------------------
    #: Base points per currency unit of eligible charges, tax excluded (docs/domain.md: 10; some brands 5 or 2.5).
    points_per_unit: Rate = 10.0
    #: Per-brand rate, overriding ``points_per_unit`` ({"budget": 5, "extended": 2.5}).
    brand_points_per_unit: dict[Code, Rate] = msgspec.field(default_factory=dict)
    #: Per-property rate, overriding the brand's.
    property_points_per_unit: dict[Code, Rate] = msgspec.field(default_factory=dict)
    #: Folio categories that earn (room rate and eligible room charges such as food and beverage).
    eligible_charge_categories: list[Code] = msgspec.field(
        default_factory=lambda: ["room", "food_beverage", "room_service", "minibar", "spa", "laundry"]
    )
    #: Booking channels whose stays earn nothing (online travel agencies, wholesale / tour operators).
    ineligible_channels: list[Code] = msgspec.field(default_factory=lambda: ["ota", "wholesale", "tour_operator"])
    #: Rate types that earn nothing (wholesale, tour-operator, airline crew, travel-agent and staff rates).
    ineligible_rate_types: list[Code] = msgspec.field(
        default_factory=lambda: ["wholesale", "tour_operator", "airline_crew", "travel_agent", "staff"]
    )
    #: Points on up to this many rooms of one reservation (nights are counted once however many rooms).
    max_rooms_earning: Annotated[int, Meta(ge=1, le=50)] = 3
    #: Points post this many days after the check-out date (pending until then).
    posting_delay_days: Annotated[int, Meta(ge=0, le=30)] = 1
    #: A missing stay can be claimed (its check-out sent) up to this many days after check-out; later it earns
    #: nothing (docs/domain.md: up to a year after).
    claim_window_days: Annotated[int, Meta(ge=1, le=3650)] = 365
    #: Tier bonus on base points, in percent, by tier code (Marriott: +10/25/50/75 %).
    tier_bonus_percent: dict[Code, Percent] = msgspec.field(
        default_factory=lambda: {"silver": 10, "gold": 25, "platinum": 50, "ambassador": 75, "diamond": 75}
    )
    # --- milestones --------------------------------------------------------------------------------------------
    #: A milestone choice every ``milestone_every_nights`` nights in a calendar year, from ``milestone_first_nights``
    #: up to ``milestone_last_nights`` (docs/domain.md: every 10 nights from 20 to 100).
    milestone_first_nights: Annotated[int, Meta(ge=1, le=366)] = 20
    milestone_every_nights: Annotated[int, Meta(ge=1, le=366)] = 10
    milestone_last_nights: Annotated[int, Meta(ge=1, le=366)] = 100
    milestone_choices: list[MilestoneChoice] = msgspec.field(default_factory=lambda: list(MILESTONE_CHOICES))
    milestone_points: Points = 5000
    milestone_food_vouchers: Annotated[int, Meta(ge=1, le=100)] = 2
    # --- perks and pre-arrival ---------------------------------------------------------------------------------
    #: Perks by tier code; a tier not listed has none.
    perks: dict[Code, TierPerks] = msgspec.field(default_factory=_default_perks)
    #: The welcome-gift table, first match wins, read against the member's ``attributes.preferences``.
    welcome_gifts: list[GiftRule] = msgspec.field(default_factory=_default_gifts)
    default_welcome_gift: Words = "seasonal fruit and a handwritten welcome note"
    #: Tiers whose members get a pre-arrival care notice, and how many days before check-in.
    pre_arrival_tiers: list[Code] = msgspec.field(default_factory=lambda: ["platinum", "ambassador", "diamond"])
    pre_arrival_days: Annotated[int, Meta(ge=0, le=60)] = 3
    # --- free nights -------------------------------------------------------------------------------------------
    #: Points for one free night by property category (Marriott's standard chart, categories 1-8).
    free_night_points: dict[Code, Points] = msgspec.field(
        default_factory=lambda: {
            "1": 7500,
            "2": 12500,
            "3": 17500,
            "4": 25000,
            "5": 35000,
            "6": 50000,
            "7": 60000,
            "8": 85000,
        }
    )
    #: On a points stay every Nth night is free (docs/domain.md: the 5th) ...
    free_night_every: Annotated[int, Meta(ge=2, le=100)] = 5
    #: ... with at most this many free nights a stay (docs/domain.md: 4).
    max_free_nights_per_stay: Annotated[int, Meta(ge=0, le=100)] = 4
    #: The longest points stay a quote or a free-night reward may cover.
    max_points_stay_nights: Annotated[int, Meta(ge=1, le=365)] = 60

    def __post_init__(self) -> None:
        if self.milestone_last_nights < self.milestone_first_nights:
            raise ValueError("milestone_last_nights must be at least milestone_first_nights")
        if not self.milestone_choices:
            raise ValueError("milestone_choices needs at least one choice")
        codes = [tier.code for tier in self.status_tiers]
        if len(set(codes)) != len(codes):
            raise ValueError("field `status_tiers` needs a different code for each tier")
