"""Decimals as the API takes them: exact, a JSON number or a string of digits, within the bounds their field declares.

A request's decimal (an amount, litres, a price, a multiplier) is read exactly (``12.50`` is never the float
12.4999...) from a JSON number or a string. A plain ``Decimal`` field takes any decimal written as
:data:`DECIMAL_PATTERN` says; a field declared with :func:`decimal_bounds` states its range and decimal places::

    Litres = Annotated[Decimal, decimal_bounds(gt=0, le=100_000, places=3)]

and that one declaration is both halves of the contract:

* the OpenAPI schema (:mod:`core.http.openapi`) declares the field as a JSON number with ``exclusiveMinimum``,
  ``maximum`` and ``multipleOf`` (``0.001``), or a string whose ``pattern`` admits exactly the same values written in
  plain digits (:meth:`DecimalRule.string_pattern`);
* the input gate (:mod:`core.http.inputs`) refuses anything else before any handler runs, with a 422 naming the field
  (:meth:`DecimalRule.problem`).

msgspec's own numeric constraints (``Meta(ge=...)``) do not apply to ``Decimal``, hence this. Only the static part of
a rule is declared here; a bound that depends on stored data (the tenant's largest fill-up, the currency's decimals)
stays a check in the route, documented as a cross-field rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

#: A decimal written as a string, for a field without declared bounds: digits, an optional sign, fraction and
#: exponent (``"12.50"``, ``"-3"``, ``"1e3"``). ``NaN``, ``Infinity``, spaces, ``_`` and other digits are refused.
DECIMAL_PATTERN = r"^-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?$"

#: The widest rule: an upper bound of at most 10**15 and at most 6 decimal places (see :meth:`DecimalRule.of`).
MAX_BOUND = 10**15
MAX_PLACES = 6

#: Where :func:`decimal_bounds` keeps its rule in ``msgspec.Meta.extra`` (what the input gate reads).
RULE_KEY = "fealty.decimal_rule"


def _ecma(pattern: str) -> re.Pattern[str]:
    """``pattern`` read as JSON Schema (ECMA-262) reads it: ``$`` is the end of the string, never before a final
    newline as Python's ``$`` is."""
    assert pattern.startswith("^") and pattern.endswith("$")
    return re.compile(pattern[:-1] + r"\Z")


