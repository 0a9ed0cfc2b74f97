"""The condition language shared by earning rules, campaigns and segments (pure).

A condition compares one field of the facts with a value: ``{"field": "event.attributes.grade", "op": "in",
"value": ["premium", "super"]}``. Fields are dotted paths into the facts; numbers compare as decimals. Facts about an
event are ``event.*`` (``type``, ``amount``, ``currency``, ``quantity``, ``unit``, ``weekday`` 1-7 and ``hour``
0-23 in the program's time zone, ``attributes.*``) and ``member.*`` (``tier``, ``tier_rank``, ``segments``,
``attributes.*``, ``locale``, ``days_enrolled``, ``days_since_last_activity``); segments add ``metric.<name>.<window>``
(windows: ``lifetime``, ``year``, ``<N>d``) and ``loyalty.*`` (the member's figures from the last loyalty run:
``rfm_segment``, ``churn_probability``, ``loyalty_type``, ``loyalty_index``, ``r_score``... see
:data:`core.measurement.facts.SEGMENT_FACTS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "exists", "contains", "overlaps"]
FIELD_PATTERN = re.compile(r"^(event|member|metric|loyalty)(\.[A-Za-z0-9_:\-]+)+$")
_MISSING = object()


class Condition(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    field: str
    op: Op
    value: Any = None


class ConditionError(ValueError):
    """A condition that cannot be evaluated, with the path of the offending part."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def check(condition: Condition, path: str) -> None:
    """Refuse, at write time, a condition that could never be evaluated."""
    if not FIELD_PATTERN.match(condition.field):
        raise ConditionError(f"{path}.field", f"'{condition.field}' is not event.*, member.*, metric.* or loyalty.*")
    op, value = condition.op, condition.value
    if op in ("in", "not_in", "overlaps") and not isinstance(value, list):
        raise ConditionError(f"{path}.value", f"'{op}' needs a list")
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_number(v) is not None for v in value)):
            raise ConditionError(f"{path}.value", "'between' needs [low, high] numbers")
        if _number(value[0]) > _number(value[1]):  # type: ignore[operator]
            raise ConditionError(f"{path}.value", "'between' needs low <= high")
    if op in ("gt", "gte", "lt", "lte") and _number(value) is None:
        raise ConditionError(f"{path}.value", f"'{op}' needs a number")
    if op in ("eq", "ne", "contains") and value is None:
        raise ConditionError(f"{path}.value", f"'{op}' needs a value")


def lookup(facts: Mapping[str, Any], field: str) -> Any:
    node: Any = facts
    for part in field.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _equal(actual: Any, expected: Any) -> bool:
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None:
        return a == e
    return bool(actual == expected)


def holds(condition: Condition, facts: Mapping[str, Any]) -> bool:
    actual = lookup(facts, condition.field)
    op, value = condition.op, condition.value
    if op == "exists":
        return (actual is not _MISSING and actual is not None) == (value is not False)
    if actual is _MISSING or actual is None:
        return op in ("ne", "not_in")
    if op == "eq":
        return _equal(actual, value)
    if op == "ne":
        return not _equal(actual, value)
    if op == "in":
        return any(_equal(actual, v) for v in value)
    if op == "not_in":
        return not any(_equal(actual, v) for v in value)
    if op == "overlaps":
        items = actual if isinstance(actual, Sequence | set | frozenset) and not isinstance(actual, str) else [actual]
        return any(_equal(item, v) for item in items for v in value)
    if op == "contains":
        if isinstance(actual, str):
            return str(value) in actual
        return isinstance(actual, Sequence | set | frozenset) and any(_equal(item, value) for item in actual)
    number = _number(actual)
    if number is None:
        return False
    if op == "between":
        low, high = _number(value[0]), _number(value[1])
        return low is not None and high is not None and low <= number <= high
    bound = _number(value)
    if bound is None:
        return False
    return {
        "gt": number > bound,
        "gte": number >= bound,
        "lt": number < bound,
        "lte": number <= bound,
    }[op]


def all_hold(conditions: Sequence[Condition], facts: Mapping[str, Any], match: Literal["all", "any"] = "all") -> bool:
    if not conditions:
        return True
    results = (holds(c, facts) for c in conditions)
    return all(results) if match == "all" else any(results)


def metric_fields(conditions: Sequence[Condition]) -> set[tuple[str, str]]:
    """``(metric, window)`` pairs that conditions read (``metric.spend.90d`` -> ``("spend", "90d")``)."""
    found = set()
    for condition in conditions:
        if condition.field.startswith("metric."):
            _, rest = condition.field.split(".", 1)
            name, _, window = rest.rpartition(".")
            if name:
                found.add((name, window))
    return found
