"""AHP maths against Saaty's published figures, and the hierarchy, scoring and standardising rules (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from core.measurement import ahp
from core.measurement.defaults import DEFAULTS, default_spec
from core.measurement.spec import Inconsistent, Mapping0To100, SpecError, build, decode, leaf_value

# Saaty (1990), "How to make a decision: the analytic hierarchy process", European Journal of Operational Research
# 48, 9-26: the house example. Each case: the upper triangle, the published weights, lambda_max, CI, CR.
HOUSE_CRITERIA = [
    [5, 3, 7, 6, 6, "1/3", "1/4"],
    ["1/3", 5, 3, 3, "1/5", "1/7"],
    [6, 3, 4, 6, "1/5"],
    ["1/3", "1/4", "1/7", "1/8"],
    ["1/2", "1/5", "1/6"],
    ["1/5", "1/6"],
    ["1/2"],
]
SAATY_CASES = [
    pytest.param(
        HOUSE_CRITERIA,
        (0.173, 0.054, 0.188, 0.018, 0.031, 0.036, 0.167, 0.333),
        9.669,
        0.238,
        0.169,
        id="house-criteria",
    ),
    pytest.param([[6, 8], [4]], (0.754, 0.181, 0.065), 3.136, 0.068, 0.117, id="size-of-house"),
    pytest.param([[5, 4], ["1/3"]], (0.674, 0.101, 0.226), 3.086, 0.043, 0.074, id="yard-space"),
    pytest.param([["1/7", "1/5"], [3]], (0.072, 0.650, 0.278), 3.065, 0.032, 0.056, id="financing"),
    pytest.param([[8, 6], ["1/5"]], (0.747, 0.060, 0.193), 3.197, 0.099, 0.170, id="modern-facilities"),
    pytest.param([["1/2", "1/2"], [1]], (0.200, 0.400, 0.400), 3.000, 0.000, 0.000, id="general-condition"),
]


@pytest.mark.parametrize(("upper", "weights", "lambda_max", "ci", "cr"), SAATY_CASES)
def test_saaty_house_example(upper: list, weights: tuple, lambda_max: float, ci: float, cr: float) -> None:
    result = ahp.priorities(ahp.matrix_from_upper(len(weights), upper))
    assert result.weights == pytest.approx(weights, abs=0.0015)
    assert sum(result.weights) == pytest.approx(1.0)
    assert result.lambda_max == pytest.approx(lambda_max, abs=0.0005)
    assert result.ci == pytest.approx(ci, abs=0.0005)
    assert result.cr == pytest.approx(cr, abs=0.0005)
    assert result.consistent == (cr < 0.10)


@pytest.mark.parametrize("weights", [(0.5, 0.3, 0.2), (8, 4, 2, 1), (1, 1, 1, 1, 1), (9, 3, 1, 1, 3, 9, 2)])
def test_a_consistent_matrix_gives_back_its_weights(weights: tuple[float, ...]) -> None:
    w = np.array(weights) / sum(weights)
    n = len(w)
    upper = [[float(w[i] / w[j]) for j in range(i + 1, n)] for i in range(n - 1)]
    result = ahp.priorities(ahp.matrix_from_upper(n, upper))
    assert result.weights == pytest.approx(tuple(w))
    assert result.lambda_max == pytest.approx(n)
    assert result.ci == 0.0
    assert result.cr == 0.0


def test_the_judgement_that_disagrees_most_is_named() -> None:
    # Consistent with weights 8:4:2:1, except 1 over 3, stated backwards (1/4 instead of 4).
    upper = [[2, "1/4", 8], [2, 4], [2]]
    result = ahp.priorities(ahp.matrix_from_upper(4, upper))
    assert not result.consistent
    d = result.disagreement
    assert d is not None
    assert (d.row, d.column, d.path) == (0, 2, "[0][1]")
    assert d.given == pytest.approx(0.25)
    assert d.implied / d.given > 3  # the other judgements pull the other way


def test_random_index_is_saatys() -> None:
    assert [ahp.RANDOM_INDEX[n] for n in range(1, 11)] == [0, 0, 0.58, 0.90, 1.12, 1.24, 1.32, 1.41, 1.45, 1.49]
    one, two = ahp.priorities(np.ones((1, 1))), ahp.priorities(ahp.matrix_from_upper(2, [[9]]))
    assert (one.weights, one.cr) == ((1.0,), 0.0)
    assert two.weights == pytest.approx((0.9, 0.1))
    assert two.cr == 0.0


@pytest.mark.parametrize(
    ("n", "upper", "path"),
    [
        (3, [[2, 3]], ""),  # a row missing
        (3, [[2], [3]], "[0]"),  # a short row
        (3, [[2, 10], [1]], "[0][1]"),  # above 9
        (3, [[2, "1/10"], [1]], "[0][1]"),  # below 1/9
        (3, [[2, "x"], [1]], "[0][1]"),
        (3, [[2, "1/0"], [1]], "[0][1]"),
        (3, [[2, True], [1]], "[0][1]"),
        (16, [], ""),
    ],
)
def test_malformed_judgements_are_refused_with_their_place(n: int, upper: list, path: str) -> None:
    with pytest.raises(ahp.JudgementError) as info:
        ahp.matrix_from_upper(n, upper)
    assert info.value.path == path


def _two_level(judgement: object = 3) -> dict:
    return {
        "judgements": [[judgement]],
        "factors": [
            {
                "code": "a",
                "name": "A",
                "judgements": [[1]],
                "factors": [{"code": "a1", "name": "A1"}, {"code": "a2", "name": "A2"}],
            },
            {"code": "b", "name": "B"},
        ],
    }


def test_global_weights_multiply_down_the_hierarchy() -> None:
    root, leaves = build(decode(_two_level()), "satisfaction")
    assert set(leaves) == {"a1", "a2", "b"}
    by_code = {leaf.code: leaf.global_weight for leaf in ahp.leaves(root)}
    assert by_code == pytest.approx({"a1": 0.375, "a2": 0.375, "b": 0.25})


def test_scores_by_hand() -> None:
    """A = 3 x B; A's factors equal. a1 80, a2 60, b 40: A = 70, index = 0.75 x 70 + 0.25 x 40 = 62.5. Without a2:
    A = 80, index = 70, and a2's 0.375 of the weight is missing (coverage 0.625)."""
    root, _ = build(decode(_two_level()), "satisfaction")
    assert ahp.scores(root, {"a1": 80, "a2": 60, "b": 40}) == pytest.approx(
        {"a1": 80, "a2": 60, "b": 40, "a": 70, "goal": 62.5}
    )
    assert ahp.scores(root, {"a1": 80, "b": 40})["goal"] == pytest.approx(70)
    assert ahp.coverage(root, {"a1": 80, "b": 40}) == pytest.approx(0.625)
    assert "goal" not in ahp.scores(root, {})


