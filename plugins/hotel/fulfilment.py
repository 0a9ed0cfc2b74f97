"""Free-night awards: a reward of kind ``hotel.free_night`` is a points stay at a hotel of a category."""

from __future__ import annotations

from typing import Any

from core import RedemptionView, TenantView, ValidationFailed
from plugins.hotel import rules
from plugins.hotel.service import settings_of

KIND = "hotel.free_night"


def terms(attributes: dict[str, Any]) -> tuple[str, int]:
    """The reward's category and nights (``{"category": "4", "nights": 5}``; nights default to 1)."""
    category = attributes.get("category")
    nights = attributes.get("nights", 1)
    if not isinstance(category, str | int) or isinstance(category, bool) or str(category) == "":
        raise ValidationFailed("A free-night reward names its hotel category.", field="attributes.category")
    if not isinstance(nights, int) or isinstance(nights, bool):
        raise ValidationFailed("nights is a whole number of nights.", field="attributes.nights")
    return str(category), nights


def fulfil(tenant: TenantView, redemption: RedemptionView) -> dict[str, Any] | None:
    """Check the free-night reward against the tenant's chart and say what the certificate covers. A reward whose
    points cost is not the chart's price for its category and nights is refused (nothing is taken)."""
    reward = redemption.reward
    if reward.kind != KIND:
        return None
    settings = settings_of(tenant)
    category, nights = terms(reward.attributes)
    try:
        quote = rules.quote_points_stay(category, nights, settings)
    except KeyError:
        raise ValidationFailed(
            f"Category {category} has no free-night price (known: {sorted(settings.free_night_points)}).",
            field="attributes.category",
        ) from None
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="attributes.nights") from None
    if reward.points_cost != quote.points:
        raise ValidationFailed(
            f"This reward costs {reward.points_cost} points but {nights} night(s) in category {category} cost "
            f"{quote.points} by the program's chart; update the reward's points_cost.",
            field="reward_id",
        )
    return {
        "kind": KIND,
        "category": category,
        "nights": quote.nights,
        "free_nights": quote.free_nights,
        "paid_nights": quote.paid_nights,
        "nightly_points": quote.nightly_points,
        "points": quote.points,
        "certificate": redemption.voucher_code,
    }
