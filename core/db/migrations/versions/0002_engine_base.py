"""Engine base: the job queue, the outbox, tiers and tier history, member metrics; tier columns on members.

Revision ID: 0002_engine_base
Revises: 0001_core
Create Date: 2026-11-22 08:22:54.890465
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0002_engine_base"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("dedupe_key", sa.String(length=250), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'dead')", name=op.f("ck_jobs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "run_at"], unique=False)
    op.create_index(
        "ix_jobs_finished",
        "jobs",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text("status = 'done'"),
        sqlite_where=sa.text("status = 'done'"),
    )
    op.create_index("uq_jobs_dedupe_key", "jobs", ["dedupe_key"], unique=True)
    op.create_table(
        "outbox_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_outbox_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_outbox_events")),
    )
    op.create_index(
        "ix_outbox_events_undispatched",
        "outbox_events",
        ["tenant_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "tiers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column(
            "qualification",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "benefits", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "validity", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("downgrade", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("downgrade IN ('one_step', 'to_qualified')", name=op.f("ck_tiers_downgrade")),
        sa.CheckConstraint("rank >= 0", name=op.f("ck_tiers_rank_not_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tiers_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tiers")),
    )
    op.create_index("uq_tiers_tenant_id_code", "tiers", ["tenant_id", "code"], unique=True)
    op.create_index("uq_tiers_tenant_id_rank", "tiers", ["tenant_id", "rank"], unique=True)
    op.create_table(
        "member_metrics",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_member_metrics_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", "metric", "day", name=op.f("pk_member_metrics")),
    )
    op.create_table(
        "tier_changes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("from_tier_id", sa.Uuid(), nullable=True),
        sa.Column("to_tier_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_tier_changes_tenant_id_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tier_changes")),
    )
    op.create_index("ix_tier_changes_member", "tier_changes", ["tenant_id", "member_id", "changed_at"], unique=False)
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("tier_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("tier_valid_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("tier_floor_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("tier_floor_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_members_tenant_id_tier_id", ["tenant_id", "tier_id"], unique=False)
        batch.create_index("ix_members_tenant_id_tier_valid_until", ["tenant_id", "tier_valid_until"], unique=False)
        batch.create_foreign_key(
            op.f("fk_members_tenant_id_tier_id_tiers"), "tiers", ["tenant_id", "tier_id"], ["tenant_id", "id"]
        )
        batch.create_foreign_key(
            op.f("fk_members_tenant_id_tier_floor_id_tiers"),
            "tiers",
            ["tenant_id", "tier_floor_id"],
            ["tenant_id", "id"],
        )
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("config_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("auto_enrol", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column(
                "enabled_plugins",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="[]",
            )
        )
    rls.global_table("jobs")
    for table in ("outbox_events", "tiers", "member_metrics"):
        rls.tenant_table(table)
    rls.tenant_table("tier_changes", ("SELECT", "INSERT"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("enabled_plugins")
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("auto_enrol")
        batch.drop_column("config_version")
    with op.batch_alter_table("members") as batch:
        batch.drop_constraint(op.f("fk_members_tenant_id_tier_floor_id_tiers"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_members_tenant_id_tier_id_tiers"), type_="foreignkey")
        batch.drop_index("ix_members_tenant_id_tier_valid_until")
        batch.drop_index("ix_members_tenant_id_tier_id")
        for column in ("tier_floor_until", "tier_floor_id", "tier_valid_until", "tier_since", "tier_id"):
            batch.drop_column(column)
    op.drop_index("ix_tier_changes_member", table_name="tier_changes")
    op.drop_table("tier_changes")
    op.drop_table("member_metrics")
    op.drop_index("uq_tiers_tenant_id_rank", table_name="tiers")
    op.drop_index("uq_tiers_tenant_id_code", table_name="tiers")
    op.drop_table("tiers")
    op.drop_index(
        "ix_outbox_events_undispatched",
        table_name="outbox_events",
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.drop_table("outbox_events")
    op.drop_index("uq_jobs_dedupe_key", table_name="jobs")
    op.drop_index(
        "ix_jobs_finished",
        table_name="jobs",
        postgresql_where=sa.text("status = 'done'"),
        sqlite_where=sa.text("status = 'done'"),
    )
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
