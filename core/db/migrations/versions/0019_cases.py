"""Complaints and service cases: case_categories (SLAs), cases, case_history, case_breaches (one row per breach,
the key that makes the breach webhook exactly-once) and care_replies (members' inbound replies and their outcome).

Revision ID: 0019_cases
Revises: 0024_care_delivered
Create Date: 2026-12-05 19:48:15.843242
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0019_cases"
down_revision: str | Sequence[str] | None = "0024_care_delivered"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = ("case_categories", "cases", "care_replies", "case_breaches", "case_history")


def upgrade() -> None:
    op.create_table(
        "case_categories",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("names", JSON, nullable=False),
        sa.Column("default_priority", sa.String(length=8), nullable=False),
        sa.Column("first_reply_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("business_hours", JSON, nullable=True),
        sa.Column("notify", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "default_priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_case_categories_default_priority")
        ),
        sa.CheckConstraint(
            "first_reply_minutes IS NULL OR first_reply_minutes > 0",
            name=op.f("ck_case_categories_first_reply_minutes"),
        ),
        sa.CheckConstraint(
            "resolution_minutes IS NULL OR resolution_minutes > 0", name=op.f("ck_case_categories_resolution_minutes")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_case_categories_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_case_categories")),
    )
    with op.batch_alter_table("case_categories", schema=None) as batch_op:
        batch_op.create_index("uq_case_categories_tenant_id_code", ["tenant_id", "code"], unique=True)

    op.create_table(
        "cases",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("category_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("contact", sa.String(length=320), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=120), nullable=True),
        sa.Column("related", JSON, nullable=False),
        sa.Column("attachments", JSON, nullable=False),
        sa.Column("thread", sa.String(length=120), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_reply_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_reply_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", JSON, nullable=True),
        sa.Column("goodwill_points", sa.Integer(), nullable=True),
        sa.Column("goodwill_reward_id", sa.Uuid(), nullable=True),
        sa.Column("goodwill_given", JSON, nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'phone', 'web', 'app', 'store', 'letter', 'social', 'reply', 'plugin')",
            name=op.f("ck_cases_channel"),
        ),
        sa.CheckConstraint("kind IN ('complaint', 'request', 'question', 'compliment')", name=op.f("ck_cases_kind")),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_cases_priority")),
        sa.CheckConstraint(
            "status IN ('received', 'classified', 'assigned', 'investigating', 'resolved', 'replied', 'closed')",
            name=op.f("ck_cases_status"),
        ),
        sa.CheckConstraint("goodwill_points IS NULL OR goodwill_points > 0", name=op.f("ck_cases_goodwill_points")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "category_id"],
            ["case_categories.tenant_id", "case_categories.id"],
            name=op.f("fk_cases_tenant_id_category_id_case_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_cases_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cases_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_assignee", ["tenant_id", "assignee", "opened_at"], unique=False)
        batch_op.create_index("ix_cases_category", ["tenant_id", "category_id", "opened_at"], unique=False)
        batch_op.create_index(
            "ix_cases_first_reply_due",
            ["tenant_id", "first_reply_due_at"],
            unique=False,
            postgresql_where=sa.text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
            sqlite_where=sa.text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
        )
        batch_op.create_index("ix_cases_member", ["tenant_id", "member_id", "opened_at"], unique=False)
        batch_op.create_index("ix_cases_opened", ["tenant_id", "opened_at"], unique=False)
        batch_op.create_index(
            "ix_cases_resolution_due",
            ["tenant_id", "resolution_due_at"],
            unique=False,
            postgresql_where=sa.text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
            sqlite_where=sa.text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
        )
        batch_op.create_index("ix_cases_status", ["tenant_id", "status", "opened_at"], unique=False)
        batch_op.create_index("ix_cases_thread", ["tenant_id", "thread"], unique=False)
        batch_op.create_index(
            "uq_cases_tenant_id_reference",
            ["tenant_id", "reference"],
            unique=True,
            postgresql_where=sa.text("reference IS NOT NULL"),
            sqlite_where=sa.text("reference IS NOT NULL"),
        )

    op.create_table(
        "care_replies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("claimed_by", sa.String(length=40), nullable=True),
        sa.Column("claim", JSON, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('opted_out', 'claimed', 'case_opened', 'case_threaded')", name=op.f("ck_care_replies_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["cases.tenant_id", "cases.id"],
            name=op.f("fk_care_replies_tenant_id_case_id_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_care_replies_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_care_replies_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_replies")),
    )
    with op.batch_alter_table("care_replies", schema=None) as batch_op:
        batch_op.create_index("ix_care_replies_case", ["tenant_id", "case_id"], unique=False)
        batch_op.create_index("ix_care_replies_member", ["tenant_id", "member_id", "received_at"], unique=False)
        batch_op.create_index("ix_care_replies_received", ["tenant_id", "received_at"], unique=False)

    op.create_table(
        "case_breaches",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("clock", sa.String(length=12), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("clock IN ('first_reply', 'resolution')", name=op.f("ck_case_breaches_clock")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["cases.tenant_id", "cases.id"],
            name=op.f("fk_case_breaches_tenant_id_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "case_id", "clock", "due_at", name=op.f("pk_case_breaches")),
    )
    with op.batch_alter_table("case_breaches", schema=None) as batch_op:
        batch_op.create_index("ix_case_breaches_at", ["tenant_id", "breached_at"], unique=False)

    op.create_table(
        "case_history",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "case_id"],
            ["cases.tenant_id", "cases.id"],
            name=op.f("fk_case_history_tenant_id_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_case_history")),
    )
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.create_index("ix_case_history_case", ["tenant_id", "case_id", "at"], unique=False)

    for table in TABLES:
        rls.tenant_table(table)


def downgrade() -> None:
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.drop_index("ix_case_history_case")

    op.drop_table("case_history")
    with op.batch_alter_table("case_breaches", schema=None) as batch_op:
        batch_op.drop_index("ix_case_breaches_at")

    op.drop_table("case_breaches")
    with op.batch_alter_table("care_replies", schema=None) as batch_op:
        batch_op.drop_index("ix_care_replies_received")
        batch_op.drop_index("ix_care_replies_member")
        batch_op.drop_index("ix_care_replies_case")

    op.drop_table("care_replies")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cases_tenant_id_reference",
            postgresql_where=sa.text("reference IS NOT NULL"),
            sqlite_where=sa.text("reference IS NOT NULL"),
        )
        batch_op.drop_index("ix_cases_thread")
        batch_op.drop_index("ix_cases_status")
        batch_op.drop_index(
            "ix_cases_resolution_due",
            postgresql_where=sa.text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
            sqlite_where=sa.text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
        )
        batch_op.drop_index("ix_cases_opened")
        batch_op.drop_index("ix_cases_member")
        batch_op.drop_index(
            "ix_cases_first_reply_due",
            postgresql_where=sa.text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
            sqlite_where=sa.text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
        )
        batch_op.drop_index("ix_cases_category")
        batch_op.drop_index("ix_cases_assignee")

    op.drop_table("cases")
    with op.batch_alter_table("case_categories", schema=None) as batch_op:
        batch_op.drop_index("uq_case_categories_tenant_id_code")

    op.drop_table("case_categories")
