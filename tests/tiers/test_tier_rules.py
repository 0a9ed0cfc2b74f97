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


# --- reversals --------------------------------------------------------------------------------------------------------

YEARLY_GOLD = spec("ygold", 2, criteria=[("nights", "40")], window={"kind": "calendar_year"})
ROLLING_GOLD = spec("rgold", 2, criteria=[("nights", "40")], window={"kind": "rolling_days", "days": 30})
UNTIL = datetime(2030, 12, 31, tzinfo=UTC)
YEARLY_SUMS = {("nights", "year"): Decimal(0)}


def reached(from_tier: rules.TierSpec | None, at: datetime = NOW, until: datetime | None = UNTIL) -> rules.Reached:
    return rules.Reached(at, from_tier, until)


@pytest.mark.parametrize(
    ("title", "current", "how", "values", "floor", "expected"),
    [
        ("still qualified: stays", GOLD, reached(SILVER), {"nights": 45}, None, None),
        ("back to the tier before, with its validity", GOLD, reached(SILVER), {"nights": 12}, None, ("silver", UNTIL)),
        ("never below the tier before", GOLD, reached(SILVER), {}, None, ("silver", UNTIL)),
        (
            "to the highest still qualified, above the tier before",
            GOLD,
            reached(BASE),
            {"stays": 4},
            None,
            ("silver", None),  # Silver's validity is "none"
        ),
        ("a first tier straight to the top: down to the entry level", GOLD, reached(None), {}, None, ("base", None)),
        ("never below a manual floor", GOLD, reached(BASE), {}, SILVER, ("silver", None)),
        ("a floor at the current tier keeps it", GOLD, reached(BASE), {}, GOLD, None),
        ("not reached by an upgrade: stays", GOLD, None, {}, None, None),
        ("all-of tier: one criterion left is not enough", BOTH, reached(GOLD), {"nights": 60}, None, ("gold", UNTIL)),
        ("no tier", None, reached(BASE), {}, None, None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_on_reversal(
    title: str,
    current: rules.TierSpec | None,
    how: rules.Reached | None,
    values: dict,
    floor: rules.TierSpec | None,
    expected: tuple[str, datetime | None] | None,
) -> None:
    move = rules.on_reversal(LADDER, current, how, sums(**values), NOW, TZ, floor)
    if expected is None:
        assert move is None
    else:
        assert move is not None and move.reason == "reversal"
        assert (move.to.code if move.to else None, move.valid_until) == expected


@pytest.mark.parametrize(
    ("title", "tier", "reached_at", "moves"),
    [
        ("calendar year: reached this year (London time)", YEARLY_GOLD, datetime(2030, 1, 1, 0, 30, tzinfo=UTC), True),
        ("calendar year: reached last year", YEARLY_GOLD, datetime(2029, 12, 31, 23, 30, tzinfo=UTC), False),
        ("rolling 30 days: reached 29 days ago", ROLLING_GOLD, datetime(2030, 5, 3, 12, tzinfo=UTC), True),
        ("rolling 30 days: reached 31 days ago", ROLLING_GOLD, datetime(2030, 5, 1, 12, tzinfo=UTC), False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_on_reversal_only_in_a_window_still_open(
    title: str, tier: rules.TierSpec, reached_at: datetime, moves: bool
) -> None:
    window = tier.qualification.window.window().key
    move = rules.on_reversal([BASE, tier], tier, reached(BASE, reached_at), {("nights", window): Decimal(1)}, NOW, TZ)
    assert (move is not None) is moves
    if move is not None:
        assert move.to is BASE


def entry(from_tier: rules.TierSpec | None, to: rules.TierSpec | None, reason: str, day: int) -> rules.HistoryEntry:
    until = datetime(2031, 1, day, tzinfo=UTC)
    return rules.HistoryEntry(
        from_tier.id if from_tier else None, to.id if to else None, reason, until, datetime(2030, 5, day, tzinfo=UTC)
    )


BY_ID = {t.id: t for t in LADDER}


@pytest.mark.parametrize(
    ("title", "history", "current", "expected"),
    [
        ("an upgrade", [entry(BASE, GOLD, "upgrade", 9)], GOLD, (9, "base", None)),
        (
            "renewals skipped; the tier before keeps its last validity",
            [
                entry(GOLD, GOLD, "renewal", 9),
                entry(SILVER, GOLD, "upgrade", 8),
                entry(SILVER, SILVER, "renewal", 7),
                entry(BASE, SILVER, "upgrade", 6),
            ],
            GOLD,
            (8, "silver", datetime(2031, 1, 7, tzinfo=UTC)),
        ),
        ("a first tier", [entry(None, GOLD, "enrolment", 9)], GOLD, (9, None, None)),
        ("a recalculation's upgrade", [entry(BASE, GOLD, "recalc:upgrade", 9)], GOLD, (9, "base", None)),
        ("by hand", [entry(SILVER, GOLD, "manual:upgrade", 9), entry(BASE, SILVER, "upgrade", 8)], GOLD, None),
        ("by a plugin", [entry(None, GOLD, "welcome:upgrade", 9)], GOLD, None),
        (
            "an upgrade above, reversed since",
            [entry(GOLD, SILVER, "reversal", 9), entry(SILVER, GOLD, "upgrade", 8), entry(BASE, SILVER, "upgrade", 7)],
            SILVER,
            (7, "base", None),
        ),
        (
            "a downgrade at expiry",
            [entry(GOLD, SILVER, "downgrade", 9), entry(SILVER, GOLD, "upgrade", 8), entry(BASE, SILVER, "upgrade", 7)],
            SILVER,
            None,
        ),
        ("no history", [], GOLD, None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_reached_by(
    title: str,
    history: list[rules.HistoryEntry],
    current: rules.TierSpec,
    expected: tuple[int, str | None, datetime | None] | None,
) -> None:
    found = rules.reached_by(history, current, BY_ID)
    if expected is None:
        assert found is None
        return
    assert found is not None
    day, before, until = expected
    assert found.at.day == day and (found.from_tier.code if found.from_tier else None) == before
    assert found.from_valid_until == until
