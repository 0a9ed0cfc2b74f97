"""Earning rules as data, and the pure function that turns an event into awards, rule by rule.

Order of work for one event:

1. rules whose event types, validity window and conditions match (campaign rules also need the campaign's window
   and segments) are taken in priority order;
2. base rules give points: per currency unit (with a rounding mode), per unit of quantity (whole units or not), or a
   fixed bonus, each cut to what its per-event, per-day and per-month caps (per member) still allow; within a
   stacking group in ``best_of`` mode only the largest of what is left survives;
3. multiplier rules add ``(factor - 1) x`` the capped base points (or all capped points), each cut by its own caps,
   again one per ``best_of`` group;
4. the tier's earning multiplier adds its bonus on the capped base points.

Every award line says which rule made it and how, so a tenant can explain every point to a member.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from core.decimals import decimal_bounds
from core.earning.conditions import Condition, ConditionError, all_hold, check
from core.validation import AwareDatetime

RuleKind = Literal["per_amount", "per_quantity", "fixed", "multiplier"]
Rounding = Literal["floor", "round", "ceil"]
ROUNDING = {"floor": ROUND_FLOOR, "round": ROUND_HALF_UP, "ceil": ROUND_CEILING}


class Caps(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    per_event: Annotated[int, Meta(gt=0)] | None = None
    per_day: Annotated[int, Meta(gt=0)] | None = None
    per_month: Annotated[int, Meta(gt=0)] | None = None


class Stacking(msgspec.Struct, forbid_unknown_fields=True):
    group: Annotated[str, Meta(min_length=1, max_length=60)]
    mode: Literal["add", "best_of"] = "add"


class RuleDefinition(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a tenant writes in ``POST /v1/earning-rules`` (and in a campaign's ``rules``)."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    kind: RuleKind
    #: Points per ``per`` currency units (per_amount), per unit (per_quantity), the bonus (fixed), or the factor
    #: (multiplier, e.g. 1.5).
    points: Decimal
    #: per_amount: the amount that earns ``points`` (25 points per EUR 10: points 25, per 10).
    per: Annotated[Decimal, decimal_bounds(gt=0, le=1_000_000, places=4)] = Decimal(1)
    rounding: Rounding = "floor"
    #: per_quantity: only whole units count (1 point per whole litre).
    whole_units: bool = True
    #: per_amount: only events in this currency (default: the program's currency).
    currency: str | None = None
    #: multiplier: multiply the base awards only, or every award so far.
    applies_to: Literal["base", "all"] = "base"
    event_types: list[str] = msgspec.field(default_factory=list)
    conditions: list[Condition] = msgspec.field(default_factory=list)
    match: Literal["all", "any"] = "all"
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    caps: Caps | None = None
    priority: int = 100
    stacking: Stacking | None = None
    #: Counts as base points (tier multipliers and base-point qualification). Default: per_amount and per_quantity.
    base: bool | None = None
    #: Points stay pending this many days before they can be spent.
    pending_days: Annotated[int, Meta(ge=0, le=3650)] = 0


@dataclass(frozen=True)
class Rule:
    """A stored rule (or a campaign's rule) ready to evaluate."""

    id: uuid.UUID
    definition: RuleDefinition
    campaign_id: uuid.UUID | None = None
    campaign_name: str | None = None
    #: Campaign rules: the campaign's own window and audience conditions.
    extra_conditions: tuple[Condition, ...] = ()
    window: tuple[datetime | None, datetime | None] = (None, None)

    @property
    def is_base(self) -> bool:
        d = self.definition
        return d.base if d.base is not None else d.kind in ("per_amount", "per_quantity")


@dataclass(frozen=True)
class AwardLine:
    rule_id: uuid.UUID | None
    rule_name: str
    kind: str
    points: int
    basis: str
    base: bool = False
    campaign_id: uuid.UUID | None = None
    pending_days: int = 0
    capped_from: int | None = None


@dataclass(frozen=True)
class CapUsage:
    """Points each capped rule already gave the member today and this month (from the member's metrics)."""

    day: Mapping[uuid.UUID, int] = field(default_factory=dict)
    month: Mapping[uuid.UUID, int] = field(default_factory=dict)


#: The largest ``points`` of a rule of each kind (per currency unit, per unit, a bonus, a factor) and of ``per``.
MAX_POINTS: Mapping[str, Decimal] = {
    "per_amount": Decimal(1_000_000),
    "per_quantity": Decimal(1_000_000),
    "fixed": Decimal(10_000_000),
    "multiplier": Decimal(100),
}
MAX_PER = Decimal(1_000_000)
#: Rule numbers have at most this many decimal places (0.0001 is the smallest ``per``).
DECIMAL_PLACES = 4


def _check_number(value: Decimal, path: str, high: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise ConditionError(path, "must be a positive number")
    if value > high:
        raise ConditionError(path, f"must be at most {_fmt(high)}")
    if value.normalize().as_tuple().exponent < -DECIMAL_PLACES:  # type: ignore[operator]
        raise ConditionError(path, f"has more than {DECIMAL_PLACES} decimal places")


def validate_definition(definition: RuleDefinition, path: str = "") -> None:
    """Refuse a rule that cannot be evaluated (raises ConditionError naming the field)."""
    prefix = f"{path}." if path else ""
    if definition.kind == "multiplier" and definition.points.is_finite() and definition.points > 100:
        raise ConditionError(f"{prefix}points", "a multiplier above 100 is surely a mistake")
    _check_number(definition.points, f"{prefix}points", MAX_POINTS[definition.kind])
    _check_number(definition.per, f"{prefix}per", MAX_PER)
    for i, condition in enumerate(definition.conditions):
        check(condition, f"{prefix}conditions[{i}]")
        if condition.field.startswith("loyalty."):
            raise ConditionError(
                f"{prefix}conditions[{i}].field",
                "loyalty.* facts are for segments: put the condition in a segment and match member.segments",
            )
    if definition.valid_from and definition.valid_until and definition.valid_from >= definition.valid_until:
        raise ConditionError(f"{prefix}valid_until", "must be after valid_from")
    if definition.kind == "fixed" and definition.points != definition.points.to_integral_value():
        raise ConditionError(f"{prefix}points", "a fixed bonus is a whole number of points")
    if definition.currency is not None and definition.kind != "per_amount":
        raise ConditionError(f"{prefix}currency", "only per_amount rules take a currency")


def _fmt(value: Decimal) -> str:
    """A decimal as people write it: 10, 2.5 (never 1E+1)."""
    return format(value.normalize(), "f")


def _in_window(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    return (start is None or at >= start) and (end is None or at < end)


def applies(rule: Rule, facts: Mapping[str, Any], occurred_at: datetime, program_currency: str) -> bool:
    d = rule.definition
    event = facts["event"]
    if d.event_types and event["type"] not in d.event_types:
        return False
    if not _in_window(d.valid_from, d.valid_until, occurred_at) or not _in_window(*rule.window, occurred_at):
        return False
    if d.kind == "per_amount" and (
        event.get("amount") is None or event.get("currency") != (d.currency or program_currency)
    ):
        return False
    if d.kind == "per_quantity" and event.get("quantity") is None:
        return False
    return all_hold(d.conditions, facts, d.match) and all_hold(rule.extra_conditions, facts, "all")


def _base_points(rule: Rule, event: Mapping[str, Any]) -> tuple[int, str]:
    d = rule.definition
    if d.kind == "per_amount":
        amount = Decimal(str(event["amount"]))
        raw = amount / d.per * d.points
        points = int(raw.to_integral_value(rounding=ROUNDING[d.rounding]))
        unit = f"{_fmt(d.per)} {event['currency']}" if d.per != 1 else event["currency"]
        return points, f"{amount} {event['currency']} x {_fmt(d.points)} per {unit} ({d.rounding})"
    if d.kind == "per_quantity":
        quantity = Decimal(str(event["quantity"]))
        counted = quantity.to_integral_value(rounding=ROUND_FLOOR) if d.whole_units else quantity
        points = int((counted * d.points).to_integral_value(rounding=ROUNDING[d.rounding]))
        unit = event.get("unit") or "unit"
        whole = " whole" if d.whole_units else ""
        return points, f"{_fmt(counted)}{whole} {unit} x {_fmt(d.points)} per {unit}"
    return int(d.points), "fixed bonus"


def _best_of(lines: list[tuple[Rule, AwardLine]]) -> list[tuple[Rule, AwardLine]]:
    """Within each ``best_of`` stacking group keep only the largest award (earliest priority wins ties)."""
    best: dict[str, tuple[Rule, AwardLine]] = {}
    kept: list[tuple[Rule, AwardLine]] = []
    for rule, line in lines:
        stacking = rule.definition.stacking
        if stacking is None or stacking.mode == "add":
            kept.append((rule, line))
        elif stacking.group not in best or line.points > best[stacking.group][1].points:
            best[stacking.group] = (rule, line)
    kept.extend(best.values())
    order = {id(line): i for i, (_, line) in enumerate(lines)}
    return sorted(kept, key=lambda pair: order[id(pair[1])])


def _cap(rule: Rule, points: int, usage: CapUsage) -> int:
    caps = rule.definition.caps
    if caps is None:
        return points
    allowed = points
    if caps.per_event is not None:
        allowed = min(allowed, caps.per_event)
    if caps.per_day is not None:
        allowed = min(allowed, max(0, caps.per_day - usage.day.get(rule.id, 0)))
    if caps.per_month is not None:
        allowed = min(allowed, max(0, caps.per_month - usage.month.get(rule.id, 0)))
    return allowed


def _capped(rule: Rule, line: AwardLine, usage: CapUsage) -> AwardLine:
    allowed = _cap(rule, line.points, usage)
    if allowed == line.points:
        return line
    return AwardLine(**{**line.__dict__, "points": allowed, "capped_from": line.points})


def compute(
    rules: Sequence[Rule],
    facts: Mapping[str, Any],
    *,
    occurred_at: datetime,
    program_currency: str,
    tier_multiplier: Decimal | None = None,
    tier_name: str | None = None,
    usage: CapUsage | None = None,
) -> list[AwardLine]:
    """The awards for one event (points > 0 only, plus capped lines that were cut to nothing are dropped)."""
    usage = usage or CapUsage()
    matching = sorted(
        (r for r in rules if applies(r, facts, occurred_at, program_currency)),
        key=lambda r: (r.definition.priority, str(r.id)),
    )
    base_lines: list[tuple[Rule, AwardLine]] = []
    for rule in matching:
        if rule.definition.kind == "multiplier":
            continue
        points, basis = _base_points(rule, facts["event"])
        base_lines.append((rule, _capped(rule, _line(rule, points, basis), usage)))
    base_lines = _best_of(base_lines)

    multiplier_lines: list[tuple[Rule, AwardLine]] = []
    for rule in matching:
        if rule.definition.kind != "multiplier":
            continue
        d = rule.definition
        # On what the base rules actually give: a capped base is multiplied as capped.
        pool = [line for r, line in base_lines if d.applies_to == "all" or line.base]
        total = sum(line.points for line in pool)
        bonus = int((total * (d.points - 1)).to_integral_value(rounding=ROUNDING[d.rounding]))
        line = _line(rule, bonus, f"{total} points x {_fmt(d.points)} - {total}")
        multiplier_lines.append((rule, _capped(rule, line, usage)))
    multiplier_lines = _best_of(multiplier_lines)

    capped = [line for _, line in [*base_lines, *multiplier_lines] if line.points > 0]

    if tier_multiplier is not None and tier_multiplier != 1:
        base_total = sum(line.points for line in capped if line.base)
        bonus = int((base_total * (tier_multiplier - 1)).to_integral_value(rounding=ROUND_FLOOR))
        if bonus > 0:
            capped.append(
                AwardLine(
                    None,
                    f"{tier_name or 'tier'} bonus",
                    "tier_multiplier",
                    bonus,
                    f"{base_total} base points x {_fmt(tier_multiplier)} - {base_total}",
                )
            )
    return capped


def _line(rule: Rule, points: int, basis: str) -> AwardLine:
    name = rule.definition.name if rule.campaign_name is None else f"{rule.campaign_name}: {rule.definition.name}"
    return AwardLine(
        rule_id=rule.id,
        rule_name=name,
        kind=rule.definition.kind,
        points=points,
        basis=basis,
        base=rule.is_base,
        campaign_id=rule.campaign_id,
        pending_days=rule.definition.pending_days,
    )


def capped_rules(rules: Sequence[Rule]) -> list[Rule]:
    return [r for r in rules if r.definition.caps and (r.definition.caps.per_day or r.definition.caps.per_month)]
