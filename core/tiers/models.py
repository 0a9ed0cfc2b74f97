"""Tiers (the program's member levels) and the history of every member's moves between them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column


class Tier(TenantScoped, Base):
    """One level. ``rank`` orders them (0 is the entry level); qualification, benefits and validity are JSON
    documents validated by :mod:`core.tiers.rules`."""

    __tablename__ = "tiers"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("uq_tiers_tenant_id_code", "tenant_id", "code", unique=True),
        Index("uq_tiers_tenant_id_rank", "tenant_id", "rank", unique=True),
        CheckConstraint("rank >= 0", name="rank_not_negative"),
        CheckConstraint("downgrade IN ('one_step', 'to_qualified')", name="downgrade"),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column()
    qualification: Mapped[dict[str, Any]] = mapped_column(default=dict)
    benefits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    validity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    downgrade: Mapped[str] = mapped_column(String(16), default="one_step")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TierChange(TenantScoped, Base):
    """Append-only: every move of a member between tiers, with why."""

    __tablename__ = "tier_changes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        Index("ix_tier_changes_member", "tenant_id", "member_id", "changed_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    from_tier_id: Mapped[uuid.UUID | None] = mapped_column()
    to_tier_id: Mapped[uuid.UUID | None] = mapped_column()
    #: upgrade, downgrade, renewal, manual, recalculation, enrolment
    reason: Mapped[str] = mapped_column(String(32))
    valid_until: Mapped[datetime | None] = mapped_column()
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
