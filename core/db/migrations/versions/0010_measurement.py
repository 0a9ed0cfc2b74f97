"""Measurement models: AHP factor hierarchies with their judgements and computed weights, one active per kind.

Revision ID: 0010_measurement
Revises: 0009_tenant_locale
Create Date: 2026-12-05 17:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0010_measurement"
down_revision: str | Sequence[str] | None = "0009_tenant_locale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "measurement_models",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("weights", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('satisfaction', 'loyalty')", name=op.f("ck_measurement_models_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_measurement_models_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_measurement_models")),
    )
    op.create_index("uq_measurement_models_tenant_id_code", "measurement_models", ["tenant_id", "code"], unique=True)
    op.create_index(
        "uq_measurement_models_active_kind",
        "measurement_models",
        ["tenant_id", "kind"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    rls.tenant_table("measurement_models")


def downgrade() -> None:
    op.drop_index("uq_measurement_models_active_kind", table_name="measurement_models")
    op.drop_index("uq_measurement_models_tenant_id_code", table_name="measurement_models")
    op.drop_table("measurement_models")
