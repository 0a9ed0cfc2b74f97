"""The tenant's measurement settings: every figure of docs/measurement.md with its default."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

import msgspec
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.decimals import decimal_bounds
from core.measurement.loyalty import TypeThresholds
from core.measurement.models import MeasurementSettings


class MeasurementConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    #: Days of history the member metrics and RFM look at.
    window_days: Annotated[int, Meta(ge=7, le=3660)] = 365
    #: "Came back within N days" for the return rate.
    return_within_days: Annotated[int, Meta(ge=1, le=365)] = 30
    #: No activity for this many days: churned.
    churn_after_days: Annotated[int, Meta(ge=7, le=3660)] = 180
    #: Horizon of the expected purchases and value (BG/NBD, Gamma-Gamma).
    horizon_days: Annotated[int, Meta(ge=7, le=3660)] = 90
    #: Churn-risk report: members whose churn probability is at least this.
    churn_risk_min_probability: Annotated[float, Meta(ge=0, le=1)] = 0.5
    #: Key members: the top share of members by expected value (the 80/20 rule's 20 %).
    key_member_share: Annotated[float, Meta(gt=0, le=1)] = 0.2
    #: Value of one point in the program's currency (liability): 0 to 1,000,000, at most 6 decimal places.
    point_value: Annotated[Decimal, decimal_bounds(ge=0, le=1_000_000, places=6)] = Decimal("0.01")
    #: Breakage rate to use instead of the one estimated from the program's history (0-1; null: estimate).
    breakage_rate: Annotated[float, Meta(ge=0, le=1)] | None = None
    types: TypeThresholds = msgspec.field(default_factory=TypeThresholds)


async def load(db: AsyncSession, tenant_id: uuid.UUID) -> tuple[MeasurementConfig, dict[str, object]]:
    """The settings (defaults where the tenant set nothing) and the last run's summary."""
    row = (
        await db.execute(
            select(MeasurementSettings.settings, MeasurementSettings.last_run).where(
                MeasurementSettings.tenant_id == tenant_id
            )
        )
    ).first()
    if row is None:
        return MeasurementConfig(), {}
    return msgspec.convert(row.settings, MeasurementConfig), dict(row.last_run or {})
