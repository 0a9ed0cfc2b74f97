"""The earning-rules engine, table-driven: each case is rules + an event -> the exact award lines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from core.earning.conditions import Condition, ConditionError, check, holds
from core.earning.engine import CapUsage, Rule, RuleDefinition, compute, validate_definition

AT = datetime(2030, 6, 15, 10, tzinfo=UTC)


def rule(name: str, **fields: Any) -> Rule:
    definition = msgspec.convert({"name": name, **fields}, RuleDefinition)
    return Rule(uuid.uuid5(uuid.NAMESPACE_DNS, name), definition)


def facts(**event: Any) -> dict[str, Any]:
    base = {
        "type": "purchase",
        "amount": None,
        "currency": "EUR",
        "quantity": None,
        "unit": None,
        "weekday": 6,
        "hour": 10,
        "attributes": {},
    }
    member = event.pop("member", {"tier": None, "tier_rank": None, "segments": [], "attributes": {}})
    return {"event": base | event, "member": member}


CASES = [
    (
        "per currency unit, floor",
        [rule("base", kind="per_amount", points="10")],
        facts(amount="12.99"),
        [("base", 129)],
    ),
    (
        "25 points per EUR 10 (Accor)",
        [rule("accor", kind="per_amount", points="25", per="10")],
        facts(amount="87.50"),
        [("accor", 218)],
    ),
    ("round half up", [rule("r", kind="per_amount", points="2.5", rounding="round")], facts(amount="3"), [("r", 8)]),
    ("ceil", [rule("c", kind="per_amount", points="1", rounding="ceil")], facts(amount="0.01"), [("c", 1)]),
    (
        "other currency earns nothing",
        [rule("base", kind="per_amount", points="10")],
        facts(amount="50", currency="USD"),
        [],
    ),
    (
        "currency-specific rule",
        [rule("usd", kind="per_amount", points="1", currency="USD")],
        facts(amount="50", currency="USD"),
        [("usd", 50)],
    ),
    (
        "whole litres only",
        [rule("litre", kind="per_quantity", points="1")],
        facts(quantity="41.9", unit="litre"),
        [("litre", 41)],
    ),
    (
        "part units count when asked",
        [rule("kwh", kind="per_quantity", points="1.25", whole_units=False, rounding="floor")],
        facts(quantity="3.5", unit="kWh"),
        [("kwh", 4)],
    ),
    (
        "fixed bonus with a condition that holds",
        [rule("big", kind="fixed", points="500", conditions=[{"field": "event.amount", "op": "gte", "value": 100}])],
        facts(amount="150"),
        [("big", 500)],
    ),
    (
        "fixed bonus with a condition that fails",
        [rule("big", kind="fixed", points="500", conditions=[{"field": "event.amount", "op": "gte", "value": 100}])],
        facts(amount="99.99"),
        [],
    ),
    (
        "event type filter",
        [rule("only-returns", kind="fixed", points="5", event_types=["custom"])],
        facts(amount="10"),
        [],
    ),
    (
        "multiplier on base points",
        [
            rule("base", kind="per_amount", points="1"),
            rule(
                "weekend",
                kind="multiplier",
                points="2",
                conditions=[{"field": "event.weekday", "op": "in", "value": [6, 7]}],
            ),
        ],
        facts(amount="40"),
        [("base", 40), ("weekend", 40)],
    ),
    (
        "multiplier does not touch a fixed bonus unless applies_to=all",
        [
            rule("base", kind="per_amount", points="1"),
            rule("bonus", kind="fixed", points="100"),
            rule("x1.5", kind="multiplier", points="1.5"),
        ],
        facts(amount="40"),
        [("base", 40), ("bonus", 100), ("x1.5", 20)],
    ),
    (
        "applies_to all",
        [
            rule("base", kind="per_amount", points="1"),
            rule("bonus", kind="fixed", points="100"),
            rule("x1.5", kind="multiplier", points="1.5", applies_to="all"),
        ],
        facts(amount="40"),
        [("base", 40), ("bonus", 100), ("x1.5", 70)],
    ),
    (
        "best_of keeps only the largest in its group",
        [
            rule("a", kind="fixed", points="50", stacking={"group": "promo", "mode": "best_of"}),
            rule("b", kind="fixed", points="80", stacking={"group": "promo", "mode": "best_of"}),
            rule("c", kind="fixed", points="10"),
        ],
        facts(amount="1"),
        [("b", 80), ("c", 10)],
    ),
    (
        "best_of multipliers",
        [
            rule("base", kind="per_amount", points="1"),
            rule("m2", kind="multiplier", points="2", stacking={"group": "m", "mode": "best_of"}),
            rule("m3", kind="multiplier", points="3", stacking={"group": "m", "mode": "best_of"}),
        ],
        facts(amount="10"),
        [("base", 10), ("m3", 20)],
    ),
    (
        "tier multiplier by condition",
        [
            rule("base", kind="per_amount", points="10"),
            rule(
                "gold",
                kind="multiplier",
                points="1.25",
                conditions=[{"field": "member.tier", "op": "eq", "value": "gold"}],
            ),
        ],
        facts(amount="10", member={"tier": "gold", "tier_rank": 2, "segments": [], "attributes": {}}),
        [("base", 100), ("gold", 25)],
    ),
    (
        "segment condition",
        [
            rule(
                "seg",
                kind="fixed",
                points="7",
                conditions=[{"field": "member.segments", "op": "contains", "value": "vip"}],
            )
        ],
        facts(member={"tier": None, "tier_rank": None, "segments": ["vip", "new"], "attributes": {}}),
        [("seg", 7)],
    ),
    (
        "hour window",
        [
            rule(
                "morning",
                kind="fixed",
                points="3",
                conditions=[{"field": "event.hour", "op": "between", "value": [6, 9]}],
            )
        ],
        facts(hour=10),
        [],
    ),
    (
        "attribute in list, any-match",
        [
            rule(
                "premium",
                kind="fixed",
                points="9",
                match="any",
                conditions=[
                    {"field": "event.attributes.grade", "op": "in", "value": ["98", "v-power"]},
                    {"field": "event.attributes.site", "op": "eq", "value": "S-1"},
                ],
            )
        ],
        facts(attributes={"grade": "v-power", "site": "S-9"}),
        [("premium", 9)],
    ),
    (
        "per-event cap",
        [rule("base", kind="per_amount", points="10", caps={"per_event": 300})],
        facts(amount="100"),
        [("base", 300)],
    ),
    (
        "a multiplier works on the capped base (500 capped to 100, x2 adds 100, not 500)",
        [
            rule("base", kind="per_amount", points="1", caps={"per_event": 100}),
            rule("x2", kind="multiplier", points="2"),
        ],
        facts(amount="500"),
        [("base", 100), ("x2", 100)],
    ),
    (
        "a multiplier's own cap applies to its bonus",
        [
            rule("base", kind="per_amount", points="1", caps={"per_event": 100}),
            rule("x3", kind="multiplier", points="3", caps={"per_event": 150}),
        ],
        facts(amount="500"),
        [("base", 100), ("x3", 150)],
    ),
    (
        "applies_to all multiplies the capped awards",
        [
            rule("base", kind="per_amount", points="1", caps={"per_event": 30}),
            rule("bonus", kind="fixed", points="100", caps={"per_event": 20}),
            rule("x2", kind="multiplier", points="2", applies_to="all"),
        ],
        facts(amount="40"),
        [("base", 30), ("bonus", 20), ("x2", 50)],
    ),
    (
        "best_of compares what the caps leave",
        [
            rule("a", kind="fixed", points="500", caps={"per_event": 100}, stacking={"group": "g", "mode": "best_of"}),
            rule("b", kind="fixed", points="200", stacking={"group": "g", "mode": "best_of"}),
        ],
        facts(),
        [("b", 200)],
    ),
    (
        "priority orders the lines",
        [rule("late", kind="fixed", points="1", priority=200), rule("early", kind="fixed", points="2", priority=1)],
        facts(),
        [("early", 2), ("late", 1)],
    ),
    (
        "validity window closed",
        [rule("old", kind="fixed", points="5", valid_until="2030-01-01T00:00:00Z")],
        facts(),
        [],
    ),
]


@pytest.mark.parametrize(("title", "rules", "event_facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rules(title: str, rules: list[Rule], event_facts: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    lines = compute(rules, event_facts, occurred_at=AT, program_currency="EUR")
    assert [(line.rule_name, line.points) for line in lines] == expected


def test_daily_and_monthly_caps_use_what_was_already_given() -> None:
    capped = rule("capped", kind="per_amount", points="1", caps={"per_day": 100, "per_month": 250})
    lines = compute(
        [capped],
        facts(amount="80"),
        occurred_at=AT,
        program_currency="EUR",
        usage=CapUsage(day={capped.id: 50}, month={capped.id: 60}),
    )
    assert [(line.points, line.capped_from) for line in lines] == [(50, 80)]
    exhausted = compute(
        [capped],
        facts(amount="80"),
        occurred_at=AT,
        program_currency="EUR",
        usage=CapUsage(day={capped.id: 0}, month={capped.id: 250}),
    )
    assert exhausted == []


@pytest.mark.parametrize(
    ("usage_day", "usage_month", "expected"),
    [
        (0, 0, [("base", 80), ("x2", 80)]),
        (50, 0, [("base", 50), ("x2", 50)]),  # the day's cap leaves 50: the multiplier doubles 50
        (0, 240, [("base", 10), ("x2", 10)]),  # the month's cap leaves 10
        (100, 0, []),  # nothing left today: no base, nothing to multiply
    ],
)
def test_daily_and_monthly_caps_cut_the_base_before_multipliers(
    usage_day: int, usage_month: int, expected: list[tuple[str, int]]
) -> None:
    capped = rule("base", kind="per_amount", points="1", caps={"per_day": 100, "per_month": 250})
    lines = compute(
        [capped, rule("x2", kind="multiplier", points="2")],
        facts(amount="80"),
        occurred_at=AT,
        program_currency="EUR",
        usage=CapUsage(day={capped.id: usage_day}, month={capped.id: usage_month}),
    )
    assert [(line.rule_name, line.points) for line in lines] == expected


def test_a_capped_base_with_a_multiplier_and_a_tier_bonus() -> None:
    """The audit's case: base 500 capped to 100, a x2 multiplier and a x1.5 tier: 100 + 100 + 50."""
    lines = compute(
        [
            rule("base", kind="per_amount", points="1", caps={"per_event": 100}),
            rule("x2", kind="multiplier", points="2"),
        ],
        facts(amount="500"),
        occurred_at=AT,
        program_currency="EUR",
        tier_multiplier=Decimal("1.5"),
        tier_name="Gold",
    )
    assert [(line.rule_name, line.points, line.capped_from) for line in lines] == [
        ("base", 100, 500),
        ("x2", 100, None),
        ("Gold bonus", 50, None),
    ]
    assert lines[1].basis == "100 points x 2 - 100"


