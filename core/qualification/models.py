"""Per-member activity metrics in daily buckets: what tiers qualify on and segments filter by."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import ForeignKeyConstraint, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TenantScoped


class MemberMetric(TenantScoped, Base):
    """``value`` of ``metric`` for a member on a local day (program time zone).

    Metrics: ``points`` (points awarded by events), ``base_points``, ``spend`` (program currency), ``events``,
    ``count:<event type>``, ``rule:<rule id>`` (points a rule gave, for its caps) and plugins' credits (``nights``,
    ``stays``, ``litres``...). Events add to today's bucket with one upsert; a reversal subtracts from the original
    event's day, so every window stays exact. The primary key is the window index.
    """

    __tablename__ = "member_metrics"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 4), default=Decimal(0))
