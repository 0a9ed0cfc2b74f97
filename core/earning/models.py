"""Earning rules, stored as validated JSON definitions (see :class:`core.earning.engine.RuleDefinition`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column


class EarningRule(TenantScoped, Base):
    __tablename__ = "earning_rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"]),
        Index("ix_earning_rules_active", "tenant_id", "active"),
    )

    id: Mapped[uuid.UUID] = id_column()
    definition: Mapped[dict[str, Any]] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)
    #: Set for a campaign's rules: they apply only in its window and to its segments.
    campaign_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
