"""Cents-off rewards: a reward of kind ``fuel.cents_off`` is a voucher taking money off each litre of a fill-up."""

from __future__ import annotations

from typing import Any

from core import RedemptionView, TenantView, ValidationFailed
from plugins.fuel_station import rules
from plugins.fuel_station.settings import FuelSettings

CENTS_OFF = "fuel.cents_off"


def fulfil(tenant: TenantView, redemption: RedemptionView) -> dict[str, Any] | None:
    """What a cents-off voucher is worth, checked against the redemption steps. A reward whose points cost is not a
    step is refused (nothing is taken)."""
    if redemption.reward.kind != CENTS_OFF:
        return None
    settings: FuelSettings = tenant.settings_for("fuel")
    problem = rules.redemption_step_problem(redemption.points, settings)
    if problem is not None:
        raise ValidationFailed(f"{problem} This reward costs {redemption.points:,}.", field="reward_id")
    off = rules.off_per_litre_for(redemption.points, settings)
    return {
        "kind": CENTS_OFF,
        "off_per_litre": str(off),
        "currency": tenant.currency,
        "max_litres": str(settings.discount_max_litres),
        "floor_price_per_litre": str(settings.floor_price_per_litre),
        "apply": f"/v1/fuel/redemptions/{redemption.id}/apply",
    }
