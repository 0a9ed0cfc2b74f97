"""Survey results (pure): the standardised value of a factor as the texts define it, and the Net Promoter Score.

For factor i with answer levels j, D_i = 100 * sum_j(x_ij * n_ij) / (x_max * sum_j n_ij): x_ij is level j's value,
n_ij the number of answers at it, x_max the highest level value. A first-level factor's D counts every answer of its
sub-factors. NPS = % promoters (9-10) - % detractors (0-6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal

DEFAULT_LEVELS = (
    ("very_satisfied", "Very satisfied", Decimal(100)),
    ("satisfied", "Satisfied", Decimal(75)),
    ("neutral", "Neutral", Decimal(50)),
    ("dissatisfied", "Dissatisfied", Decimal(25)),
    ("very_dissatisfied", "Very dissatisfied", Decimal(0)),
)
_PLACES = Decimal("0.01")


def standardised(counts: Mapping[Decimal, int], x_max: Decimal) -> Decimal | None:
    """D = 100 * sum(x * n) / (x_max * sum n), to 2 places; None without answers (or with x_max 0)."""
    total = sum(counts.values())
    if total == 0 or x_max <= 0:
        return None
    weighted = sum((value * n for value, n in counts.items()), Decimal(0))
    return (Decimal(100) * weighted / (x_max * total)).quantize(_PLACES, ROUND_HALF_EVEN)


def nps(scores: Iterable[int]) -> Decimal | None:
    """Net Promoter Score of 0-10 answers, -100..100 to 1 place; None without answers."""
    values = list(scores)
    promoters = sum(1 for s in values if s >= 9)
    detractors = sum(1 for s in values if s <= 6)
    return nps_of(promoters, len(values) - promoters - detractors, detractors)


def nps_of(promoters: int, passives: int, detractors: int) -> Decimal | None:
    """The Net Promoter Score from the counts of promoters (9-10), passives (7-8) and detractors (0-6)."""
    total = promoters + passives + detractors
    if total == 0:
        return None
    return (Decimal(100) * (promoters - detractors) / total).quantize(Decimal("0.1"), ROUND_HALF_EVEN)


def rate(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
