"""The hotel's pure rules, table by table (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest

from plugins.hotel import rules
from plugins.hotel.settings import GiftRule, HotelSettings

D = date.fromisoformat
DEFAULTS = HotelSettings()


@pytest.mark.parametrize(
    ("check_in", "check_out", "nights"),
    [
        ("2026-03-01", "2026-03-02", 1),
        ("2026-03-01", "2026-03-04", 3),
        ("2026-02-27", "2026-03-02", 3),  # across a month end (not a leap year)
        ("2028-02-27", "2028-03-02", 4),  # leap year
        ("2026-12-30", "2027-01-02", 3),  # across a year end
        ("2026-03-29", "2026-03-30", 1),  # the night the clocks go forward is still one night
        ("2026-03-01", "2026-03-01", 0),
    ],
)
def test_a_night_is_one_night_to_morning_cycle(check_in: str, check_out: str, nights: int) -> None:
    assert rules.nights_between(D(check_in), D(check_out)) == nights


@pytest.mark.parametrize(
    ("stay", "others", "qualifying", "new_stay"),
    [
        # a first stay: every night, a new stay
        (("A", "2026-03-01", "2026-03-04"), [], 3, True),
        # another reservation for the same nights (a second room booked separately): no night counts twice
        (("A", "2026-03-01", "2026-03-04"), [("A", "2026-03-01", "2026-03-04")], 0, False),
        # overlapping by one night at another hotel: that night is not counted again, but it is another stay
        (("B", "2026-03-03", "2026-03-05"), [("A", "2026-03-01", "2026-03-04")], 1, True),
        # consecutive nights at one hotel (checked out and in again the same day) are one stay
        (("A", "2026-03-04", "2026-03-06"), [("A", "2026-03-01", "2026-03-04")], 2, False),
        (("A", "2026-02-27", "2026-03-01"), [("A", "2026-03-01", "2026-03-04")], 2, False),
        # a night's gap at the same hotel: a new stay
        (("A", "2026-03-05", "2026-03-06"), [("A", "2026-03-01", "2026-03-04")], 1, True),
        # consecutive nights but at another hotel: a new stay
        (("B", "2026-03-04", "2026-03-06"), [("A", "2026-03-01", "2026-03-04")], 2, True),
    ],
)
def test_one_qualifying_night_per_night_and_consecutive_nights_at_one_hotel_are_one_stay(
    stay: tuple[str, str, str], others: list[tuple[str, str, str]], qualifying: int, new_stay: bool
) -> None:
    known = [rules.KnownStay(p, D(i), D(o)) for p, i, o in others]
    prop, check_in, check_out = stay
    assert rules.qualifying_nights(D(check_in), D(check_out), known) == qualifying
    assert rules.is_new_stay(prop, D(check_in), D(check_out), known) is new_stay


def line(category: str, amount: str, tax: str = "0", room: int | None = None) -> rules.FolioCharge:
    return rules.FolioCharge(category, Decimal(amount), Decimal(tax), room)


@pytest.mark.parametrize(
    ("folio", "rooms", "eligible", "excluded"),
    [
        # tax is never eligible; parking and the gift shop are not eligible categories
        ([line("room", "200", "40"), line("food_beverage", "55.50", "11.10")], 1, "255.50", {}),
        (
            [line("room", "100", "20"), line("parking", "30", "6"), line("gift_shop", "12")],
            1,
            "100",
            {
                "gift_shop": "12",
                "parking": "30",
            },
        ),
        # four rooms, charges per room: the three dearest rooms earn
        (
            [
                line("room", "100", room=1),
                line("room", "150", room=2),
                line("room", "120", room=3),
                line("room", "90", room=4),
            ],
            4,
            "370",
            {"rooms_over_limit": "90"},
        ),
        # five rooms, charges for the reservation as a whole: 3/5 of them earn
        ([line("room", "500")], 5, "300", {"rooms_over_limit": "200"}),
        # three rooms: all earn
        ([line("room", "300")], 3, "300", {}),
        ([], 1, "0", {}),
    ],
)
def test_eligible_charges_exclude_tax_other_categories_and_rooms_over_the_limit(
    folio: list[rules.FolioCharge], rooms: int, eligible: str, excluded: dict[str, str]
) -> None:
    result = rules.eligible_charges(folio, rooms, DEFAULTS.eligible_charge_categories, DEFAULTS.max_rooms_earning)
    assert result.amount == Decimal(eligible)
    assert {k: str(v.normalize()) for k, v in result.excluded.items()} == {
        k: str(Decimal(v).normalize()) for k, v in excluded.items()
    }
    assert result.rooms_counted == min(rooms, 3)


def test_tax_excluded_is_reported() -> None:
    result = rules.eligible_charges([line("room", "100", "20"), line("spa", "50", "10")], 1, ["room", "spa"], 3)
    assert (result.amount, result.tax_excluded) == (Decimal(150), Decimal(30))


@pytest.mark.parametrize(
    ("amount", "rate", "points"),
    [
        ("100", "10", 1000),
        ("99.99", "10", 999),  # rounded down: a fraction of a point is never credited
        ("0.09", "10", 0),
        ("100", "2.5", 250),  # Accor: 25 points per EUR 10
        ("33.33", "2.5", 83),
        ("100", "5", 500),
        ("0", "10", 0),
    ],
)
def test_points_are_rounded_down(amount: str, rate: str, points: int) -> None:
    assert rules.points_for(Decimal(amount), Decimal(rate)) == points


def test_the_rate_is_the_propertys_else_the_brands_else_the_programs() -> None:
    settings = msgspec.convert(
        {"points_per_unit": 10, "brand_points_per_unit": {"budget": 5}, "property_points_per_unit": {"LON-9": 2.5}},
        HotelSettings,
    )
    assert rules.points_rate(settings, None, "LON-1") == Decimal(10)
    assert rules.points_rate(settings, "budget", "LON-1") == Decimal(5)
    assert rules.points_rate(settings, "budget", "LON-9") == Decimal("2.5")


@pytest.mark.parametrize(
    ("base", "tier", "bonus", "percent"),
    [
        (1000, None, 0, 0),
        (1000, "member", 0, 0),
        (1000, "silver", 100, 10),
        (1000, "gold", 250, 25),
        (1000, "platinum", 500, 50),
        (1000, "ambassador", 750, 75),
        (999, "gold", 249, 25),  # rounded down
    ],
)
def test_tier_bonus_on_base_points(base: int, tier: str | None, bonus: int, percent: int) -> None:
    assert rules.tier_bonus(base, tier, DEFAULTS.tier_bonus_percent) == (bonus, percent)


@pytest.mark.parametrize(
    ("channel", "rate_type", "code"),
    [
        ("direct", "standard", None),
        ("ota", "standard", "hotel.ineligible_channel"),
        ("wholesale", "standard", "hotel.ineligible_channel"),
        ("direct", "airline_crew", "hotel.ineligible_rate"),
        ("direct", "staff", "hotel.ineligible_rate"),
        ("gds", "travel_agent", "hotel.ineligible_rate"),
        ("direct", "corporate", None),
    ],
)
def test_ineligible_channels_and_rates(channel: str, rate_type: str, code: str | None) -> None:
    refusal = rules.ineligibility(DEFAULTS, channel, rate_type)
    assert (refusal[0] if refusal else None) == code
    if refusal:
        assert channel in refusal[1] or rate_type in refusal[1]


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [
        (0, 19, []),
        (15, 20, [20]),
        (19, 31, [20, 30]),
        (20, 29, []),
        (0, 120, [20, 30, 40, 50, 60, 70, 80, 90, 100]),
        (95, 130, [100]),  # nothing after 100
    ],
)
def test_milestones_every_10_nights_from_20_to_100(before: int, after: int, crossed: list[int]) -> None:
    assert rules.milestones_crossed(before, after, DEFAULTS) == crossed


@pytest.mark.parametrize(
    ("nights", "free", "points"),
    [
        (1, 0, 25000),
        (4, 0, 100000),
        (5, 1, 100000),  # the 5th night is free
        (9, 1, 200000),
        (10, 2, 200000),
        (20, 4, 400000),
        (25, 4, 525000),  # at most 4 free nights a stay
    ],
)
def test_points_stays_5th_night_free_at_most_4(nights: int, free: int, points: int) -> None:
    quote = rules.quote_points_stay("4", nights, DEFAULTS)
    assert (quote.free_nights, quote.points, quote.paid_nights) == (free, points, nights - free)


def test_quotes_refuse_unknown_categories_and_nights_out_of_range() -> None:
    with pytest.raises(KeyError):
        rules.quote_points_stay("99", 1, DEFAULTS)
    with pytest.raises(ValueError, match="1 to 60"):
        rules.quote_points_stay("1", 0, DEFAULTS)


@pytest.mark.parametrize(
    ("preferences", "gift"),
    [
        ({"drink": "Champagne"}, "a chilled bottle of champagne"),
        ({"drink": "green tea"}, "a selection of green tea in the room"),
        ({"snack": "dark chocolate", "drink": "whisky"}, "a selection of whisky in the room"),  # table order wins
        ({"snack": "macarons"}, "macarons with seasonal fruit"),
        ({"pillow": "firm"}, "a firm pillow made up on the bed"),
        ({}, "seasonal fruit and a handwritten welcome note"),
        (None, "seasonal fruit and a handwritten welcome note"),
        ({"drink": ""}, "seasonal fruit and a handwritten welcome note"),
        ({"drink": {"nested": 1}}, "seasonal fruit and a handwritten welcome note"),
    ],
)
def test_welcome_gift_from_preferences(preferences: dict | None, gift: str) -> None:
    assert rules.welcome_gift(preferences, DEFAULTS.welcome_gifts, DEFAULTS.default_welcome_gift) == gift


def test_a_gift_template_is_not_a_format_string() -> None:
    table = [GiftRule("drink", "{value} {0} {x.__class__}")]
    assert rules.welcome_gift({"drink": "{value}"}, table, "none") == "{value} {0} {x.__class__}"


def test_default_settings_are_domain_figures() -> None:
    assert DEFAULTS.points_per_unit == 10
    assert DEFAULTS.max_rooms_earning == 3
    assert DEFAULTS.posting_delay_days == 1
    assert rules.milestones(DEFAULTS) == [20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert (DEFAULTS.free_night_every, DEFAULTS.max_free_nights_per_stay) == (5, 4)
    assert {"ota", "wholesale", "tour_operator"} <= set(DEFAULTS.ineligible_channels)
    assert {"airline_crew", "travel_agent", "staff"} <= set(DEFAULTS.ineligible_rate_types)


@pytest.mark.parametrize(
    ("check_out", "today", "window", "late"),
    [
        ("2026-03-01", "2026-03-01", 365, False),
        ("2025-03-01", "2026-03-01", 365, False),  # exactly a year after: still in time
        ("2025-02-28", "2026-03-01", 365, True),
        ("2023-03-01", "2024-03-01", 365, True),  # a calendar year across 29 February is 366 days
        ("2026-01-30", "2026-03-01", 30, False),  # 30 days
        ("2026-01-29", "2026-03-01", 30, True),
    ],
)
def test_a_late_claim(check_out: str, today: str, window: int, late: bool) -> None:
    reason = rules.late_claim(D(check_out), D(today), window)
    assert (reason is not None) is late
    if reason:
        assert f"up to {window} days after check-out" in reason


@pytest.mark.parametrize(
    ("nights", "share", "counted", "points", "left"),
    [
        (10, "0", "10", 10_000, 10_000),
        (10, "0.5", "5", 10_000, 5000),
        (3, "0.5", "1.5", 1001, 501),  # core removes 500 (rounded down): 501 are left
        (10, "0.75", "2.5", 10_000, 2500),
        (10, "1", "0", 10_000, 0),
    ],
)
def test_what_a_partly_reversed_stay_still_counts(
    nights: int, share: str, counted: str, points: int, left: int
) -> None:
    assert rules.counted_nights(nights, Decimal(share)) == Decimal(counted)
    assert rules.points_left(points, Decimal(share)) == left
