"""Tier qualification, validity and moves (pure), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
import pytest

from core.tiers import rules


def spec(
    code: str,
    rank: int,
    *,
    criteria: list[tuple[str, str]] = (),
    mode: str = "any",  # type: ignore[assignment]
    window: dict | None = None,
    validity: dict | None = None,
    downgrade: str = "one_step",
) -> rules.TierSpec:
    qualification = msgspec.convert(
        {
            "window": window or {"kind": "lifetime"},
            "mode": mode,
            "criteria": [{"metric": m, "min": v} for m, v in criteria],
        },
        rules.Qualification,
    )
    return rules.TierSpec(
        code,
        code,
        code,
        rank,
        qualification,
        rules.Benefits(),
        msgspec.convert(validity or {}, rules.Validity),
        downgrade,
    )  # type: ignore[arg-type]


BASE = spec("base", 0)
SILVER = spec("silver", 1, criteria=[("nights", "10"), ("stays", "4"), ("base_points", "25000")])
GOLD = spec("gold", 2, criteria=[("nights", "40"), ("stays", "20")], mode="any")
BOTH = spec("both", 3, criteria=[("nights", "60"), ("spend", "5000")], mode="all")
LADDER = [BASE, SILVER, GOLD, BOTH]
TZ = ZoneInfo("Europe/London")


def sums(**values: int) -> dict[tuple[str, str], Decimal]:
    return {(k, "lifetime"): Decimal(v) for k, v in values.items()}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "base"),
        ({"nights": 9, "stays": 3}, "base"),
        ({"stays": 4}, "silver"),
        ({"base_points": 25000}, "silver"),
        ({"nights": 40}, "gold"),
        ({"nights": 60}, "gold"),  # "all" needs spend too
        ({"nights": 60, "spend": 5000}, "both"),
    ],
)
def test_highest_qualified(values: dict[str, int], expected: str) -> None:
    assert rules.highest_qualified(LADDER, sums(**values)).code == expected  # type: ignore[union-attr]


def test_a_tier_without_criteria_is_the_entry_level_only_at_rank_zero() -> None:
    manual = spec("vip", 5)
    assert rules.qualifies(BASE, {}) is True
    assert rules.qualifies(manual, {}) is False


@pytest.mark.parametrize(
    ("validity", "reached", "expected"),
    [
        ({"kind": "none"}, datetime(2030, 5, 1, tzinfo=UTC), None),
        ({"kind": "days", "days": 90}, datetime(2030, 5, 1, tzinfo=UTC), datetime(2030, 7, 30, tzinfo=UTC)),
        (
            {"kind": "fixed_date", "years_after": 2, "month": 2, "day": 31},
            datetime(2030, 5, 1, tzinfo=UTC),
            datetime(2032, 3, 1, tzinfo=UTC),
        ),  # end of February (29th in 2032), London time = UTC in winter
        (
            {"kind": "fixed_date", "years_after": 1, "month": 12, "day": 31},
            datetime(2030, 12, 31, 23, 30, tzinfo=UTC),
            datetime(2032, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_valid_until(validity: dict, reached: datetime, expected: datetime | None) -> None:
    tier = spec("t", 1, validity=validity)
    assert rules.valid_until(tier, reached, TZ) == expected


NOW = datetime(2030, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "values", "floor", "expected", "reason"),
    [
        (GOLD, {"nights": 45}, None, "gold", "renewal"),
        (GOLD, {"nights": 12}, None, "silver", "downgrade"),  # one step
        (GOLD, {}, None, "silver", "downgrade"),
        (GOLD, {}, GOLD, "gold", "renewal"),  # a floor holds it
        (SILVER, {}, None, "base", "downgrade"),
    ],
)
def test_at_expiry_one_step(
    current: rules.TierSpec, values: dict, floor: rules.TierSpec | None, expected: str, reason: str
) -> None:
    move = rules.at_expiry(LADDER, current, sums(**values), NOW, TZ, floor)
    assert (move.to.code if move.to else None, move.reason) == (expected, reason)


def test_at_expiry_to_qualified_can_drop_several_levels() -> None:
    gold = spec("gold", 2, criteria=[("nights", "40")], downgrade="to_qualified")
    move = rules.at_expiry([BASE, SILVER, gold], gold, sums(), NOW, TZ)
    assert move.to is BASE and move.reason == "downgrade"


def test_on_activity_upgrades_and_never_downgrades() -> None:
    assert rules.on_activity(LADDER, SILVER, None, sums(nights=41), NOW, TZ).to is GOLD  # type: ignore[union-attr]
    assert rules.on_activity(LADDER, GOLD, None, sums(), NOW, TZ) is None
    first = rules.on_activity(LADDER, None, None, sums(), NOW, TZ)
    assert first is not None and first.to is BASE and first.reason == "enrolment"


def test_progress_to_the_next_tier() -> None:
    progress = rules.progress_to(GOLD, sums(nights=25, stays=2))
    assert [(p.metric, p.current, p.remaining) for p in progress] == [
        ("nights", Decimal(25), Decimal(15)),
        ("stays", Decimal(2), Decimal(18)),
    ]
