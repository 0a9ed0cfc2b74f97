"""Background exports to S3 (data_exports): kind, format, destination, state and progress.

Revision ID: 0015_data_exports
Revises: 0014_member_loyalty
Create Date: 2026-12-05 17:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0015_data_exports"
down_revision: str | Sequence[str] | None = "0014_member_loyalty"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "data_exports",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filters", JSON, nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=True),
        sa.Column("bytes_written", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_data_exports_state")),
        sa.CheckConstraint("format IN ('csv', 'parquet')", name=op.f("ck_data_exports_format")),
        sa.CheckConstraint("rows_done >= 0", name=op.f("ck_data_exports_rows_done")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_data_exports_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_data_exports")),
    )
    op.create_index("ix_data_exports_created", "data_exports", ["tenant_id", "created_at"], unique=False)
    rls.tenant_table("data_exports")


def downgrade() -> None:
    op.drop_index("ix_data_exports_created", table_name="data_exports")
    op.drop_table("data_exports")
