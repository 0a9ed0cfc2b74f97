"""Measurement models (AHP factor hierarchies) as a tenant stated them, with the weights computed from them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Numeric,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

MODEL_KINDS = ("satisfaction", "loyalty")


class MeasurementModel(TenantScoped, Base):
    """One AHP model. At most one active model of each kind: the one the indices use."""

    __tablename__ = "measurement_models"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("uq_measurement_models_tenant_id_code", "tenant_id", "code", unique=True),
        Index(
            "uq_measurement_models_active_kind",
            "tenant_id",
            "kind",
            unique=True,
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
        CheckConstraint(f"kind IN {MODEL_KINDS!r}", name="kind"),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    #: The hierarchy and judgements as stated (ModelSpec).
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Per node: local weights, lambda_max, CI, RI, CR; per factor its global weight.
    weights: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MeasurementSettings(TenantScoped, Base):
    """The tenant's measurement settings (windows, thresholds, point value) and what the last nightly run found."""

    __tablename__ = "measurement_settings"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    #: One row per tenant: the key is the tenant's id alone.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The last run: when, how many members, the fitted BG/NBD and Gamma-Gamma parameters, timings.
    last_run: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberLoyalty(TenantScoped, Base):
    """A member's loyalty metrics, RFM, type, index and churn figures as of the last nightly run."""

    __tablename__ = "member_loyalty"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        Index("ix_member_loyalty_segment", "tenant_id", "rfm_segment"),
        Index("ix_member_loyalty_churn", "tenant_id", "churn_probability"),
        #: The key-members report's order (0031): its top N read from the index, backwards.
        Index("ix_member_loyalty_value", "tenant_id", "expected_value"),
        CheckConstraint(
            "r_score BETWEEN 0 AND 5 AND f_score BETWEEN 0 AND 5 AND m_score BETWEEN 0 AND 5", name="scores"
        ),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    computed_at: Mapped[datetime] = mapped_column()
    window_days: Mapped[int] = mapped_column()
    recency_days: Mapped[int | None] = mapped_column()
    frequency: Mapped[int] = mapped_column()
    monetary: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    repeat_purchases: Mapped[int] = mapped_column()
    return_rate: Mapped[float | None] = mapped_column(Float)
    churned: Mapped[bool] = mapped_column()
    tenure_days: Mapped[int] = mapped_column()
    price_sensitivity: Mapped[float | None] = mapped_column(Float)
    incident_tolerance: Mapped[float | None] = mapped_column(Float)
    share_of_need: Mapped[float | None] = mapped_column(Float)
    r_score: Mapped[int] = mapped_column(SmallInteger)
    f_score: Mapped[int] = mapped_column(SmallInteger)
    m_score: Mapped[int] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str] = mapped_column(String(24))
    loyalty_type: Mapped[str | None] = mapped_column(String(16))
    type_reasons: Mapped[list[Any]] = mapped_column(default=list)
    loyalty_index: Mapped[float | None] = mapped_column(Float)
    p_alive: Mapped[float | None] = mapped_column(Float)
    churn_probability: Mapped[float | None] = mapped_column(Float)
    expected_purchases: Mapped[float | None] = mapped_column(Float)
    expected_spend: Mapped[float | None] = mapped_column(Float)
    expected_value: Mapped[float | None] = mapped_column(Float)


class LiabilityRollupState(TenantScoped, Base):
    """What the liability roll-up of a tenant covers: the entries (and lots) created before ``cutoff``, a local day
    start in ``tz``, none of which can change any more (see :mod:`core.measurement.liability_rollup`)."""

    __tablename__ = "liability_rollup_state"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    #: The zone whose local days the rows are in; a report in another zone reads the ledger instead.
    tz: Mapped[str] = mapped_column(String(64))
    cutoff: Mapped[datetime] = mapped_column()
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiabilityRollup(TenantScoped, Base):
    """Points summed by local day: ``move`` posted entries by (day created, day effective, kind); ``earn`` the points of
    earn lots that were not cancelled by (day earned, same day); ``fate`` lot consumptions by (day the consuming entry
    was created, first day of the lot's local month of earning, redeem / expire / other)."""

    __tablename__ = "liability_rollup"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint("measure IN ('move', 'earn', 'fate')", name="measure"),
    )

    measure: Mapped[str] = mapped_column(String(8), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    day_a: Mapped[date] = mapped_column(Date, primary_key=True)
    day_b: Mapped[date] = mapped_column(Date, primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
