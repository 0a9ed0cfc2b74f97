"""Fuel stations: sites, fill-ups and shop purchases, review decisions, applied cents-off discounts.

The first revision of the plugin's own branch (``fuel``); it needs core's tables (members, events, redemptions).

Revision ID: fuel_0001
Revises:
Create Date: 2026-11-22 09:20:37.436250
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core import rls

revision: str = "fuel_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("fuel",)
depends_on: str | Sequence[str] | None = "0007_care"


def upgrade() -> None:
    op.create_table(
        "fuel_sites",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("participating", sa.Boolean(), nullable=False),
        sa.Column("tank_size_litres", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("daily_max_fill_ups", sa.Integer(), nullable=True),
        sa.Column("daily_max_litres", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "daily_max_fill_ups IS NULL OR daily_max_fill_ups > 0",
            name=op.f("ck_fuel_sites_daily_max_fill_ups_positive"),
        ),
        sa.CheckConstraint(
            "daily_max_litres IS NULL OR daily_max_litres > 0", name=op.f("ck_fuel_sites_daily_max_litres_positive")
        ),
        sa.CheckConstraint(
            "tank_size_litres IS NULL OR tank_size_litres > 0", name=op.f("ck_fuel_sites_tank_size_positive")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_fuel_sites_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fuel_sites")),
    )
    op.create_index("uq_fuel_sites_tenant_id_code", "fuel_sites", ["tenant_id", "code"], unique=True)

    op.create_table(
        "fuel_transactions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("local_month", sa.String(length=7), nullable=False),
        sa.Column("litres", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("grade", sa.String(length=40), nullable=True),
        sa.Column("pump", sa.String(length=20), nullable=True),
        sa.Column("payment_method", sa.String(length=20), nullable=True),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("visit", sa.Boolean(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column(
            "flags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('fill_up', 'shop')", name=op.f("ck_fuel_transactions_kind")),
        sa.CheckConstraint("status IN ('awarded', 'held', 'rejected')", name=op.f("ck_fuel_transactions_status")),
        sa.CheckConstraint("litres IS NULL OR litres > 0", name=op.f("ck_fuel_transactions_litres_positive")),
        sa.CheckConstraint("points >= 0", name=op.f("ck_fuel_transactions_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "id"],
            ["events.tenant_id", "events.id"],
            name=op.f("fk_fuel_transactions_tenant_id_id_events"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_fuel_transactions_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "site_id"],
            ["fuel_sites.tenant_id", "fuel_sites.id"],
            name=op.f("fk_fuel_transactions_tenant_id_site_id_fuel_sites"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fuel_transactions")),
    )
    op.create_index("ix_fuel_transactions_flagged", "fuel_transactions", ["tenant_id", "flagged", "id"], unique=False)
    op.create_index(
        "ix_fuel_transactions_member", "fuel_transactions", ["tenant_id", "member_id", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_fuel_transactions_site", "fuel_transactions", ["tenant_id", "site_id", "occurred_at"], unique=False
    )

    op.create_table(
        "fuel_discounts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("redemption_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("site_code", sa.String(length=40), nullable=True),
        sa.Column("litres", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("litres_discounted", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("price_per_litre", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("off_per_litre", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("amount_off", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "limited_by", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("applied_by", sa.String(length=80), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_off >= 0", name=op.f("ck_fuel_discounts_amount_off_not_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_fuel_discounts_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "redemption_id"],
            ["redemptions.tenant_id", "redemptions.id"],
            name=op.f("fk_fuel_discounts_tenant_id_redemption_id_redemptions"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fuel_discounts")),
    )
    op.create_index(
        "uq_fuel_discounts_tenant_id_redemption_id", "fuel_discounts", ["tenant_id", "redemption_id"], unique=True
    )

    op.create_table(
        "fuel_reviews",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("decision IN ('approved', 'rejected')", name=op.f("ck_fuel_reviews_decision")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "transaction_id"],
            ["fuel_transactions.tenant_id", "fuel_transactions.id"],
            name=op.f("fk_fuel_reviews_tenant_id_transaction_id_fuel_transactions"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_fuel_reviews")),
    )
    op.create_index(
        "uq_fuel_reviews_tenant_id_transaction_id", "fuel_reviews", ["tenant_id", "transaction_id"], unique=True
    )
    rls.tenant_table("fuel_sites", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("fuel_transactions", ("SELECT", "INSERT", "UPDATE"))
    # Decisions and applied discounts are history: the application may add them, never change them.
    rls.tenant_table("fuel_discounts", ("SELECT", "INSERT"))
    rls.tenant_table("fuel_reviews", ("SELECT", "INSERT"))


def downgrade() -> None:
    op.drop_index("uq_fuel_reviews_tenant_id_transaction_id", table_name="fuel_reviews")

    op.drop_table("fuel_reviews")
    op.drop_index("uq_fuel_discounts_tenant_id_redemption_id", table_name="fuel_discounts")

    op.drop_table("fuel_discounts")
    op.drop_index("ix_fuel_transactions_site", table_name="fuel_transactions")
    op.drop_index("ix_fuel_transactions_member", table_name="fuel_transactions")
    op.drop_index("ix_fuel_transactions_flagged", table_name="fuel_transactions")

    op.drop_table("fuel_transactions")
    op.drop_index("uq_fuel_sites_tenant_id_code", table_name="fuel_sites")

    op.drop_table("fuel_sites")
