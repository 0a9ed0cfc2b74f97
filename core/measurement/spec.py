"""A measurement model as a tenant states it (the body of ``/v1/measurement/models``), checked and weighed.

A model is a factor hierarchy under a goal: ``factors`` with the goal's ``judgements`` (the upper triangle of the
pairwise matrix, row by row), and each factor either has ``factors`` of its own (and their ``judgements``) or is a
leaf. In a ``loyalty`` model every leaf says how a member fact becomes 0-100 (``mapping``); in a ``satisfaction``
model leaves are survey factors whose standardised values arrive with the results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from core.measurement import ahp

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
MAX_DEPTH = 4
Kind = Literal["satisfaction", "loyalty"]
Judgement = float | str
#: Member facts a loyalty leaf can read besides ``member.attributes.<name>`` (kept by the nightly loyalty job).
LOYALTY_FACTS = (
    "recency_days",
    "frequency",
    "monetary",
    "repeat_purchases",
    "return_rate",
    "tenure_days",
    "price_sensitivity",
    "incident_tolerance",
    "share_of_need",
    "churn_probability",
    "rfm_score",
)
SOURCE = re.compile(r"^(member\.attributes\.[A-Za-z0-9_:\-]{1,80}|loyalty\.(" + "|".join(LOYALTY_FACTS) + "))$")


class Mapping0To100(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How a member fact becomes a 0-100 value: ``categories`` (value -> score), ``linear`` (``low`` -> 0,
    ``high`` -> 100, clipped; ``high < low`` when fewer is better) or ``boolean`` (true -> 100, false -> 0).
    ``default`` when the member has no such fact."""

    source: Annotated[str, Meta(max_length=120)]
    kind: Literal["categories", "linear", "boolean"]
    categories: dict[str, Annotated[float, Meta(ge=0, le=100)]] | None = None
    low: float | None = None
    high: float | None = None
    default: Annotated[float, Meta(ge=0, le=100)] = 0.0


class FactorIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Annotated[str, Meta(min_length=1, max_length=60)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    factors: list[FactorIn] = []
    judgements: list[list[Judgement]] = []
    mapping: Mapping0To100 | None = None
    description: Annotated[str, Meta(max_length=1000)] | None = None


class ModelSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The hierarchy: the goal's ``factors`` and ``judgements``."""

    factors: list[FactorIn]
    judgements: list[list[Judgement]] = []


class SpecError(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class Inconsistent(ValueError):
    """A node whose CR is 0.10 or more: where it is, its consistency and the judgement that disagrees most."""

    def __init__(self, field: str, node: str, result: ahp.Priorities, children: list[str]) -> None:
        self.field = field
        self.node = node
        self.result = result
        d = result.disagreement
        assert d is not None
        self.judgement = {
            "path": f"{field}{d.path}",
            "row": children[d.row],
            "column": children[d.column],
            "given": round(d.given, 4),
            "implied": round(d.implied, 4),
        }
        super().__init__(
            f"The judgements of '{node}' are too inconsistent: CR {result.cr:.3f} (must be below {ahp.CR_LIMIT}). "
            f"The judgement that disagrees most is {children[d.row]} over {children[d.column]}: "
            f"{_fraction(d.given)} given, the other judgements imply about {_fraction(d.implied)}."
        )


def _fraction(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"1/{1 / value:.2f}"


def build(spec: ModelSpec, kind: Kind) -> tuple[ahp.Node, dict[str, FactorIn]]:
    """The weighed tree, and every leaf factor by code. Raises :class:`SpecError` or :class:`Inconsistent`."""
    seen: dict[str, FactorIn] = {}
    paths: dict[str, str] = {"goal": ""}

    def node_of(
        factors: list[FactorIn], judgements: list[list[Judgement]], code: str, path: str, depth: int
    ) -> ahp.Node:
        prefix = f"{path}." if path else ""
        if not factors:
            raise SpecError(f"{prefix}factors", "a node needs at least one factor")
        if len(factors) > ahp.MAX_CHILDREN:
            raise SpecError(f"{prefix}factors", f"at most {ahp.MAX_CHILDREN} factors under one node")
        if depth > MAX_DEPTH:
            raise SpecError(f"{prefix}factors", f"at most {MAX_DEPTH} levels of factors")
        children = []
        for i, factor in enumerate(factors):
            here = f"{prefix}factors[{i}]"
            if not CODE.match(factor.code) or factor.code == "goal":
                raise SpecError(f"{here}.code", "lower-case letters, digits, - and _ (and not 'goal')")
            if factor.code in seen:
                raise SpecError(f"{here}.code", f"'{factor.code}' is used twice in this model")
            seen[factor.code] = factor
            paths[factor.code] = here
            if factor.factors:
                if factor.mapping is not None:
                    raise SpecError(f"{here}.mapping", "only leaf factors have a mapping")
                children.append(node_of(factor.factors, factor.judgements, factor.code, here, depth + 1))
            else:
                if factor.judgements:
                    raise SpecError(f"{here}.judgements", "a leaf factor has no judgements")
                _check_leaf(factor, kind, here)
                children.append(ahp.Node(factor.code))
        return ahp.Node(code, children, judgements)

    root = node_of(spec.factors, spec.judgements, "goal", "", 1)
    try:
        ahp.weigh(root)
    except ahp.JudgementError as exc:
        code, _, rest = exc.path.partition("[")
        field = f"{paths[code]}.judgements" if paths[code] else "judgements"
        raise SpecError(field + (f"[{rest}" if rest else ""), exc.detail) from None
    except ahp.InconsistentNode as exc:
        field = f"{paths[exc.node.code]}.judgements" if paths[exc.node.code] else "judgements"
        raise Inconsistent(field, exc.node.code, exc.result, [c.code for c in exc.node.children]) from None
    return root, {code: f for code, f in seen.items() if not f.factors}


def _check_leaf(factor: FactorIn, kind: Kind, here: str) -> None:
    mapping = factor.mapping
    if kind == "satisfaction":
        if mapping is not None:
            raise SpecError(f"{here}.mapping", "satisfaction factors take their values from survey results")
        return
    if mapping is None:
        raise SpecError(f"{here}.mapping", "every loyalty leaf says how a member fact becomes 0-100")
    if not SOURCE.match(mapping.source):
        raise SpecError(
            f"{here}.mapping.source",
            "member.attributes.<name> or loyalty.<" + "|".join(LOYALTY_FACTS) + ">",
        )
    if mapping.kind == "categories" and not mapping.categories:
        raise SpecError(f"{here}.mapping.categories", "a categories mapping needs value -> score pairs")
    if mapping.kind == "linear" and (mapping.low is None or mapping.high is None):
        raise SpecError(f"{here}.mapping.low", "a linear mapping needs low and high")


def leaf_value(mapping: Mapping0To100, facts: Mapping[str, Any]) -> float:
    """The 0-100 value of one loyalty leaf for a member, from facts by source (``member.attributes.x``,
    ``loyalty.y``)."""
    raw = facts.get(mapping.source)
    if raw is None:
        return mapping.default
    if mapping.kind == "categories":
        assert mapping.categories is not None
        key = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        return float(mapping.categories.get(key, mapping.default))
    if mapping.kind == "boolean":
        if isinstance(raw, str):
            return 100.0 if raw.strip().lower() in ("true", "yes", "1") else 0.0
        return 100.0 if raw else 0.0
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return mapping.default
    assert mapping.low is not None and mapping.high is not None
    return ahp.linear(number, mapping.low, mapping.high)


def loyalty_index(root: ahp.Node, leaves: Mapping[str, FactorIn], facts: Mapping[str, Any]) -> dict[str, float]:
    """Every node's 0-100 score for one member (``"goal"`` is the loyalty index)."""
    values = {code: leaf_value(f.mapping, facts) for code, f in leaves.items() if f.mapping is not None}
    return ahp.scores(root, values)


def loyalty_index_scorer(root: ahp.Node, leaves: Mapping[str, FactorIn]) -> Callable[[Mapping[str, Any]], float]:
    """``loyalty_index(root, leaves, facts).get("goal", 0.0)`` for many members against one weighed tree: the same
    figure, with the tree flattened once (:func:`ahp.goal_scorer`)."""
    goal = ahp.goal_scorer(root)
    mapped = [(code, f.mapping) for code, f in leaves.items() if f.mapping is not None]

    def score(facts: Mapping[str, Any]) -> float:
        found = goal({code: leaf_value(mapping, facts) for code, mapping in mapped})
        return 0.0 if found is None else found

    return score


def weights_of(root: ahp.Node) -> list[dict[str, Any]]:
    """Each node with children: its children's local weights, lambda_max, CI, RI, CR; and each factor's global
    weight (the JSON the API answers and stores)."""
    out: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_leaf:
            continue
        p = node.priorities
        assert p is not None
        out.append(
            {
                "node": node.code,
                "lambda_max": round(p.lambda_max, 6),
                "ci": round(p.ci, 6),
                "ri": p.ri,
                "cr": round(p.cr, 6),
                "weights": [
                    {"factor": c.code, "local": round(w, 6), "global": round(c.global_weight, 6), "leaf": c.is_leaf}
                    for c, w in zip(node.children, p.weights, strict=True)
                ],
            }
        )
        stack.extend(reversed(node.children))
    return out


def decode(data: Any) -> ModelSpec:
    return msgspec.convert(data, ModelSpec)
