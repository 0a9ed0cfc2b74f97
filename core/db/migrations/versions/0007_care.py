"""Care requests (what to say to which member, and why), recorded idempotently.

Revision ID: 0007_care
Revises: 0006_billing
Create Date: 2026-11-22 09:11:45.451409
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0007_care"
down_revision: str | Sequence[str] | None = "0006_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_requests",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=80), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('service', 'marketing', 'safety')", name=op.f("ck_care_requests_purpose")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_care_requests_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_requests")),
    )
    op.create_index("ix_care_requests_member", "care_requests", ["tenant_id", "member_id", "created_at"], unique=False)
    op.create_index("uq_care_requests_tenant_id_dedupe_key", "care_requests", ["tenant_id", "dedupe_key"], unique=True)
    rls.tenant_table("care_requests", ("SELECT", "INSERT"), update_columns=("status",))


def downgrade() -> None:
    op.drop_index("uq_care_requests_tenant_id_dedupe_key", table_name="care_requests")
    op.drop_index("ix_care_requests_member", table_name="care_requests")
    op.drop_table("care_requests")
