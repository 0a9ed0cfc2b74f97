"""The analytic hierarchy process (Saaty), pure: judgement matrices, priorities, consistency, synthesis.

A node of the hierarchy compares its n children pairwise on Saaty's 1-9 scale. Only the upper triangle is stated
(``a[i][j]`` for i < j: how much more important child i is than child j); the diagonal is 1 and the lower triangle the
reciprocals. The children's local weights are the principal (Perron) eigenvector of that matrix, normalised to sum 1;
``lambda_max`` its eigenvalue; ``CI = (lambda_max - n) / (n - 1)``; ``CR = CI / RI(n)`` with Saaty's random index.
A matrix with ``CR >= 0.10`` is too inconsistent to use. The judgement that disagrees most with the weights is the
one whose ratio to the weights' own ratio, ``a[i][j] * w[j] / w[i]`` (or its inverse), is largest.

Global weights multiply the local weights down the tree; a node's score is the weighted mean of its children's scores
(over the children that have a score, so a leaf nobody answered does not count as zero).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

#: Saaty's random consistency index by matrix size (Saaty 1980; sizes 11-15 from Saaty's later table).
RANDOM_INDEX: dict[int, float] = {
    1: 0.0,
    2: 0.0,
    3: 0.58,
    4: 0.90,
    5: 1.12,
    6: 1.24,
    7: 1.32,
    8: 1.41,
    9: 1.45,
    10: 1.49,
    11: 1.51,
    12: 1.48,
    13: 1.56,
    14: 1.57,
    15: 1.59,
}
MAX_CHILDREN = max(RANDOM_INDEX)
CR_LIMIT = 0.10
SCALE_MIN = 1 / 9
SCALE_MAX = 9.0


class JudgementError(ValueError):
    """A judgement list that is not an upper triangle of values on the 1-9 scale; ``path`` names the offending part
    relative to the node's ``judgements``."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(detail)
        self.path = path
        self.detail = detail


def parse_judgement(value: float | int | str, path: str) -> float:
    """A judgement as a number: ``3``, ``0.2``, ``"1/5"`` or ``"5"``, between 1/9 and 9."""
    if isinstance(value, bool):
        raise JudgementError(path, "a judgement is a number on Saaty's scale (1/9 to 9)")
    try:
        number = float(Fraction(value.strip())) if isinstance(value, str) else float(value)
    except (ValueError, ZeroDivisionError):
        raise JudgementError(path, f"'{value}' is not a number or a fraction like 1/3") from None
    if not (SCALE_MIN - 1e-9 <= number <= SCALE_MAX + 1e-9):
        raise JudgementError(path, f"{value} is outside Saaty's scale (1/9 to 9)")
    return number


def matrix_from_upper(n: int, upper: Sequence[Sequence[float | int | str]]) -> np.ndarray:
    """The full reciprocal matrix from the rows of its upper triangle: ``[[a12, a13, ...], [a23, ...], ...]``."""
    if n < 1 or n > MAX_CHILDREN:
        raise JudgementError("", f"a node compares 1 to {MAX_CHILDREN} factors, not {n}")
    if len(upper) != n - 1:
        raise JudgementError("", f"{n} factors need {n - 1} rows of judgements (the upper triangle), got {len(upper)}")
    matrix = np.ones((n, n))
    for i, row in enumerate(upper):
        if len(row) != n - 1 - i:
            raise JudgementError(
                f"[{i}]", f"row {i} of the upper triangle needs {n - 1 - i} judgements, got {len(row)}"
            )
        for k, value in enumerate(row):
            j = i + 1 + k
            a = parse_judgement(value, f"[{i}][{k}]")
            matrix[i, j] = a
            matrix[j, i] = 1.0 / a
    return matrix


@dataclass(frozen=True)
class Disagreement:
    """The stated judgement ``a[row][column]`` that departs most from what the weights imply (``w[row]/w[column]``)."""

    row: int
    column: int
    given: float
    implied: float

    @property
    def path(self) -> str:
        """Where it sits in the upper-triangle list: ``[row][column - row - 1]``."""
        return f"[{self.row}][{self.column - self.row - 1}]"


@dataclass(frozen=True)
class Priorities:
    weights: tuple[float, ...]
    lambda_max: float
    ci: float
    ri: float
    cr: float
    disagreement: Disagreement | None

    @property
    def consistent(self) -> bool:
        return self.cr < CR_LIMIT


def priorities(matrix: np.ndarray) -> Priorities:
    """Principal eigenvector weights, lambda_max, CI, RI and CR of a positive reciprocal matrix."""
    n = matrix.shape[0]
    if n == 1:
        return Priorities((1.0,), 1.0, 0.0, 0.0, 0.0, None)
    values, vectors = np.linalg.eig(matrix)
    k = int(np.argmax(values.real))
    vector = np.abs(vectors[:, k].real)  # Perron: one sign throughout
    weights = vector / vector.sum()
    lambda_max = float(values[k].real)
    # Below rounding noise a consistent matrix is consistent (lambda_max >= n always holds in exact arithmetic).
    ci = max(0.0, (lambda_max - n) / (n - 1))
    if ci < 1e-12:
        ci = 0.0
    ri = RANDOM_INDEX[n]
    cr = ci / ri if ri else 0.0
    ratio = matrix * np.outer(1 / weights, weights)  # a_ij * w_j / w_i: 1 where a judgement agrees with the weights
    spread = np.maximum(ratio, 1 / ratio)
    spread[np.tril_indices(n)] = 0.0
    i, j = np.unravel_index(int(np.argmax(spread)), spread.shape)
    disagreement = Disagreement(int(i), int(j), float(matrix[i, j]), float(weights[i] / weights[j])) if n > 2 else None
    return Priorities(tuple(float(w) for w in weights), lambda_max, ci, ri, cr, disagreement)