def test_five_levels_standardised_by_hand() -> None:
    # (2 x 100 + 3 x 75 + 1 x 50 + 0 x 25 + 1 x 0) / 7 = 475 / 7
    value, count = ahp.standardise_levels(
        {"very_satisfied": 2, "satisfied": 3, "neutral": 1, "dissatisfied": 0, "very_dissatisfied": 1}
    )
    assert (value, count) == (pytest.approx(475 / 7), 7)
    assert ahp.standardise_levels({"neutral": 0}) == (None, 0)


def test_an_inconsistent_node_is_named_with_its_place() -> None:
    spec = _two_level()
    spec["factors"][0]["factors"].append({"code": "a3", "name": "A3"})
    spec["factors"][0]["judgements"] = [[9, "1/9"], [9]]
    with pytest.raises(Inconsistent) as info:
        build(decode(spec), "satisfaction")
    assert info.value.field == "factors[0].judgements"
    assert info.value.node == "a"
    assert info.value.result.cr >= 0.10
    assert info.value.judgement["path"].startswith("factors[0].judgements[")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s["factors"][1].update(code="a1"), "factors[1].code"),
        (lambda s: s["factors"][1].update(code="Bad Code"), "factors[1].code"),
        (lambda s: s.update(judgements=[[3, 2]]), "judgements[0]"),
        (lambda s: s["factors"][0].update(judgements=[]), "factors[0].judgements"),
        (lambda s: s["factors"][1].update(judgements=[[1]]), "factors[1].judgements"),
        (
            lambda s: s["factors"][1].update(mapping={"source": "loyalty.frequency", "kind": "boolean"}),
            "factors[1].mapping",
        ),
    ],
)
def test_bad_hierarchies_are_refused_with_the_field(change: object, field: str) -> None:
    spec = _two_level()
    change(spec)  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        build(decode(spec), "satisfaction")
    assert info.value.field == field


def test_loyalty_leaves_map_member_facts_to_0_100() -> None:
    linear = Mapping0To100(source="loyalty.recency_days", kind="linear", low=365, high=0)
    assert leaf_value(linear, {"loyalty.recency_days": 0}) == 100
    assert leaf_value(linear, {"loyalty.recency_days": 73}) == pytest.approx(80)
    assert leaf_value(linear, {"loyalty.recency_days": 900}) == 0
    assert leaf_value(linear, {}) == 0
    categories = Mapping0To100(
        source="member.attributes.customer_nature",
        kind="categories",
        categories={"government": 100, "retail": 40},
        default=10,
    )
    assert leaf_value(categories, {"member.attributes.customer_nature": "government"}) == 100
    assert leaf_value(categories, {"member.attributes.customer_nature": "alien"}) == 10
    boolean = Mapping0To100(source="member.attributes.sole_provider", kind="boolean", default=50)
    assert [leaf_value(boolean, {"member.attributes.sole_provider": v}) for v in (True, "no", None)] == [100, 0, 50]


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_the_default_models_are_consistent(name: str) -> None:
    kind, _, spec = default_spec(name)
    root, leaves = build(spec, kind)
    assert sum(leaf.global_weight for leaf in ahp.leaves(root)) == pytest.approx(1.0)
    assert leaves


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_the_flattened_goal_scorer_gives_the_same_float(name: str) -> None:
    """The nightly run scores a million members with ``goal_scorer``: for any leaf values, some of them missing, its
    goal is the very float ``scores`` gives (same sums in the same order), and None where ``scores`` has no goal."""
    kind, _, spec = default_spec(name)
    root, leaves = build(spec, kind)
    goal = ahp.goal_scorer(root)
    rng = np.random.default_rng(13)
    codes = sorted(leaves)
    for _ in range(500):
        values = {c: float(rng.uniform(0, 100)) for c in codes if rng.random() < 0.7}
        expected = ahp.scores(root, values).get("goal")
        assert goal(values) == expected, values
    assert goal({}) is None and "goal" not in ahp.scores(root, {})
    assert goal(dict.fromkeys(codes, 50.0)) == pytest.approx(50.0)
