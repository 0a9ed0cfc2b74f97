"""The fuel rules as pure functions, table by table (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import msgspec
import pytest

from plugins.fuel_station import rules
from plugins.fuel_station.rules import add_months
from plugins.fuel_station.settings import FuelSettings, GradeSettings

DEFAULT = FuelSettings()
PER_AMOUNT = msgspec.convert({"earn_mode": "per_amount"}, FuelSettings)


def points(lines: list[rules.Line]) -> list[tuple[str, int]]:
    return [(line.source, line.points) for line in lines]


@pytest.mark.parametrize(
    ("settings", "grade", "litres", "amount", "expected"),
    [
        # 1 point per whole litre: part litres don't count
        (DEFAULT, "gasoline", "40", "300", [("fuel.litres", 40)]),
        (DEFAULT, "gasoline", "40.99", "300", [("fuel.litres", 40)]),
        (DEFAULT, "gasoline", "0.5", "4", [("fuel.litres", 0)]),
        # litres counted per fill-up are capped (75)
        (DEFAULT, "gasoline", "90", "700", [("fuel.litres", 75)]),
        # premium grades multiply (x2 by default): the extra is its own award
        (DEFAULT, "premium", "40.5", "330", [("fuel.litres", 40), ("fuel.premium", 40)]),
        (DEFAULT, "premium", "80", "600", [("fuel.litres", 75), ("fuel.premium", 75)]),
        # per currency unit by grade: 1 point per CNY 1 of gasoline, per CNY 2 of diesel
        (PER_AMOUNT, "gasoline", "40", "299.99", [("fuel.fuel_spend", 299)]),
        (PER_AMOUNT, "diesel", "40", "301", [("fuel.fuel_spend", 150)]),
        (PER_AMOUNT, "premium", "40", "320", [("fuel.fuel_spend", 320), ("fuel.premium", 320)]),
        # per amount with the litre cap: only the counted share of the money earns (75 of 100 L)
        (PER_AMOUNT, "gasoline", "100", "800", [("fuel.fuel_spend", 600)]),
    ],
)
def test_fill_up_points(settings: FuelSettings, grade: str, litres: str, amount: str, expected: list) -> None:
    assert points(rules.fill_up_lines(settings, settings.grades[grade], D(litres), D(amount))) == expected


def test_a_grade_with_its_own_rate_and_a_fractional_multiplier() -> None:
    grade = GradeSettings(points_per_litre=D("1.5"), multiplier=D("1.25"))
    assert points(rules.fill_up_lines(DEFAULT, grade, D("41.9"), D("1"))) == [
        ("fuel.litres", 61),  # 41 whole litres x 1.5 = 61.5 -> 61
        ("fuel.premium", 15),  # 61 x 0.25 = 15.25 -> 15
    ]


@pytest.mark.parametrize(("amount", "expected"), [("12.5", 25), ("0.49", 0), ("0.5", 1), ("100", 200)])
def test_shop_points_per_currency_unit(amount: str, expected: int) -> None:
    assert points(rules.shop_lines(DEFAULT, D(amount))) == [("fuel.shop", expected)]


@pytest.mark.parametrize(
    ("lines", "used", "cap", "expected"),
    [
        ([("fuel.litres", 40), ("fuel.premium", 40)], 0, 7000, [40, 40]),
        ([("fuel.litres", 40), ("fuel.premium", 40)], 6950, 7000, [40, 10]),  # premium trimmed first
        ([("fuel.litres", 40), ("fuel.premium", 40)], 6980, 7000, [20, 0]),
        ([("fuel.litres", 40)], 7000, 7000, [0]),
        ([("fuel.litres", 40)], 7500, 7000, [0]),  # never negative
        ([("fuel.litres", 40), ("fuel.visit_reward", 100)], 7000, 7000, [0, 100]),  # the visit reward is not capped
        ([("fuel.shop", 30)], 10, None, [30]),  # no cap
    ],
)
def test_monthly_cap(lines: list, used: int, cap: int | None, expected: list[int]) -> None:
    given = [rules.Line(s, p, "r") for s, p in lines]
    capped = rules.apply_monthly_cap(given, used, cap)
    assert [line.points for line in capped] == expected
    for before, after in zip(given, capped, strict=True):
        assert after.capped_from == (before.points if after.points < before.points else None)


def test_capped_points_count_only_fuel_and_shop() -> None:
    assert rules.capped_points([("fuel.litres", 10), ("fuel.visit_reward", 100), ("rule:x", 5), ("fuel.shop", 3)]) == 13


@pytest.mark.parametrize(
    ("kind", "amount", "expected"),
    [
        ("fill_up", "10", True),
        ("fill_up", "9.99", False),
        ("shop", "2", True),
        ("shop", "1.99", False),
        ("shop", None, False),
    ],
)
def test_what_is_a_visit(kind: str, amount: str | None, expected: bool) -> None:
    assert rules.is_visit(kind, D(amount) if amount else None, DEFAULT) is expected


@pytest.mark.parametrize(("before", "rewarded"), [(0, False), (8, False), (9, True), (10, False), (19, True)])
def test_a_reward_every_tenth_visit(before: int, rewarded: bool) -> None:
    reward = rules.visit_reward(before, DEFAULT)
    assert (reward is not None) is rewarded
    if reward is not None:
        assert (reward.source, reward.points) == ("fuel.visit_reward", 100)


@pytest.mark.parametrize(
    ("points_", "problem"),
    [(1000, None), (3000, None), (999, "at least 1,000"), (1500, "steps of 1,000"), (0, "at least")],
)
def test_redemption_steps(points_: int, problem: str | None) -> None:
    found = rules.redemption_step_problem(points_, DEFAULT)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_the_default_floor_price_is_ten_point_nine_cents_a_us_gallon_per_litre() -> None:
    us_gallon_litres = D("3.785411784")
    assert DEFAULT.floor_price_per_litre == (D("0.109") / us_gallon_litres).quantize(D("0.0001"))


def test_the_steps_a_member_can_redeem_stop_at_the_maximum_discount() -> None:
    assert rules.redemption_steps(3500, DEFAULT) == [1000, 2000, 3000]
    assert rules.redemption_steps(999, DEFAULT) == []
    assert rules.redemption_steps(10**9, DEFAULT)[-1] == 10_000  # 10 steps x 0.10 = 1.00, the maximum
    assert rules.off_per_litre_for(3000, DEFAULT) == D("0.30")
    assert rules.off_per_litre_for(50_000, DEFAULT) == D(1)


@pytest.mark.parametrize(
    ("litres", "price", "voucher", "off", "amount_off", "limited_by"),
    [
        ("40", "7.50", "0.10", "0.10", "4.00", ()),
        ("40", "7.50", "1.50", "1", "40.00", ("max_off_per_litre",)),  # at most 1 a litre
        ("40", "0.10", "0.30", "0.0712", "2.84", ("floor_price",)),  # never below the floor (0.0288)
        ("40", "0.02", "0.10", "0", "0.00", ("floor_price",)),  # already below the floor: nothing off
        ("100", "7.50", "0.20", "0.20", "15.00", ("max_litres",)),  # on at most 75 litres
        ("33.333", "7.50", "0.10", "0.10", "3.33", ()),  # rounded down to the cent
    ],
)
def test_cents_off_discount(
    litres: str, price: str, voucher: str, off: str, amount_off: str, limited_by: tuple
) -> None:
    result = rules.discount(D(litres), D(price), D(voucher), DEFAULT)
    assert result.off_per_litre == D(off)
    assert result.amount_off == D(amount_off)
    assert result.limited_by == limited_by
    assert result.price_after >= min(D(price), DEFAULT.floor_price_per_litre)


T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fu(minutes: float = 0, site: str = "S1", litres: str = "40") -> rules.FillUp:
    return rules.FillUp(site, T0 + timedelta(minutes=minutes), D(litres))


LIMITS = rules.site_limits(DEFAULT)


@pytest.mark.parametrize(
    ("this", "same_day", "nearby", "limits", "codes"),
    [
        (fu(), [], [], LIMITS, []),
        # more than 3 fill-ups per member per day
        (fu(300), [fu(0, "S2"), fu(100, "S3")], [], LIMITS, []),
        (fu(300), [fu(0, "S2"), fu(100, "S3"), fu(200, "S4")], [], LIMITS, ["fuel.daily_fill_ups"]),
        # a repeat fill at the same site within 30 minutes (either side), not at another site
        (fu(20), [fu(0)], [fu(0)], LIMITS, ["fuel.repeat_fill"]),
        (fu(-29), [fu(0)], [fu(0)], LIMITS, ["fuel.repeat_fill"]),
        (fu(30), [fu(0)], [fu(0)], LIMITS, []),
        (fu(5), [fu(0, "S2")], [fu(0, "S2")], LIMITS, []),
        # volume above the tank size (100 L by default, a site may override it)
        (fu(0, litres="100.001"), [], [], LIMITS, ["fuel.tank_size"]),
        (fu(0, litres="300"), [], [], rules.site_limits(DEFAULT, tank_size_litres=D(400)), ["fuel.site_daily_litres"]),
        # per-site daily limits for one card (150 L by default; fill-ups when the site sets it)
        (fu(100, litres="80"), [fu(0, litres="80")], [], LIMITS, ["fuel.site_daily_litres"]),
        (fu(100, litres="80"), [fu(0, "S2", litres="80")], [], LIMITS, []),
        (fu(100), [fu(0)], [], rules.site_limits(DEFAULT, daily_max_fill_ups=1), ["fuel.site_daily_fill_ups"]),
    ],
)
def test_fraud_flags(this: rules.FillUp, same_day: list, nearby: list, limits: rules.SiteLimits, codes: list) -> None:
    assert [f.code for f in rules.fraud_flags(this, same_day, nearby, limits, DEFAULT)] == codes


def test_thresholds_are_settings() -> None:
    strict = msgspec.convert({"max_fill_ups_per_day": 1, "repeat_fill_minutes": 0}, FuelSettings)
    flags = rules.fraud_flags(fu(5), [fu(0)], [fu(0)], rules.site_limits(strict), strict)
    assert [f.code for f in flags] == ["fuel.daily_fill_ups"]  # repeat rule off


@pytest.mark.parametrize(("part", "whole", "expected"), [(1, 3, D("0.3333")), (0, 5, D(0)), (2, 0, None)])
def test_rates(part: int, whole: int, expected: D | None) -> None:
    assert rules.rate(part, whole) == expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [((2026, 1, 31), 1, (2026, 2, 28)), ((2026, 8, 15), 6, (2027, 2, 15)), ((2026, 12, 1), 1, (2027, 1, 1))],
)
def test_add_months(start: tuple, months: int, expected: tuple) -> None:
    assert add_months(datetime(*start, tzinfo=UTC), months) == datetime(*expected, tzinfo=UTC)


@pytest.mark.parametrize(("value", "places"), [("40", 0), ("40.500", 1), ("40.1234", 4), ("1E+2", 0)])
def test_decimal_places(value: str, places: int) -> None:
    assert rules.decimal_places(D(value)) == places


@pytest.mark.parametrize(
    ("points", "fraction", "expected"),
    [(70, "0", 0), (70, "0.5", 35), (75, "0.5", 37), (75, "0.99999999", 74), (75, "1", 75), (0, "1", 0)],
)
def test_reversed_points_round_down_like_core_until_reversed_in_full(points: int, fraction: str, expected: int) -> None:
    assert rules.reversed_points(points, D(fraction)) == expected


@pytest.mark.parametrize(
    ("kind", "amount", "fraction", "expected"),
    [
        ("shop", "5", "0.5", True),  # 2.50 left: still at least 2
        ("shop", "4", "0.5", True),  # exactly 2
        ("shop", "3", "0.5", False),  # 1.50 left
        ("fill_up", "60", "0.8", True),  # 12 left of fuel
        ("fill_up", "60", "0.9", False),  # 6 left
        ("fill_up", "60", "1", False),  # a full reversal always removes the visit
        ("shop", "1000", "1", False),
    ],
)
def test_a_visit_after_a_reversal(kind: str, amount: str, fraction: str, expected: bool) -> None:
    assert rules.visit_after_reversal(kind, D(amount), D(fraction), DEFAULT) is expected
