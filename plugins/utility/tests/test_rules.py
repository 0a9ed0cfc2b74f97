"""The utility's pure rules against hand-computed tables: compensation (UK Guaranteed Standards defaults), notice
stages across DST changes and zones, the peak-time baseline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from plugins.utility import rules
from plugins.utility.settings import SevereCategory, UtilitySettings

UK = UtilitySettings()


def minutes(hours: float) -> int:
    return round(hours * 60)


@pytest.mark.parametrize(
    ("category", "customer_class", "hours", "amount", "basis"),
    [
        # normal weather: 12 h threshold (exactly 12 h is within), 95 domestic / 190 business, +45 per complete 12 h
        ("normal", "residential", 11.99, "0.00", "within_standard"),
        ("normal", "residential", 12, "0.00", "within_standard"),
        ("normal", "residential", 12 + 1 / 60, "95.00", "payment"),
        ("normal", "residential", 15, "95.00", "payment"),
        ("normal", "residential", 23.99, "95.00", "payment"),
        ("normal", "residential", 24, "140.00", "payment+increments"),
        ("normal", "residential", 36, "185.00", "payment+increments"),
        ("normal", "residential", 48, "230.00", "payment+increments"),
        ("normal", "sme", 13, "190.00", "payment"),
        ("normal", "large", 30, "235.00", "payment+increments"),
        ("normal", "public", 12.5, "190.00", "payment"),
        # severe category 1: 24 h, 80, +40 per complete 6 h, cap 2,000; domestic and business alike
        ("severe_1", "residential", 24, "0.00", "within_standard"),
        ("severe_1", "residential", 25, "80.00", "payment"),
        ("severe_1", "residential", 30, "120.00", "payment+increments"),
        ("severe_1", "sme", 36, "160.00", "payment+increments"),
        ("severe_1", "residential", 312, "2000.00", "payment+increments"),
        ("severe_1", "residential", 318, "2000.00", "capped"),
        ("severe_1", "large", 400, "2000.00", "capped"),
        # severe category 2: 48 h
        ("severe_2", "residential", 47, "0.00", "within_standard"),
        ("severe_2", "residential", 49, "80.00", "payment"),
        ("severe_2", "sme", 60, "160.00", "payment+increments"),
        # exempt: nothing, however long
        ("exempt", "residential", 100, "0.00", "exempt"),
        ("exempt", "large", 1000, "0.00", "exempt"),
    ],
)
def test_compensation_table(category: str, customer_class: str, hours: float, amount: str, basis: str) -> None:
    owed = rules.compensation(UK, category, customer_class, minutes(hours), "GBP")
    assert (str(owed.amount), owed.basis) == (amount, basis)
    assert owed.kind == ("domestic" if customer_class == "residential" else "business")


def test_a_tenants_own_figures_and_currency() -> None:
    settings = msgspec.convert(
        {
            "normal_threshold_hours": 24,
            "normal_payment_domestic": "100",
            "normal_increment": "50",
            "normal_increment_hours": 24,
            "normal_cap": "180",
            "severe_categories": {
                "typhoon": {"threshold_hours": 72, "payment": "300", "increment": "0", "increment_hours": 24}
            },
        },
        UtilitySettings,
    )
    assert rules.compensation(settings, "normal", "residential", minutes(24), "CNY").amount == Decimal("0.00")
    assert rules.compensation(settings, "normal", "residential", minutes(47), "CNY").amount == Decimal("100.00")
    assert rules.compensation(settings, "normal", "residential", minutes(48), "CNY").amount == Decimal("150.00")
    capped = rules.compensation(settings, "normal", "residential", minutes(72), "CNY")
    assert (capped.amount, capped.basis) == (Decimal("180.00"), "capped")
    assert rules.compensation(settings, "typhoon", "sme", minutes(80), "JPY").amount == Decimal("300")
    assert rules.points_for(Decimal("95.00"), UK) == 9500


def test_settings_refuse_impossible_figures() -> None:
    with pytest.raises(msgspec.ValidationError, match="normal_increment"):
        msgspec.convert({"normal_increment": "-1"}, UtilitySettings)
    with pytest.raises(msgspec.ValidationError, match="reminder_days"):
        msgspec.convert({"reminder_days": [7]}, UtilitySettings)
    with pytest.raises(msgspec.ValidationError, match="exempt"):
        msgspec.convert({"exempt_categories": ["normal"]}, UtilitySettings)
    assert SevereCategory(24, Decimal(80), Decimal(40), 6).cap is None


def at(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # London, the outage after the spring change (28 March 2027): the same 09:00 wall time, GMT before it
        (
            "Europe/London",
            (2027, 3, 30, 9),
            {
                "priority_notice": (2027, 3, 20, 9),
                "notice": (2027, 3, 23, 9),
                "reminder:6": (2027, 3, 24, 9),
                "reminder:1": (2027, 3, 29, 9),
            },
        ),
        # New York, after the autumn change (7 November 2027): 167 to 169 hours, always 08:00 local
        (
            "America/New_York",
            (2027, 11, 10, 8),
            {
                "priority_notice": (2027, 10, 31, 8),
                "notice": (2027, 11, 3, 8),
                "reminder:6": (2027, 11, 4, 8),
                "reminder:1": (2027, 11, 9, 8),
            },
        ),
        # Nanjing (no DST): exactly 7 x 24 h
        (
            "Asia/Shanghai",
            (2027, 3, 10, 8),
            {
                "priority_notice": (2027, 2, 28, 8),
                "notice": (2027, 3, 3, 8),
                "reminder:6": (2027, 3, 4, 8),
                "reminder:1": (2027, 3, 9, 8),
            },
        ),
    ],
)
def test_notice_stages_keep_the_wall_clock_across_dst(
    zone: str, start: tuple[int, ...], expected: dict[str, tuple[int, ...]]
) -> None:
    stages = rules.planned_stages(UK, at(zone, *start), ZoneInfo(zone))
    assert {s.name: s.due_at for s in stages} == {name: at(zone, *when) for name, when in expected.items()}
    assert [s.priority for s in stages] == [True, False, False, False]


def test_late_after_the_grace() -> None:
    [_, notice, *_] = rules.planned_stages(UK, datetime(2027, 5, 10, 8, tzinfo=UTC), ZoneInfo("UTC"))
    assert not rules.is_late(notice, datetime(2027, 5, 3, 8, 59, tzinfo=UTC), UK)
    assert rules.is_late(notice, datetime(2027, 5, 3, 9, 1, tzinfo=UTC), UK)


def test_etr_changes_worth_telling() -> None:
    base = datetime(2027, 1, 1, 12, tzinfo=UTC)
    assert not rules.etr_changed(base, base.replace(minute=30), UK)
    assert rules.etr_changed(base, base.replace(minute=31), UK)
    assert rules.etr_changed(None, base, UK) and rules.etr_changed(base, None, UK)


def test_still_out_in_the_tenants_languages() -> None:
    assert rules.is_still_out("  Still OUT! ", UK)
    assert rules.is_still_out("我家仍然停电。", UK)
    assert not rules.is_still_out("power is back, thanks", UK)


def test_similar_days_and_baseline() -> None:
    wednesday = date(2027, 7, 14)
    days = rules.similar_days(wednesday, 10)
    assert len(days) == 10 and all(d.weekday() < 5 for d in days) and days[0] == date(2027, 7, 13)
    assert days[-1] == date(2027, 6, 30)
    saturday = date(2027, 7, 17)
    assert rules.similar_days(saturday, 3) == [date(2027, 7, 11), date(2027, 7, 10), date(2027, 7, 4)]
    usage = {d: Decimal(i + 1) for i, d in enumerate(days)}  # 1..10 kWh
    assert rules.baseline(usage, days, 3) == Decimal("9.000")  # mean of 10, 9, 8
    assert rules.baseline({days[0]: Decimal(5)}, days, 3) is None
    assert rules.peak_rebate(Decimal("9.000"), Decimal("5.5"), Decimal("1.25"), "GBP") == (
        Decimal("3.500"),
        Decimal("4.38"),
    )
    assert rules.peak_rebate(Decimal("9.000"), Decimal(12), Decimal("1.25"), "GBP")[1] == Decimal("0.00")


def test_claw_back_window_in_calendar_months() -> None:
    enrolled = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert rules.within_months(enrolled, datetime(2028, 1, 31, 9, tzinfo=UTC), 12)
    assert not rules.within_months(enrolled, datetime(2028, 1, 31, 10, tzinfo=UTC), 12)
    assert rules.within_months(datetime(2027, 3, 31, tzinfo=UTC), datetime(2027, 4, 29, tzinfo=UTC), 1)


def test_a_planned_outages_clock_starts_at_the_windows_end_only_for_a_notice_in_time() -> None:
    """2 days before a 09:00 London start (after the spring change) is 09:00 two calendar days earlier, plus the
    60 minutes' grace of a notice sent by the worker: told by then, the clock starts at the window's end."""
    london = ZoneInfo("Europe/London")
    start = datetime(2031, 3, 31, 8, tzinfo=UTC)  # 09:00 BST
    end = datetime(2031, 3, 31, 16, tzinfo=UTC)
    required = datetime(2031, 3, 29, 9, tzinfo=UTC)  # 09:00 GMT on the 29th (the clocks change on the 30th)
    window = (start, end)
    grace = required.replace(hour=10)
    assert rules.planned_counted_from(UK, london, window, start, grace) == end
    assert rules.planned_counted_from(UK, london, window, start, grace.replace(minute=1)) == start
    assert rules.planned_counted_from(UK, london, window, start, None) == start
    # a claimant who lost supply after the window's end counts from then
    later = datetime(2031, 3, 31, 18, tzinfo=UTC)
    assert rules.planned_counted_from(UK, london, window, later, required) == later
    assert rules.planned_counted_from(UK, london, window, later, None) == later
