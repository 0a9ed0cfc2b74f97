"""RFM quintiles and segments, return rate and loyalty types with their reasons (pure, table-driven)."""

from __future__ import annotations

import numpy as np
import pytest

from core.measurement import loyalty
from core.measurement.loyalty import MemberFacts, TypeThresholds


def test_quintile_scores_by_hand() -> None:
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan], dtype=float)
    assert loyalty.quintile_scores(values).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0]
    # recency: fewer days is better
    assert loyalty.quintile_scores(values, higher_is_better=False).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0]
    ties = loyalty.quintile_scores(np.array([1, 1, 1, 1, 1, 1, 1, 1, 2, 9], dtype=float))
    assert len(set(ties[:8].tolist())) == 1  # equal values, equal scores
    assert ties[-1] == 5
    assert loyalty.quintile_scores(np.array([np.nan, np.nan])).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "champions"),
        (4, 4, "champions"),
        (2, 5, "cannot_lose"),
        (1, 3, "at_risk"),
        (3, 3, "loyal"),
        (5, 3, "loyal"),
        (5, 1, "new"),
        (4, 1, "promising"),
        (5, 2, "potential_loyalist"),
        (3, 2, "about_to_sleep"),
        (3, 1, "about_to_sleep"),
        (2, 2, "hibernating"),
        (1, 1, "hibernating"),
        (0, 0, "inactive"),
    ],
)
def test_rfm_segments(r: int, f: int, segment: str) -> None:
    assert loyalty.rfm_segment(r, f) == segment


def test_every_score_pair_has_a_segment() -> None:
    found = {loyalty.rfm_segment(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert found == set(loyalty.RFM_SEGMENTS) - {"inactive"}


def test_return_rate_counts_only_days_old_enough_to_tell() -> None:
    # days 0, 10, 50, 55, 95 (today 100, window from 0, within 30): eligible 0, 10, 50, 55 (95 is too recent);
    # came back within 30: 0 -> 10, 50 -> 55, 55 -> 95 is 40 days (no); 10 -> 50 is 40 (no). 2 of 4.
    assert loyalty.return_rate([0, 10, 50, 55, 95], 0, 100, 30) == 0.5
    assert loyalty.return_rate([95], 0, 100, 30) is None
    assert loyalty.return_rate([10, 20], 15, 100, 30) == 0.0  # day 10 is before the window


def _facts(**kw: object) -> MemberFacts:
    base: dict[str, object] = {
        "frequency": 6,
        "r_score": 3,
        "f_score": 3,
        "m_score": 3,
        "price_sensitivity": 0.1,
        "share_of_need": None,
        "incident_tolerance": None,
        "churned": False,
        "attributes": {},
    }
    return MemberFacts(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "expected", "reason"),
    [
        (_facts(attributes={"relationship": "Staff"}), "kinship", "relationship is Staff"),
        (_facts(attributes={"sole_provider": True}), "monopoly", "sole_provider is true"),
        (_facts(attributes={"sole_provider": "yes"}, frequency=0), "monopoly", "no alternative"),
        (_facts(price_sensitivity=0.75), "benefit", "price sensitivity 0.75 >= 0.5"),
        (_facts(r_score=5, f_score=4), "trust", "R score 5 and F score 4 >= 4"),
        (_facts(r_score=5, f_score=5, incident_tolerance=0.0), "inertia", "convenience"),
        (_facts(share_of_need=0.2), "latent", "share of need 0.20 < 0.4"),
        (_facts(m_score=5, f_score=1), "latent", "spends well but seldom"),
        (_facts(), "inertia", "active on 6 days >= 2"),
        (_facts(frequency=1, f_score=1), None, "too little to tell"),
        (_facts(frequency=0, r_score=0, f_score=0, m_score=0), None, "no activity in the window"),
        (_facts(churned=True, share_of_need=0.1), None, "too little"),
    ],
)
def test_loyalty_types_with_reasons(facts: MemberFacts, expected: str | None, reason: str) -> None:
    kind, reasons = loyalty.loyalty_type(facts, TypeThresholds())
    assert kind == expected
    assert any(reason in r for r in reasons), reasons


def test_thresholds_are_the_tenants() -> None:
    strict = TypeThresholds(benefit_min_price_sensitivity=0.9, kinship_relationships=["employee"])
    assert loyalty.loyalty_type(_facts(price_sensitivity=0.75), strict)[0] == "inertia"
    assert loyalty.loyalty_type(_facts(attributes={"relationship": "employee"}), strict)[0] == "kinship"
    assert loyalty.loyalty_type(_facts(attributes={"relationship": "staff"}), strict)[0] == "inertia"


@pytest.mark.parametrize(
    ("value", "share"), [(0.3, 0.3), (30, 0.3), ("0.5", 0.5), (None, None), ("x", None), (True, None), (250, None)]
)
def test_share_of_need(value: object, share: float | None) -> None:
    assert loyalty.share_of_need(value) == (pytest.approx(share) if share is not None else None)
