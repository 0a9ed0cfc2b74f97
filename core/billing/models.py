"""Billing data: plans, Stripe events received, usage per tenant and period, invoices and the billing history.

Global tables (no row-level security; the platform reads across tenants): ``billing_plans``, ``stripe_events``,
``billing_usage`` (one row per tenant and usage period, the claim that makes closing a period happen once and what the
close billed) and ``billing_usage_counts`` (the period's counters, sharded in slots and summed when read).
Tenant-owned tables: ``billing_active_members`` (who was active in a period), ``billing_invoices`` (the tenant's
Stripe invoices as last seen) and ``billing_events`` (every change of billing status, append-only).

The tenant's subscription itself lives on ``tenants`` (customer, subscription, status, period, grace).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.billing.rules import BILLING_STATUSES, PRICING
from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

USAGE_STATUSES = ("open", "billed", "owed", "no_charge", "not_billable", "waived")
#: Counter shards per tenant and period (see core.billing.usage): concurrent transactions of one tenant rarely meet on
#: one counter row.
USAGE_SLOTS = 16


def _global() -> dict[str, dict[str, bool]]:
    """Table options of a global table that carries a tenant_id without being owned by the tenant (no row-level
    security; see core.db.base.tenant_tables)."""
    return {"info": {"tenant_owned": False}}


class Plan(Base):
    """A plan the platform sells. Synchronised to a Stripe product and a monthly Stripe plan by
    ``fealty billing sync-plans`` (or ``POST /v1/platform/plans/sync``)."""

    __tablename__ = "billing_plans"
    __table_args__ = (
        CheckConstraint(f"pricing IN {PRICING!r}", name="pricing"),
        CheckConstraint("pricing = 'flat' OR block_size > 0", name="block_size"),
        CheckConstraint(
            "monthly_price >= 0 AND overage_price_per_member >= 0 AND overage_price_per_1000_events >= 0",
            name="prices_not_negative",
        ),
        CheckConstraint("included_active_members >= 0 AND included_events >= 0", name="included_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    #: ``flat`` (one price a month) or ``per_block`` (the price of each block of ``block_size`` active members).
    pricing: Mapped[str] = mapped_column(String(16), default="flat")
    monthly_price: Mapped[Decimal] = mapped_column()
    block_size: Mapped[int | None] = mapped_column()
    included_active_members: Mapped[int] = mapped_column(default=0)
    included_events: Mapped[int] = mapped_column(BigInteger, default=0)
    overage_price_per_member: Mapped[Decimal] = mapped_column(default=Decimal(0))
    overage_price_per_1000_events: Mapped[Decimal] = mapped_column(default=Decimal(0))
    #: Limits: requests per second (overrides FEALTY_RATE_LIMIT_PER_SECOND) and enrolled members.
    rate_limit_per_second: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    max_members: Mapped[int | None] = mapped_column()
    #: Inactive plans are kept for the tenants on them but accept no new subscriptions.
    active: Mapped[bool] = mapped_column(default=True)
    stripe_product_id: Mapped[str | None] = mapped_column(String(255))
    stripe_plan_id: Mapped[str | None] = mapped_column(String(255))
    synced_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripeEvent(Base):
    """Every Stripe event received, by Stripe's id: a second delivery of the same event finds its row and does
    nothing. Written in the same transaction as the event's effect."""

    __tablename__ = "stripe_events"
    __table_args__ = (_global(),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    #: When Stripe created the event.
    created_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    #: applied, stale, ignored, unknown_customer, other_subscription.
    outcome: Mapped[str] = mapped_column(String(32))


class BillingUsage(Base):
    """One tenant's usage period (a calendar month, UTC), closed once by the worker: the overage is billed (one Stripe
    invoice item) and the row records what was counted and billed. While the period is open the counts live in
    ``billing_usage_counts``; ``events`` and ``active_members`` here are their totals at close."""

    __tablename__ = "billing_usage"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"status IN {USAGE_STATUSES!r}", name="status"),
        CheckConstraint("events >= 0 AND active_members >= 0", name="counts_not_negative"),
        Index("ix_billing_usage_to_close", "status", "period_end"),
        _global(),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    period_end: Mapped[datetime] = mapped_column()
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    active_members: Mapped[int] = mapped_column(default=0)
    #: open (counting), billed, owed (the subscription ended in the period: billed as a pending invoice item on the
    #: customer, collected with its next invoice), no_charge (nothing over the plan), not_billable (no subscription),
    #: waived (trial).
    status: Mapped[str] = mapped_column(String(16), default="open")
    plan_code: Mapped[str | None] = mapped_column(String(64))
    overage_members: Mapped[int | None] = mapped_column()
    overage_events: Mapped[int | None] = mapped_column(BigInteger)
    overage_amount: Mapped[Decimal | None] = mapped_column()
    currency: Mapped[str | None] = mapped_column(String(3))
    #: The subscription quantity set at close (per-block plans).
    quantity: Mapped[int | None] = mapped_column()
    stripe_invoice_item_id: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageCount(Base):
    """One shard of a tenant's usage counters in a period: events processed and members newly active, added by the
    transactions that picked this slot. The period's usage is the sum over its slots."""

    __tablename__ = "billing_usage_counts"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint("events >= 0 AND active_members >= 0", name="counts_not_negative"),
        CheckConstraint(f"slot >= 0 AND slot < {USAGE_SLOTS}", name="slot"),
        _global(),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    active_members: Mapped[int] = mapped_column(default=0)


class ActiveMember(TenantScoped, Base):
    """A member with activity in a usage period (the first activity's time)."""

    __tablename__ = "billing_active_members"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
    )

    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_activity_at: Mapped[datetime] = mapped_column()


class BillingInvoice(TenantScoped, Base):
    """A Stripe invoice of the tenant as last seen (from webhooks and from Stripe's answers)."""

    __tablename__ = "billing_invoices"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(64))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    #: Stripe's: draft, open, paid, void, uncollectible.
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount_due: Mapped[Decimal] = mapped_column()
    amount_paid: Mapped[Decimal] = mapped_column()
    #: Stripe tried to collect it (an open invoice that was attempted has failed).
    attempted: Mapped[bool] = mapped_column(default=False)
    period_start: Mapped[datetime | None] = mapped_column()
    period_end: Mapped[datetime | None] = mapped_column()
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingEvent(TenantScoped, Base):
    """Append-only history of the tenant's billing status: every change, when and why."""

    __tablename__ = "billing_events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"new_status IN {BILLING_STATUSES!r}", name="new_status"),
        Index(None, "tenant_id", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    old_status: Mapped[str] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    stripe_event_id: Mapped[str | None] = mapped_column(String(255))
