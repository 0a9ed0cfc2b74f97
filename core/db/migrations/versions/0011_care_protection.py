"""Care protections: send tallies per member and local day (caps), per-member reservation locks, the tenant's
suppression list and care settings, and the platform's generated secrets (unsubscribe link signing key).

Revision ID: 0011_care_protection
Revises: 0010_measurement
Create Date: 2026-12-05 17:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0011_care_protection"
down_revision: str | Sequence[str] | None = "0010_measurement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _member_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "member_id"],
        ["members.tenant_id", "members.id"],
        name=op.f(f"fk_{table}_tenant_id_member_id_members"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "care_send_tallies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.CheckConstraint("sent >= 0", name=op.f("ck_care_send_tallies_sent")),
        _member_fk("care_send_tallies"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "member_id", "day", "purpose", "category", name=op.f("pk_care_send_tallies")
        ),
    )
    op.create_table(
        "care_send_locks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("reservations", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _member_fk("care_send_locks"),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", name=op.f("pk_care_send_locks")),
    )
    op.create_table(
        "care_suppressions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms')", name=op.f("ck_care_suppressions_channel")),
        sa.CheckConstraint(
            "reason IN ('hard_bounce', 'complaint', 'manual', 'invalid')", name=op.f("ck_care_suppressions_reason")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "channel", "address", name=op.f("pk_care_suppressions")),
    )
    op.create_index(
        "ix_care_suppressions_tenant_id_created_at", "care_suppressions", ["tenant_id", "created_at"], unique=False
    )
    op.create_table(
        "care_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("email_from", sa.String(length=320), nullable=True),
        sa.Column("email_reply_to", sa.String(length=320), nullable=True),
        sa.Column("sms_sender_id", sa.String(length=11), nullable=True),
        sa.Column("protection", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_care_settings_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_care_settings")),
    )
    op.create_table(
        "platform_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_platform_secrets")),
    )
    rls.tenant_table("care_send_tallies", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("care_send_locks", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("care_suppressions", ("SELECT", "INSERT", "UPDATE", "DELETE"))
    rls.tenant_table("care_settings", ("SELECT", "INSERT", "UPDATE"))
    rls.global_table("platform_secrets", ("SELECT", "INSERT"))


def downgrade() -> None:
    op.drop_table("platform_secrets")
    op.drop_table("care_settings")
    op.drop_index("ix_care_suppressions_tenant_id_created_at", table_name="care_suppressions")
    op.drop_table("care_suppressions")
    op.drop_table("care_send_locks")
    op.drop_table("care_send_tallies")
