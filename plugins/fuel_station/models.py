"""The fuel plugin's tables: sites, the fill-ups and shop purchases it saw, review decisions and applied discounts.

Each is tenant-owned like core's (``tenant_id`` leads every key), created by the plugin's own Alembic branch
(``migrations/versions``) with row-level security.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import Base, TenantScoped, id_column, utcnow

TRANSACTION_KINDS = ("fill_up", "shop")
TRANSACTION_STATUSES = ("awarded", "held", "rejected")
DECISIONS = ("approved", "rejected")


class FuelSite(TenantScoped, Base):
    """A station of the network. Only participating sites earn; its own limits override the tenant's settings."""

    __tablename__ = "fuel_sites"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("uq_fuel_sites_tenant_id_code", "tenant_id", "code", unique=True),
        CheckConstraint("tank_size_litres IS NULL OR tank_size_litres > 0", name="tank_size_positive"),
        CheckConstraint("daily_max_fill_ups IS NULL OR daily_max_fill_ups > 0", name="daily_max_fill_ups_positive"),
        CheckConstraint("daily_max_litres IS NULL OR daily_max_litres > 0", name="daily_max_litres_positive"),
    )

    id: Mapped[uuid.UUID] = id_column()
    #: The code the pumps and tills send as ``attributes.site``.
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    participating: Mapped[bool] = mapped_column(default=True)
    #: Overrides of the tenant's fraud settings for this site (null: the tenant's).
    tank_size_litres: Mapped[Decimal | None] = mapped_column()
    daily_max_fill_ups: Mapped[int | None] = mapped_column()
    daily_max_litres: Mapped[Decimal | None] = mapped_column()
    region: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FuelTransaction(TenantScoped, Base):
    """A fill-up or shop purchase as the plugin saw it: one row per core event (same id), following its status."""

    __tablename__ = "fuel_transactions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "id"], ["events.tenant_id", "events.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        ForeignKeyConstraint(["tenant_id", "site_id"], ["fuel_sites.tenant_id", "fuel_sites.id"]),
        Index("ix_fuel_transactions_member", "tenant_id", "member_id", "occurred_at"),
        Index("ix_fuel_transactions_site", "tenant_id", "site_id", "occurred_at"),
        Index("ix_fuel_transactions_flagged", "tenant_id", "flagged", "id"),
        CheckConstraint(f"kind IN {TRANSACTION_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {TRANSACTION_STATUSES!r}", name="status"),
        CheckConstraint("litres IS NULL OR litres > 0", name="litres_positive"),
        CheckConstraint("points >= 0", name="points_not_negative"),
    )

    #: The core event's id.
    id: Mapped[uuid.UUID] = id_column()
    #: The source system's id (the POS receipt).
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[uuid.UUID] = mapped_column()
    site_id: Mapped[uuid.UUID] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    #: The program-local day (fraud rules count per day).
    local_day: Mapped[date] = mapped_column()
    #: The program-local month ``YYYY-MM`` (the monthly points cap).
    local_month: Mapped[str] = mapped_column(String(7))
    litres: Mapped[Decimal | None] = mapped_column()
    grade: Mapped[str | None] = mapped_column(String(40))
    pump: Mapped[str | None] = mapped_column(String(20))
    payment_method: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(60))
    amount: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    #: awarded, held (for review) or rejected.
    status: Mapped[str] = mapped_column(String(16))
    #: Points from fuel and shop earning (what counts toward the monthly cap); the visit reward is not included.
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The transaction counts as a visit (it was awarded, reached the visit threshold, and what a reversal left of it
    #: still does).
    visit: Mapped[bool] = mapped_column(default=False)
    #: Share of it reversed through the API (0..1). At 1 it counts no more: no points under the cap, no visit, no
    #: activity for retention and win-back (its status stays ``awarded``, like core's event).
    reversed_fraction: Mapped[Decimal] = mapped_column(Numeric(9, 8), default=Decimal(0), server_default="0")
    #: Of ``points``, those reversals took back: the monthly cap counts ``points - reversed_points``.
    reversed_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Held by the fraud rules (it stays in the review queue's history once decided), and why.
    flagged: Mapped[bool] = mapped_column(default=False)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FuelReview(TenantScoped, Base):
    """A decision on a held transaction: approved or rejected, by whom and why. One per transaction."""

    __tablename__ = "fuel_reviews"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "transaction_id"], ["fuel_transactions.tenant_id", "fuel_transactions.id"]),
        Index("uq_fuel_reviews_tenant_id_transaction_id", "tenant_id", "transaction_id", unique=True),
        CheckConstraint(f"decision IN {DECISIONS!r}", name="decision"),
    )

    id: Mapped[uuid.UUID] = id_column()
    transaction_id: Mapped[uuid.UUID] = mapped_column()
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    #: The API key that decided (``key:<id>``).
    decided_by: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The points the approval awarded (0 for a rejection).
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class FuelDiscount(TenantScoped, Base):
    """A cents-off voucher used on a fill-up: what it took off, and why not more."""

    __tablename__ = "fuel_discounts"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "redemption_id"], ["redemptions.tenant_id", "redemptions.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        Index("uq_fuel_discounts_tenant_id_redemption_id", "tenant_id", "redemption_id", unique=True),
        CheckConstraint("amount_off >= 0", name="amount_off_not_negative"),
    )

    id: Mapped[uuid.UUID] = id_column()
    redemption_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    site_code: Mapped[str | None] = mapped_column(String(40))
    litres: Mapped[Decimal] = mapped_column()
    litres_discounted: Mapped[Decimal] = mapped_column()
    price_per_litre: Mapped[Decimal] = mapped_column()
    off_per_litre: Mapped[Decimal] = mapped_column()
    amount_off: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    limited_by: Mapped[list[Any]] = mapped_column(default=list)
    applied_by: Mapped[str] = mapped_column(String(80))
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
