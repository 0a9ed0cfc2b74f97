"""Tenants (a global table), their API keys (tenant-owned) and the platform operator's credential."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

TENANT_STATUSES = ("active", "suspended")


class Tenant(Base):
    """One customer of the platform. Global: the platform operator lists them; tenants never query this table."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(f"status IN {TENANT_STATUSES!r}", name="status"),
        Index("uq_tenants_stripe_customer_id", "stripe_customer_id", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    #: Operator status: a suspended tenant is refused on every call.
    status: Mapped[str] = mapped_column(String(16), default="active")
    plan_code: Mapped[str | None] = mapped_column(String(64))
    #: Billing state driven by Stripe (none, trialing, active, past_due, suspended, canceled); see core.billing.rules.
    billing_status: Mapped[str] = mapped_column(String(16), default="none")
    #: Copy of the program's enabled plugins, so the worker can schedule plugin jobs without reading tenant rows.
    enabled_plugins: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    #: Copies of the program's time zone and currency, for the platform's list of tenants (one query).
    timezone: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Billing (core.billing): the Stripe customer and the newest subscription state applied.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    #: Stripe's own status of the subscription (trialing, active, past_due, incomplete, unpaid, canceled, ...).
    subscription_status: Mapped[str | None] = mapped_column(String(32))
    subscription_item_id: Mapped[str | None] = mapped_column(String(255))
    subscription_quantity: Mapped[int | None] = mapped_column()
    current_period_start: Mapped[datetime | None] = mapped_column()
    current_period_end: Mapped[datetime | None] = mapped_column()
    trial_end: Mapped[datetime | None] = mapped_column()
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: The subscription has issued an invoice (a subscription in its trial has not).
    subscription_invoiced: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: When the current delinquency began; the grace period (FEALTY_BILLING_GRACE_DAYS) runs from here.
    past_due_since: Mapped[datetime | None] = mapped_column()
    #: Creation time (Stripe's clock) of the newest subscription event applied: older events change nothing.
    subscription_state_at: Mapped[datetime | None] = mapped_column()
    #: The default payment method as a person recognises it (``visa •••• 4242``).
    payment_method: Mapped[str | None] = mapped_column(String(64))


class PlatformCredential(Base):
    """The hash of the generated platform operator key (when FEALTY_PLATFORM_KEY is not set)."""

    __tablename__ = "platform_credentials"

    id: Mapped[uuid.UUID] = id_column()
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(TenantScoped, Base):
    """A tenant API key: only the SHA-256 of the secret is stored; scopes narrow what it may do."""

    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64))
    #: First characters of the key, to recognise it in a list (never enough to use it).
    key_hint: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
