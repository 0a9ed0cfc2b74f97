"""Measurement models (AHP factor hierarchies) as a tenant stated them, with the weights computed from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, text
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