def test_tier_earning_multiplier_applies_to_base_points() -> None:
    lines = compute(
        [rule("base", kind="per_amount", points="10"), rule("bonus", kind="fixed", points="50")],
        facts(amount="20"),
        occurred_at=AT,
        program_currency="EUR",
        tier_multiplier=Decimal("1.5"),
        tier_name="Gold",
    )
    assert [(line.rule_name, line.points) for line in lines] == [("base", 200), ("bonus", 50), ("Gold bonus", 100)]
    assert "base points" in lines[-1].basis


def test_every_line_explains_itself() -> None:
    lines = compute(
        [rule("base", kind="per_amount", points="25", per="10")],
        facts(amount="87.50"),
        occurred_at=AT,
        program_currency="EUR",
    )
    assert lines[0].basis == "87.50 EUR x 25 per 10 EUR (floor)"


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"field": "amount", "op": "eq", "value": 1}, "conditions[0].field"),
        ({"field": "event.amount", "op": "in", "value": 5}, "conditions[0].value"),
        ({"field": "event.amount", "op": "between", "value": [5]}, "conditions[0].value"),
        ({"field": "event.amount", "op": "between", "value": [9, 5]}, "conditions[0].value"),
        ({"field": "event.amount", "op": "gt", "value": "lots"}, "conditions[0].value"),
    ],
)
def test_rules_that_cannot_be_evaluated_are_refused(condition: dict[str, Any], path: str) -> None:
    definition = msgspec.convert(
        {"name": "bad", "kind": "fixed", "points": "1", "conditions": [condition]}, RuleDefinition
    )
    with pytest.raises(ConditionError) as info:
        validate_definition(definition)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"kind": "per_amount", "points": "1e400"}, "points"),
        ({"kind": "per_amount", "points": "1000001"}, "points"),
        ({"kind": "per_amount", "points": "1.00001"}, "points"),
        ({"kind": "per_amount", "points": "Infinity"}, "points"),
        ({"kind": "per_amount", "points": "0"}, "points"),
        ({"kind": "per_quantity", "points": "2000000"}, "points"),
        ({"kind": "fixed", "points": "10000001"}, "points"),
        ({"kind": "multiplier", "points": "101"}, "points"),
        ({"kind": "multiplier", "points": "1.23456"}, "points"),
        ({"kind": "per_amount", "points": "1", "per": "1e-30"}, "per"),
        ({"kind": "per_amount", "points": "1", "per": "0.00001"}, "per"),
        ({"kind": "per_amount", "points": "1", "per": "1e400"}, "per"),
        ({"kind": "per_amount", "points": "1", "per": "-1"}, "per"),
        ({"kind": "per_amount", "points": "1", "per": "NaN"}, "per"),
    ],
)
def test_rule_numbers_out_of_range_are_refused(fields: dict[str, Any], path: str) -> None:
    definition = msgspec.convert({"name": "n", **fields}, RuleDefinition)
    with pytest.raises(ConditionError) as info:
        validate_definition(definition, "rules[2]")
    assert info.value.path == f"rules[2].{path}"


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "per_amount", "points": "1000000", "per": "0.0001"},
        {"kind": "per_amount", "points": "0.0001", "per": "1000000"},
        {"kind": "per_amount", "points": "2.50000"},  # trailing zeros are not decimal places
        {"kind": "fixed", "points": "10000000"},
        {"kind": "multiplier", "points": "1.2345"},
        {"kind": "per_quantity", "points": "1E+3"},
    ],
)
def test_rule_numbers_in_range_are_accepted(fields: dict[str, Any]) -> None:
    validate_definition(msgspec.convert({"name": "n", **fields}, RuleDefinition))


@pytest.mark.parametrize(
    ("op", "value", "actual", "expected"),
    [
        ("eq", 5, "5", True),
        ("ne", "a", None, True),
        ("in", ["a"], None, False),
        ("not_in", ["a"], None, True),
        ("exists", True, None, False),
        ("exists", False, None, True),
        ("contains", "ip", "vip", True),
        ("gte", 10, "10.0", True),
        ("lt", 1, "x", False),
    ],
)
def test_condition_operators(op: str, value: Any, actual: Any, expected: bool) -> None:
    condition = Condition("event.x", op, value)  # type: ignore[arg-type]
    check(condition, "c") if op not in ("exists",) and value is not None else None
    assert holds(condition, {"event": {"x": actual}}) is expected
