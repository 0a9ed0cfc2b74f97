"""Billing: plans, Stripe events, usage per tenant and period, active members, invoices, billing history; the
tenant's Stripe customer and subscription state.

Revision ID: 0006_billing
Revises: 0005_webhooks
Create Date: 2026-11-22 08:27:46.058916
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import rls

revision: str = "0006_billing"
down_revision: str | Sequence[str] | None = "0005_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_plans",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("pricing", sa.String(length=16), nullable=False),
        sa.Column("monthly_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=True),
        sa.Column("included_active_members", sa.Integer(), nullable=False),
        sa.Column("included_events", sa.BigInteger(), nullable=False),
        sa.Column("overage_price_per_member", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("overage_price_per_1000_events", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("rate_limit_per_second", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("max_members", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stripe_product_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_plan_id", sa.String(length=255), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("pricing = 'flat' OR block_size > 0", name=op.f("ck_billing_plans_block_size")),
        sa.CheckConstraint("pricing IN ('flat', 'per_block')", name=op.f("ck_billing_plans_pricing")),
        sa.CheckConstraint(
            "included_active_members >= 0 AND included_events >= 0", name=op.f("ck_billing_plans_included_not_negative")
        ),
        sa.CheckConstraint(
            "monthly_price >= 0 AND overage_price_per_member >= 0 AND overage_price_per_1000_events >= 0",
            name=op.f("ck_billing_plans_prices_not_negative"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_billing_plans")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_table(
        "billing_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=False),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("stripe_event_id", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "new_status IN ('none', 'trialing', 'active', 'past_due', 'suspended', 'canceled')",
            name=op.f("ck_billing_events_new_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_billing_events")),
    )
    op.create_index(
        op.f("ix_billing_events_tenant_id_occurred_at"), "billing_events", ["tenant_id", "occurred_at"], unique=False
    )
    op.create_table(
        "billing_invoices",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_due", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("amount_paid", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("attempted", sa.Boolean(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hosted_invoice_url", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_invoices_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_billing_invoices")),
    )
    op.create_index(
        op.f("ix_billing_invoices_tenant_id_created_at"), "billing_invoices", ["tenant_id", "created_at"], unique=False
    )
    op.create_table(
        "billing_usage",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("active_members", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("plan_code", sa.String(length=64), nullable=True),
        sa.Column("overage_members", sa.Integer(), nullable=True),
        sa.Column("overage_events", sa.BigInteger(), nullable=True),
        sa.Column("overage_amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("stripe_invoice_item_id", sa.String(length=255), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'billed', 'no_charge', 'not_billable', 'waived')", name=op.f("ck_billing_usage_status")
        ),
        sa.CheckConstraint("events >= 0 AND active_members >= 0", name=op.f("ck_billing_usage_counts_not_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_usage_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", name=op.f("pk_billing_usage")),
    )
    op.create_index("ix_billing_usage_to_close", "billing_usage", ["status", "period_end"], unique=False)
    op.create_table(
        "billing_active_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("first_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_billing_active_members_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", "member_id", name=op.f("pk_billing_active_members")),
    )
    op.add_column("tenants", sa.Column("stripe_customer_id", sa.String(length=255), nullable=True))
    op.add_column("tenants", sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True))
    op.add_column("tenants", sa.Column("subscription_status", sa.String(length=32), nullable=True))
    op.add_column("tenants", sa.Column("subscription_item_id", sa.String(length=255), nullable=True))
    op.add_column("tenants", sa.Column("subscription_quantity", sa.Integer(), nullable=True))
    op.add_column("tenants", sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("cancel_at_period_end", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column(
        "tenants", sa.Column("subscription_invoiced", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("tenants", sa.Column("past_due_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("subscription_state_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("payment_method", sa.String(length=64), nullable=True))
    op.create_index("uq_tenants_stripe_customer_id", "tenants", ["stripe_customer_id"], unique=True)
    # Platform tables (the worker and the platform read them across tenants; tenants' own requests filter by id).
    rls.global_table("billing_plans", ("SELECT", "INSERT", "UPDATE"))
    rls.global_table("stripe_events", ("SELECT", "INSERT", "UPDATE"))
    rls.global_table("billing_usage", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("billing_invoices", ("SELECT", "INSERT", "UPDATE"))
    # Append-only: a member's activity in a period, and the history of billing status changes.
    rls.tenant_table("billing_active_members", ("SELECT", "INSERT"))
    rls.tenant_table("billing_events", ("SELECT", "INSERT"))


def downgrade() -> None:
    op.drop_index("uq_tenants_stripe_customer_id", table_name="tenants")
    op.drop_column("tenants", "payment_method")
    op.drop_column("tenants", "subscription_state_at")
    op.drop_column("tenants", "past_due_since")
    op.drop_column("tenants", "subscription_invoiced")
    op.drop_column("tenants", "cancel_at_period_end")
    op.drop_column("tenants", "trial_end")
    op.drop_column("tenants", "current_period_end")
    op.drop_column("tenants", "current_period_start")
    op.drop_column("tenants", "subscription_quantity")
    op.drop_column("tenants", "subscription_item_id")
    op.drop_column("tenants", "subscription_status")
    op.drop_column("tenants", "stripe_subscription_id")
    op.drop_column("tenants", "stripe_customer_id")
    op.drop_table("billing_active_members")
    op.drop_index("ix_billing_usage_to_close", table_name="billing_usage")
    op.drop_table("billing_usage")
    op.drop_index(op.f("ix_billing_invoices_tenant_id_created_at"), table_name="billing_invoices")
    op.drop_table("billing_invoices")
    op.drop_index(op.f("ix_billing_events_tenant_id_occurred_at"), table_name="billing_events")
    op.drop_table("billing_events")
    op.drop_table("stripe_events")
    op.drop_table("billing_plans")