def _blocks(low: int, high: int) -> list[str]:
    """Alternatives for the integers ``low`` to ``high`` (1 <= low <= high, of one width): the range cut into
    aligned blocks of 10**k, the blocks of one prefix merged into a digit class."""
    blocks: list[tuple[str, int, int]] = []  # (prefix, last digit, k) of each block [start, start + 10**k - 1]
    start = low
    while start <= high:
        k = 0
        while start % 10 ** (k + 1) == 0 and start + 10 ** (k + 1) - 1 <= high:
            k += 1
        digits = str(start // 10**k)
        blocks.append((digits[:-1], int(digits[-1]), k))
        start += 10**k
    parts: list[str] = []
    i = 0
    while i < len(blocks):
        prefix, first, k = blocks[i]
        last = first
        while i + 1 < len(blocks) and blocks[i + 1][::2] == (prefix, k) and blocks[i + 1][1] == last + 1:
            i += 1
            last = blocks[i][1]
        digit = str(first) if first == last else f"[{first}-{last}]"
        parts.append(prefix + digit + ("" if k == 0 else "[0-9]" if k == 1 else f"[0-9]{{{k}}}"))
        i += 1
    return parts


def _integers(low: int, high: int | None) -> list[str]:
    """Alternatives for the integers ``low`` to ``high`` (None: no end), 0 <= low, in canonical form (no leading
    zeros); the widths the range covers whole are one alternative (``[1-9][0-9]{0,4}``: 1 to 99999)."""
    parts: list[str] = []
    if low == 0:
        parts.append("0")
        low = 1
    if high is not None and low > high:
        return parts
    whole_from = whole_to = -1  # the extra digits (width - 1) of the first and last widths covered whole
    width = len(str(low))
    while high is None or 10 ** (width - 1) <= high:
        first = max(low, 10 ** (width - 1))
        last = 10**width - 1 if high is None else min(high, 10**width - 1)
        if first == 10 ** (width - 1) and last == 10**width - 1:
            whole_from = width - 1 if whole_from < 0 else whole_from
            whole_to = width - 1
            if high is None:
                break  # and every width after it
        else:
            parts += _blocks(first, last)
        width += 1
    if whole_from >= 0:
        if high is None:
            extra = "*" if whole_from == 0 else f"{{{whole_from},}}"
        elif whole_from == whole_to:
            extra = "" if whole_from == 0 else f"{{{whole_from}}}"
        else:
            extra = f"{{{whole_from},{whole_to}}}"
        parts.append("[1-9]" if whole_to == 0 and high is not None else f"[1-9][0-9]{extra}")
    return parts


@dataclass(frozen=True, slots=True)
class DecimalRule:
    """A decimal field's static rule: its bounds (integers, 0 or more) and its most decimal places."""

    low: int | None = None
    low_inclusive: bool = True
    high: int | None = None
    high_inclusive: bool = True
    places: int | None = None
    #: The string form's regular expression (JSON Schema's ``pattern``), worked out from the bounds.
    pattern: str = field(default="", compare=False)
    _match: re.Pattern[str] = field(default=re.compile(""), compare=False, repr=False)

    @classmethod
    def of(
        cls,
        *,
        gt: int | None = None,
        ge: int | None = None,
        lt: int | None = None,
        le: int | None = None,
        places: int | None = None,
    ) -> DecimalRule:
        if (gt is not None and ge is not None) or (lt is not None and le is not None):
            raise ValueError("give gt or ge, lt or le, not both")
        low, high = gt if gt is not None else ge, lt if lt is not None else le
        if low is None or low < 0 or (high is not None and high <= low) or (places is not None and places < 0):
            # A lower bound of 0 or more: every rule the API needs, and what keeps the string pattern simple.
            raise ValueError("a decimal rule needs a lower bound of 0 or more, below its upper bound")
        if high is None or high > MAX_BOUND or places is None or places > MAX_PLACES:
            # Answers carry a field's decimals as strings (the same schema components): within these, a value read
            # from any JSON number a client library writes is written back in plain digits, as the pattern says.
            raise ValueError(
                f"a decimal rule needs an upper bound of at most {MAX_BOUND} and at most {MAX_PLACES} places"
            )
        rule = cls(low, ge is not None, high, lt is None, places)
        pattern = "^(?:" + "|".join(rule._alternatives()) + ")$"
        object.__setattr__(rule, "pattern", pattern)
        object.__setattr__(rule, "_match", _ecma(pattern))
        return rule

    def _fraction(self, kind: str) -> str:
        """A fraction's expression: ``any`` (optional, up to ``places`` significant digits), ``zero`` (optional,
        only zeros), ``nonzero`` (required, not only zeros). Trailing zeros are not places: ``"1.50"`` is 1.5."""
        p = self.places
        if kind == "zero":
            return r"(?:\.0+)?"
        if kind == "any":
            return r"(?:\.[0-9]+)?" if p is None else r"(?:\.0+)?" if p == 0 else rf"(?:\.[0-9]{{1,{p}}}0*)?"
        if p is None:
            return r"\.0*[1-9][0-9]*"
        choices = [("0" * z) + "[1-9]" + (f"[0-9]{{0,{p - 1 - z}}}" if p - 1 - z > 0 else "") for z in range(p)]
        return r"\.(?:" + "|".join(choices) + ")0*"

    def _alternatives(self) -> list[str]:
        assert self.low is not None
        # Whole parts with any fraction: from the lower bound (past it when it is exclusive) to below the upper one.
        first = self.low if self.low_inclusive else self.low + 1
        last = None if self.high is None else self.high - 1
        found: list[str] = []
        if last is None:
            found += [w + self._fraction("any") for w in _integers(first, None)]
        elif first <= last:
            found += [w + self._fraction("any") for w in _integers(first, last)]
        # The exclusive lower bound itself, with a fraction that is not zero (0.5 is more than 0).
        if not self.low_inclusive and self.places != 0 and (self.high is None or self.low < self.high):
            found.append(str(self.low) + self._fraction("nonzero"))
        # The inclusive upper bound itself, with no fraction but zeros.
        if self.high is not None and self.high_inclusive:
            found.append(str(self.high) + self._fraction("zero"))
        return found

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the field: a number, or a string of plain digits, both within the rule."""
        number: dict[str, Any] = {"type": "number"}
        if self.low is not None:
            number["minimum" if self.low_inclusive else "exclusiveMinimum"] = self.low
        if self.high is not None:
            number["maximum" if self.high_inclusive else "exclusiveMaximum"] = self.high
        if self.places is not None:
            number["multipleOf"] = 1 if self.places == 0 else float(Decimal(1).scaleb(-self.places))
        return {
            "anyOf": [number, {"type": "string", "pattern": self.pattern}],
            "description": f"A decimal {self.describe()}, as a JSON number or a string of digits.",
        }

    def describe(self) -> str:
        """The rule in words: ``more than 0 and at most 100000, with at most 3 decimal places``."""
        words = []
        if self.low is not None:
            words.append(f"{'at least' if self.low_inclusive else 'more than'} {self.low}")
        if self.high is not None:
            words.append(f"{'at most' if self.high_inclusive else 'less than'} {self.high}")
        said = " and ".join(words)
        if self.places is not None:
            unit = "place" if self.places == 1 else "places"
            said += ", a whole number" if self.places == 0 else f", with at most {self.places} decimal {unit}"
        return said

    def problem(self, value: Decimal | str | int) -> str | None:
        """What is wrong with ``value`` (as decoded from JSON: a string, an integer or an exact decimal), or None."""
        if isinstance(value, str):
            if self._match.match(value) is None:
                return f"must be a decimal {self.describe()}, written in digits (such as '12.5')"
            return None  # the pattern admits exactly the values within the rule
        number = Decimal(value)
        if not number.is_finite():
            return "must be a finite decimal"
        too_low = self.low is not None and (number < self.low if self.low_inclusive else number <= self.low)
        too_high = self.high is not None and (number > self.high if self.high_inclusive else number >= self.high)
        if too_low or too_high or (self.places is not None and places(number) > self.places):
            return f"must be a decimal {self.describe()}"
        return None


def places(value: Decimal) -> int:
    """Significant decimal places: ``40.500`` has 1, ``1E+2`` none."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


_ANY_MATCH = _ecma(DECIMAL_PATTERN)


def decimal_problem(value: Any, rule: DecimalRule | None) -> str | None:
    """What is wrong with a decimal as the request wrote it (a JSON string, integer or number read exactly), under
    ``rule`` (None: a plain ``Decimal`` field, only the string form is checked). Other JSON types are the decoder's to
    refuse."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    if rule is not None:
        return rule.problem(value)
    if isinstance(value, str) and _ANY_MATCH.match(value) is None:
        return "must be a decimal written in digits (such as '12.50' or '-3')"
    return None


def decimal_bounds(
    *,
    gt: int | None = None,
    ge: int | None = None,
    lt: int | None = None,
    le: int | None = None,
    places: int | None = None,
) -> msgspec.Meta:
    """The constraints of a ``Decimal`` field (``Annotated[Decimal, decimal_bounds(gt=0, le=10)]``): more than
    (``gt``) or at least (``ge``) a whole number of 0 or more, less than (``lt``) or at most (``le``) another, with
    at most ``places`` decimal places. Declared in the OpenAPI schema and enforced by the input gate alike."""
    rule = DecimalRule.of(gt=gt, ge=ge, lt=lt, le=le, places=places)
    return msgspec.Meta(extra_json_schema=rule.schema(), extra={RULE_KEY: rule})


def rule_of(extra: dict[str, Any] | None) -> DecimalRule | None:
    """The rule :func:`decimal_bounds` left in a field's ``Meta.extra``, if any."""
    found = (extra or {}).get(RULE_KEY)
    return found if isinstance(found, DecimalRule) else None


__all__ = ["DECIMAL_PATTERN", "DecimalRule", "decimal_bounds", "decimal_problem", "places", "rule_of"]
