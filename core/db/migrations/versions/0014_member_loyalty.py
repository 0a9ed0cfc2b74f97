"""Member loyalty (metrics, RFM, type, index, churn and value as of the last nightly run) and the tenant's
measurement settings.

Revision ID: 0014_member_loyalty
Revises: 0013_care_engine
Create Date: 2026-12-05 17:25:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0014_member_loyalty"
down_revision: str | Sequence[str] | None = "0013_care_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "measurement_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("last_run", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_measurement_settings_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_measurement_settings")),
    )
    rls.tenant_table("measurement_settings")
    op.create_table(
        "member_loyalty",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("repeat_purchases", sa.Integer(), nullable=False),
        sa.Column("return_rate", sa.Float(), nullable=True),
        sa.Column("churned", sa.Boolean(), nullable=False),
        sa.Column("tenure_days", sa.Integer(), nullable=False),
        sa.Column("price_sensitivity", sa.Float(), nullable=True),
        sa.Column("incident_tolerance", sa.Float(), nullable=True),
        sa.Column("share_of_need", sa.Float(), nullable=True),
        sa.Column("r_score", sa.SmallInteger(), nullable=False),
        sa.Column("f_score", sa.SmallInteger(), nullable=False),
        sa.Column("m_score", sa.SmallInteger(), nullable=False),
        sa.Column("rfm_segment", sa.String(length=24), nullable=False),
        sa.Column("loyalty_type", sa.String(length=16), nullable=True),
        sa.Column("type_reasons", JSON, nullable=False),
        sa.Column("loyalty_index", sa.Float(), nullable=True),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("expected_purchases", sa.Float(), nullable=True),
        sa.Column("expected_spend", sa.Float(), nullable=True),
        sa.Column("expected_value", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "r_score BETWEEN 0 AND 5 AND f_score BETWEEN 0 AND 5 AND m_score BETWEEN 0 AND 5",
            name=op.f("ck_member_loyalty_scores"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_member_loyalty_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", name=op.f("pk_member_loyalty")),
    )
    op.create_index("ix_member_loyalty_segment", "member_loyalty", ["tenant_id", "rfm_segment"], unique=False)
    op.create_index("ix_member_loyalty_churn", "member_loyalty", ["tenant_id", "churn_probability"], unique=False)
    rls.tenant_table("member_loyalty")


def downgrade() -> None:
    op.drop_index("ix_member_loyalty_churn", table_name="member_loyalty")
    op.drop_index("ix_member_loyalty_segment", table_name="member_loyalty")
    op.drop_table("member_loyalty")
    op.drop_table("measurement_settings")
