"""The care engine: templates, rules, the tenant's calendar, occasions (one per stable key) and messages.

Revision ID: 0013_care_engine
Revises: 0012_webhook_signature_scheme
Create Date: 2026-12-05 17:05:00.202104
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import core.db.base
from core.db import rls

revision: str = "0013_care_engine"
down_revision: str | Sequence[str] | None = "0012_webhook_signature_scheme"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_holidays",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_holidays")),
    )
    with op.batch_alter_table("care_holidays", schema=None) as batch_op:
        batch_op.create_index("uq_care_holidays_tenant_id_day", ["tenant_id", "day"], unique=True)

    op.create_table(
        "care_templates",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=80), nullable=True),
        sa.Column("default_locale", sa.String(length=35), nullable=False),
        sa.Column("texts", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False),
        sa.Column("created_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_templates")),
    )
    with op.batch_alter_table("care_templates", schema=None) as batch_op:
        batch_op.create_index("uq_care_templates_tenant_id_name", ["tenant_id", "name"], unique=True)

    op.create_table(
        "care_rules",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=80), nullable=False),
        sa.Column("params", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False),
        sa.Column(
            "audience", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column(
            "channels", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("valid_for_hours", sa.Integer(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('service', 'marketing', 'safety')", name=op.f("ck_care_rules_purpose")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "template_id"],
            ["care_templates.tenant_id", "care_templates.id"],
            name=op.f("fk_care_rules_tenant_id_template_id_care_templates"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_rules")),
    )
    with op.batch_alter_table("care_rules", schema=None) as batch_op:
        batch_op.create_index("ix_care_rules_trigger", ["tenant_id", "trigger"], unique=False)
        batch_op.create_index("uq_care_rules_tenant_id_name", ["tenant_id", "name"], unique=True)

    op.create_table(
        "care_occasions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column(
            "variables", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("occurred_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_care_occasions_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_occasions")),
    )
    with op.batch_alter_table("care_occasions", schema=None) as batch_op:
        batch_op.create_index("ix_care_occasions_member", ["tenant_id", "member_id"], unique=False)
        batch_op.create_index("uq_care_occasions_tenant_id_key", ["tenant_id", "key"], unique=True)

    op.create_table(
        "care_messages",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occasion_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("due_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("channel IN ('email', 'sms', 'webhook')", name=op.f("ck_care_messages_channel")),
        sa.CheckConstraint("purpose IN ('service', 'marketing', 'safety')", name=op.f("ck_care_messages_purpose")),
        sa.CheckConstraint(
            "state IN ('queued', 'deferred', 'sent', 'delivered', 'failed', 'suppressed')",
            name=op.f("ck_care_messages_state"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_care_messages_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "occasion_id"],
            ["care_occasions.tenant_id", "care_occasions.id"],
            name=op.f("fk_care_messages_tenant_id_occasion_id_care_occasions"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "rule_id"],
            ["care_rules.tenant_id", "care_rules.id"],
            name=op.f("fk_care_messages_tenant_id_rule_id_care_rules"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_care_messages")),
    )
    with op.batch_alter_table("care_messages", schema=None) as batch_op:
        batch_op.create_index("ix_care_messages_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_care_messages_due",
            ["tenant_id", "due_at"],
            unique=False,
            postgresql_where=sa.text("state IN ('queued', 'deferred')"),
            sqlite_where=sa.text("state IN ('queued', 'deferred')"),
        )
        batch_op.create_index("ix_care_messages_member", ["tenant_id", "member_id", "created_at"], unique=False)
        batch_op.create_index(
            "uq_care_messages_tenant_id_occasion_id_rule_id", ["tenant_id", "occasion_id", "rule_id"], unique=True
        )

    for table in ("care_holidays", "care_templates", "care_rules", "care_occasions"):
        rls.tenant_table(table)
    rls.tenant_table("care_messages")


def downgrade() -> None:
    with op.batch_alter_table("care_messages", schema=None) as batch_op:
        batch_op.drop_index("uq_care_messages_tenant_id_occasion_id_rule_id")
        batch_op.drop_index("ix_care_messages_member")
        batch_op.drop_index(
            "ix_care_messages_due",
            postgresql_where=sa.text("state IN ('queued', 'deferred')"),
            sqlite_where=sa.text("state IN ('queued', 'deferred')"),
        )
        batch_op.drop_index("ix_care_messages_created")

    op.drop_table("care_messages")
    with op.batch_alter_table("care_occasions", schema=None) as batch_op:
        batch_op.drop_index("uq_care_occasions_tenant_id_key")
        batch_op.drop_index("ix_care_occasions_member")

    op.drop_table("care_occasions")
    with op.batch_alter_table("care_rules", schema=None) as batch_op:
        batch_op.drop_index("uq_care_rules_tenant_id_name")
        batch_op.drop_index("ix_care_rules_trigger")

    op.drop_table("care_rules")
    with op.batch_alter_table("care_templates", schema=None) as batch_op:
        batch_op.drop_index("uq_care_templates_tenant_id_name")

    op.drop_table("care_templates")
    with op.batch_alter_table("care_holidays", schema=None) as batch_op:
        batch_op.drop_index("uq_care_holidays_tenant_id_day")

    op.drop_table("care_holidays")
