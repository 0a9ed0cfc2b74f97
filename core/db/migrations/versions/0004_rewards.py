"""Rewards and redemptions: the catalogue, vouchers and what became of them; RLS and grants.

Revision ID: 0004_rewards
Revises: 0002_engine_base
Create Date: 2026-11-22 08:33:16.753310
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0004_rewards"
down_revision: str | Sequence[str] | None = "0003_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("points_cost", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("per_member_limit", sa.Integer(), nullable=True),
        sa.Column("min_tier_rank", sa.Integer(), nullable=True),
        sa.Column(
            "tier_codes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voucher_valid_days", sa.Integer(), nullable=True),
        sa.Column("refund_on_expiry", sa.Boolean(), nullable=False),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "min_tier_rank IS NULL OR min_tier_rank >= 0", name=op.f("ck_rewards_min_tier_rank_not_negative")
        ),
        sa.CheckConstraint(
            "per_member_limit IS NULL OR per_member_limit > 0", name=op.f("ck_rewards_per_member_limit_positive")
        ),
        sa.CheckConstraint("points_cost > 0", name=op.f("ck_rewards_points_cost_positive")),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name=op.f("ck_rewards_stock_not_negative")),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from",
            name=op.f("ck_rewards_validity_ordered"),
        ),
        sa.CheckConstraint(
            "voucher_valid_days IS NULL OR voucher_valid_days > 0", name=op.f("ck_rewards_voucher_valid_days_positive")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_rewards_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_rewards")),
    )
    op.create_index("uq_rewards_tenant_id_code", "rewards", ["tenant_id", "code"], unique=True)
    op.create_table(
        "redemptions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("reward_id", sa.Uuid(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("voucher_code", sa.String(length=14), nullable=False),
        sa.Column("debit_entry_id", sa.Uuid(), nullable=False),
        sa.Column("restore_entry_id", sa.Uuid(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "fulfilment", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.CheckConstraint("status IN ('issued', 'used', 'cancelled', 'expired')", name=op.f("ck_redemptions_status")),
        sa.CheckConstraint("points > 0", name=op.f("ck_redemptions_points_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "debit_entry_id"],
            ["ledger_entries.tenant_id", "ledger_entries.id"],
            name=op.f("fk_redemptions_tenant_id_debit_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_redemptions_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "restore_entry_id"],
            ["ledger_entries.tenant_id", "ledger_entries.id"],
            name=op.f("fk_redemptions_tenant_id_restore_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reward_id"],
            ["rewards.tenant_id", "rewards.id"],
            name=op.f("fk_redemptions_tenant_id_reward_id_rewards"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_redemptions")),
    )
    op.create_index(
        "ix_redemptions_expiring",
        "redemptions",
        ["tenant_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'issued' AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'issued' AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_redemptions_member_reward", "redemptions", ["tenant_id", "member_id", "reward_id"], unique=False
    )
    op.create_index("ix_redemptions_reward", "redemptions", ["tenant_id", "reward_id"], unique=False)
    op.create_index("uq_redemptions_tenant_id_voucher_code", "redemptions", ["tenant_id", "voucher_code"], unique=True)
    # Neither is ever deleted: a withdrawn reward is deactivated, and a redemption's history stays. What a
    # redemption took (member, reward, points, code, debit) never changes; only what became of it does.
    rls.tenant_table("rewards", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table(
        "redemptions",
        ("SELECT", "INSERT"),
        update_columns=(
            "status",
            "restore_entry_id",
            "used_at",
            "cancelled_at",
            "expired_at",
            "fulfilment",
            "details",
        ),
    )


def downgrade() -> None:
    op.drop_index("uq_redemptions_tenant_id_voucher_code", table_name="redemptions")
    op.drop_index("ix_redemptions_reward", table_name="redemptions")
    op.drop_index("ix_redemptions_member_reward", table_name="redemptions")
    op.drop_index(
        "ix_redemptions_expiring",
        table_name="redemptions",
        postgresql_where=sa.text("status = 'issued' AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'issued' AND expires_at IS NOT NULL"),
    )
    op.drop_table("redemptions")
    op.drop_index("uq_rewards_tenant_id_code", table_name="rewards")
    op.drop_table("rewards")
