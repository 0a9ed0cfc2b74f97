"""Member metrics, RFM and loyalty types (pure: numpy arrays in, arrays and decisions out).

**RFM.** Recency (days since the last active day), frequency (active days in the window) and monetary (spend in the
window, program currency) are scored 1-5 by quintiles of the tenant's members who were active in the window
(5 = most recent, most frequent, highest spend); members with no activity in the window get no scores. The segment
comes from R and F, first match wins:

=====================  ==============================
champions              R >= 4 and F >= 4
cannot_lose            R <= 2 and F = 5
at_risk                R <= 2 and F >= 3
loyal                  R >= 3 and F >= 3
new                    R = 5 and F = 1
promising              R = 4 and F = 1
potential_loyalist     R >= 4 and F >= 2
about_to_sleep         R = 3 and F <= 2
hibernating            R <= 2 and F <= 2
inactive               no activity in the window
=====================  ==============================

**Loyalty types** (benefit, trust, monopoly, kinship, inertia, latent) are decided by transparent rules over the
metrics and the member's attributes, in this order, first match wins; thresholds are tenant settings
(:class:`TypeThresholds`) and every decision carries the reasons that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

RFM_SEGMENTS = (
    "champions",
    "cannot_lose",
    "at_risk",
    "loyal",
    "new",
    "promising",
    "potential_loyalist",
    "about_to_sleep",
    "hibernating",
    "inactive",
)
LOYALTY_TYPES = ("kinship", "monopoly", "benefit", "trust", "latent", "inertia")
#: The stored metrics a loyalty model's leaves can read as ``loyalty.<name>`` (with ``rfm_score``, R + F + M).
FACT_COLUMNS = (
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
)


def quintile_scores(values: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1-5 by quintile of each value's percentile rank among the present values (NaN: no score, 0).

    Ties share their average rank, so equal values always get the same score and a population of equal values sits
    in the middle (3), as a lone member does.
    """
    from scipy.stats import rankdata  # loaded on first use: scipy adds about 90 MB to every API process

    scores = np.zeros(values.shape, dtype=np.int8)
    present = ~np.isnan(values)
    n = int(present.sum())
    if n == 0:
        return scores
    percentile = (rankdata(values[present], method="average") - 0.5) / n
    ranked = np.clip(np.floor(percentile * 5).astype(np.int8) + 1, 1, 5)
    scores[present] = ranked if higher_is_better else 6 - ranked
    return scores


def rfm_segment(r: int, f: int) -> str:
    if r == 0 or f == 0:
        return "inactive"
    if r >= 4 and f >= 4:
        return "champions"
    if r <= 2 and f == 5:
        return "cannot_lose"
    if r <= 2 and f >= 3:
        return "at_risk"
    if r >= 3 and f >= 3:
        return "loyal"
    if r == 5 and f == 1:
        return "new"
    if r == 4 and f == 1:
        return "promising"
    if r >= 4:
        return "potential_loyalist"
    if r == 3:
        return "about_to_sleep"
    return "hibernating"


def return_rate(days: Sequence[int], window_start: int, today: int, within: int) -> float | None:
    """Share of the active days in the window, old enough to tell (at least ``within`` days ago), after which the
    member came back within ``within`` days. ``days`` are sorted day numbers (the whole history)."""
    eligible = returned = 0
    for i, day in enumerate(days):
        if day < window_start or day > today - within:
            continue
        eligible += 1
        if i + 1 < len(days) and days[i + 1] - day <= within:
            returned += 1
    return returned / eligible if eligible else None


class TypeThresholds(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The tenant's thresholds for loyalty types (defaults documented in docs/measurement.md)."""

    #: ``member.attributes.relationship`` values that make a member kin (staff and their relatives).
    kinship_relationships: list[str] = msgspec.field(default_factory=lambda: ["staff", "relative", "family"])
    #: Attribute saying we are the member's only possible provider (monopoly).
    monopoly_attribute: str = "sole_provider"
    #: Benefit-driven: at least this share of active days earned under a campaign or multiplier.
    benefit_min_price_sensitivity: float = 0.5
    #: Trust: R and F scores at least this, price sensitivity below the benefit threshold, and (when cases are
    #: known) still active after a complaint.
    trust_min_rf_score: int = 4
    #: Latent: share of need below this (when sent as ``member.attributes.share_of_need``, 0-1) ...
    latent_max_share_of_need: float = 0.4
    #: ... or a high spend score with a low frequency score.
    latent_min_m_score: int = 4
    latent_max_f_score: int = 2
    #: Inertia: active at least this many days in the window without being benefit-driven (convenience).
    inertia_min_frequency: int = 2


@dataclass(frozen=True)
class MemberFacts:
    """What the type rules read about one member."""

    frequency: int
    r_score: int
    f_score: int
    m_score: int
    price_sensitivity: float | None
    share_of_need: float | None
    incident_tolerance: float | None
    churned: bool
    attributes: Mapping[str, Any]


def loyalty_type(m: MemberFacts, t: TypeThresholds) -> tuple[str | None, list[str]]:
    """The member's loyalty type and the reasons that decided it (``None`` with the reason when no rule matches)."""
    relationship = m.attributes.get("relationship")
    if isinstance(relationship, str) and relationship.lower() in {r.lower() for r in t.kinship_relationships}:
        return "kinship", [f"relationship is {relationship}"]
    sole = m.attributes.get(t.monopoly_attribute)
    if sole is True or (isinstance(sole, str) and sole.lower() in ("true", "yes", "1")):
        return "monopoly", [f"{t.monopoly_attribute} is true: no alternative provider"]
    if m.frequency == 0:
        return None, ["no activity in the window"]
    ps = m.price_sensitivity or 0.0
    if ps >= t.benefit_min_price_sensitivity:
        return "benefit", [
            f"price sensitivity {ps:.2f} >= {t.benefit_min_price_sensitivity}: most activity under promotions"
        ]
    tolerant = m.incident_tolerance is None or m.incident_tolerance >= 0.5
    if m.r_score >= t.trust_min_rf_score and m.f_score >= t.trust_min_rf_score and tolerant:
        reasons = [
            f"R score {m.r_score} and F score {m.f_score} >= {t.trust_min_rf_score}",
            f"price sensitivity {ps:.2f} < {t.benefit_min_price_sensitivity}",
        ]
        if m.incident_tolerance is not None:
            reasons.append(f"came back after {m.incident_tolerance:.0%} of complaints")
        return "trust", reasons
    if m.share_of_need is not None and m.share_of_need < t.latent_max_share_of_need and not m.churned:
        return "latent", [f"share of need {m.share_of_need:.2f} < {t.latent_max_share_of_need}: buys most elsewhere"]
    if m.m_score >= t.latent_min_m_score and m.f_score <= t.latent_max_f_score and not m.churned:
        return "latent", [
            f"M score {m.m_score} >= {t.latent_min_m_score} with F score {m.f_score} <= {t.latent_max_f_score}: "
            "spends well but seldom"
        ]
    if m.frequency >= t.inertia_min_frequency and not m.churned:
        return "inertia", [
            f"active on {m.frequency} days >= {t.inertia_min_frequency}",
            f"price sensitivity {ps:.2f} < {t.benefit_min_price_sensitivity}",
            "not frequent and recent enough for trust: convenience",
        ]
    return None, [f"active on {m.frequency} day(s): too little to tell"]


def share_of_need(value: Any) -> float | None:
    """``member.attributes.share_of_need`` as 0-1 (a percentage above 1 is divided by 100); None if absent or bad."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 1:
        number /= 100
    return number if 0 <= number <= 1 else None