# --- hierarchies ----------------------------------------------------------------------------------------------------


@dataclass
class Node:
    """A factor of the hierarchy (the goal at the root): its children, their judgements and, once computed, their
    local weights and the node's global weight."""

    code: str
    children: list[Node] = field(default_factory=list)
    judgements: Sequence[Sequence[float | int | str]] = ()
    #: Set by :func:`weigh`.
    priorities: Priorities | None = None
    global_weight: float = 1.0

    @property
    def is_leaf(self) -> bool:
        return not self.children


class InconsistentNode(ValueError):
    def __init__(self, node: Node, result: Priorities) -> None:
        super().__init__(f"{node.code}: CR {result.cr:.3f} >= {CR_LIMIT}")
        self.node = node
        self.result = result


def weigh(root: Node, *, enforce: bool = True) -> None:
    """Compute every node's local priorities and every factor's global weight, top down.

    Raises :class:`JudgementError` (with the node's code in ``path``) for malformed judgements and, with
    ``enforce``, :class:`InconsistentNode` for the first node whose CR is 0.10 or more.
    """
    stack = [root]
    root.global_weight = 1.0
    while stack:
        node = stack.pop()
        if node.is_leaf:
            continue
        try:
            matrix = matrix_from_upper(len(node.children), node.judgements)
        except JudgementError as exc:
            raise JudgementError(f"{node.code}{exc.path}", exc.detail) from None
        result = priorities(matrix)
        if enforce and not result.consistent:
            raise InconsistentNode(node, result)
        node.priorities = result
        for child, weight in zip(node.children, result.weights, strict=True):
            child.global_weight = node.global_weight * weight
            stack.append(child)


def leaves(root: Node) -> list[Node]:
    found: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_leaf:
            found.append(node)
        else:
            stack.extend(reversed(node.children))
    return found


def scores(root: Node, leaf_values: Mapping[str, float]) -> dict[str, float]:
    """Each node's score from its leaves' values (0-100): the weighted mean of the children that have a score, by
    their local weights. Nodes without any scored leaf are left out. Needs :func:`weigh` first."""
    out: dict[str, float] = {}

    def visit(node: Node) -> float | None:
        if node.is_leaf:
            value = leaf_values.get(node.code)
            if value is not None:
                out[node.code] = float(value)
            return None if value is None else float(value)
        assert node.priorities is not None, "weigh() first"
        total = weight_sum = 0.0
        for child, weight in zip(node.children, node.priorities.weights, strict=True):
            score = visit(child)
            if score is not None:
                total += weight * score
                weight_sum += weight
        if weight_sum == 0.0:
            return None
        out[node.code] = total / weight_sum
        return out[node.code]

    visit(root)
    return out


def goal_scorer(root: Node) -> Callable[[Mapping[str, float]], float | None]:
    """The goal's score alone, as :func:`scores` computes it (the same sums in the same order, so the same float), with
    the tree flattened once: for scoring many members against one weighed tree. Needs :func:`weigh` first."""
    leaf_codes: list[tuple[int, str]] = []
    steps: list[tuple[int, list[tuple[int, float]]]] = []  # children before parents

    def flatten(node: Node) -> int:
        if node.is_leaf:
            leaf_codes.append((len(leaf_codes) + len(steps), node.code))
            return leaf_codes[-1][0]
        assert node.priorities is not None, "weigh() first"
        weights = node.priorities.weights
        children = [(flatten(child), float(weight)) for child, weight in zip(node.children, weights, strict=True)]
        steps.append((len(leaf_codes) + len(steps), children))
        return steps[-1][0]

    top = flatten(root)
    size = top + 1

    def goal(leaf_values: Mapping[str, float]) -> float | None:
        slots: list[float | None] = [None] * size
        for slot, code in leaf_codes:
            value = leaf_values.get(code)
            slots[slot] = None if value is None else float(value)
        for slot, children in steps:
            total = weight_sum = 0.0
            for child, weight in children:
                score = slots[child]
                if score is not None:
                    total += weight * score
                    weight_sum += weight
            slots[slot] = None if weight_sum == 0.0 else total / weight_sum
        return slots[top]

    return goal


def coverage(root: Node, answered: Mapping[str, object]) -> float:
    """Share of the goal's weight carried by the leaves that have a value."""
    return sum(leaf.global_weight for leaf in leaves(root) if answered.get(leaf.code) is not None)


# --- standardising survey answers and member facts ------------------------------------------------------------------

#: The five levels of a satisfaction answer and their standardised value (0-100, evenly spaced).
FIVE_LEVELS: dict[str, float] = {
    "very_satisfied": 100.0,
    "satisfied": 75.0,
    "neutral": 50.0,
    "dissatisfied": 25.0,
    "very_dissatisfied": 0.0,
}


def standardise_levels(counts: Mapping[str, int]) -> tuple[float | None, int]:
    """A factor's standardised value (0-100) from its answers counted per level, and how many answers there were."""
    total = sum(counts.values())
    if total == 0:
        return None, 0
    return sum(FIVE_LEVELS[level] * count for level, count in counts.items()) / total, total


def linear(value: float, low: float, high: float) -> float:
    """``low`` maps to 0 and ``high`` to 100, clipped (``high < low`` reverses the scale: fewer is better)."""
    if high == low:
        return 100.0 if value >= high else 0.0
    return float(min(100.0, max(0.0, (value - low) / (high - low) * 100.0)))
