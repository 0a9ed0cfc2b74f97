"""Utility plugin: service accounts, outages and the accounts they affect, notices, compensation, call tasks,
enrolment credits, bills, meter reads, peak-time events and rebates.

Revision ID: utility_0001
Revises: (the utility branch starts here; needs core's 0007_care)
Create Date: 2026-12-05 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core import rls

revision: str = "utility_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("utility",)
depends_on: str | Sequence[str] | None = "0007_care"

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


def upgrade() -> None:
    op.create_table(
        "utility_accounts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("account_number", sa.String(length=40), nullable=False),
        sa.Column("premises_address", sa.String(length=300), nullable=False),
        sa.Column("meter_id", sa.String(length=40), nullable=True),
        sa.Column("feeder", sa.String(length=40), nullable=False),
        sa.Column("area", sa.String(length=40), nullable=False),
        sa.Column("customer_class", sa.String(length=16), nullable=False),
        sa.Column("credit_rating", sa.String(length=8), nullable=True),
        sa.Column("account_manager", sa.String(length=120), nullable=True),
        sa.Column("psr_needs", JSON, nullable=False),
        sa.Column("psr_consent", sa.Boolean(), nullable=False),
        sa.Column("psr_source", sa.String(length=80), nullable=True),
        sa.Column("psr_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("psr_review_date", sa.Date(), nullable=True),
        sa.Column("psr", sa.Boolean(), nullable=False),
        sa.Column("medical", sa.Boolean(), nullable=False),
        sa.Column("paperless", sa.Boolean(), nullable=False),
        sa.Column("autopay", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "customer_class IN ('residential', 'sme', 'large', 'public')",
            name=op.f("ck_utility_accounts_customer_class"),
        ),
        sa.CheckConstraint("status IN ('active', 'closed')", name=op.f("ck_utility_accounts_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_utility_accounts_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_utility_accounts")),
    )
    op.create_index("ix_utility_accounts_area", "utility_accounts", ["tenant_id", "area"], unique=False)
    op.create_index("ix_utility_accounts_feeder", "utility_accounts", ["tenant_id", "feeder"], unique=False)
    op.create_index("ix_utility_accounts_member", "utility_accounts", ["tenant_id", "member_id"], unique=False)
    op.create_index(
        "uq_utility_accounts_tenant_id_account_number", "utility_accounts", ["tenant_id", "account_number"], unique=True
    )
    rls.tenant_table("utility_accounts", PRIVILEGES)

    op.create_table(
        "utility_outages",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("feeders", JSON, nullable=False),
        sa.Column("areas", JSON, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("etr", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("contact_line", sa.String(length=40), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("window_version", sa.Integer(), nullable=False),
        sa.Column("etr_version", sa.Integer(), nullable=False),
        sa.Column("affected_accounts", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('planned', 'unplanned')", name=op.f("ck_utility_outages_kind")),
        sa.CheckConstraint(
            "status IN ('scheduled', 'confirmed', 'restored', 'cancelled')", name=op.f("ck_utility_outages_status")
        ),
        sa.CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_utility_outages_window")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_utility_outages")),
    )
    op.create_index("ix_utility_outages_status", "utility_outages", ["tenant_id", "status", "starts_at"], unique=False)
    op.create_index(
        "uq_utility_outages_tenant_id_reference", "utility_outages", ["tenant_id", "reference"], unique=True
    )
    rls.tenant_table("utility_outages", PRIVILEGES)

    op.create_table(
        "utility_outage_accounts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("outage_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("customer_class", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("medical", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("out_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_outage_accounts_tenant_id_account_id_utility_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_utility_outage_accounts_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "outage_id"],
            ["utility_outages.tenant_id", "utility_outages.id"],
            name=op.f("fk_utility_outage_accounts_tenant_id_outage_id_utility_outages"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "outage_id", "account_id", name=op.f("pk_utility_outage_accounts")),
    )
    op.create_index(
        "ix_utility_outage_accounts_account", "utility_outage_accounts", ["tenant_id", "account_id"], unique=False
    )
    rls.tenant_table("utility_outage_accounts", PRIVILEGES)

    op.create_table(
        "utility_notices",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("outage_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_notices_tenant_id_account_id_utility_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_utility_notices_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "outage_id"],
            ["utility_outages.tenant_id", "utility_outages.id"],
            name=op.f("fk_utility_notices_tenant_id_outage_id_utility_outages"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "outage_id", "account_id", "stage", name=op.f("pk_utility_notices")),
    )
    rls.tenant_table("utility_notices", PRIVILEGES)

    op.create_table(
        "utility_compensations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("outage_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("paid_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=False),
        sa.Column("increments", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('none', 'due', 'paid')", name=op.f("ck_utility_compensations_status")),
        sa.CheckConstraint(
            "amount >= 0 AND paid_amount >= 0 AND points >= 0 AND minutes >= 0",
            name=op.f("ck_utility_compensations_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_compensations_tenant_id_account_id_utility_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_utility_compensations_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "outage_id"],
            ["utility_outages.tenant_id", "utility_outages.id"],
            name=op.f("fk_utility_compensations_tenant_id_outage_id_utility_outages"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_utility_compensations")),
    )
    op.create_index(
        "ix_utility_compensations_account", "utility_compensations", ["tenant_id", "account_id"], unique=False
    )
    op.create_index(
        "ix_utility_compensations_due", "utility_compensations", ["tenant_id", "status", "created_at"], unique=False
    )
    op.create_index(
        "uq_utility_compensations_outage_account",
        "utility_compensations",
        ["tenant_id", "outage_id", "account_id"],
        unique=True,
    )
    rls.tenant_table("utility_compensations", PRIVILEGES)

    op.create_table(
        "utility_call_tasks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("outage_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("assignee", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'done')", name=op.f("ck_utility_call_tasks_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_call_tasks_tenant_id_account_id_utility_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "outage_id"],
            ["utility_outages.tenant_id", "utility_outages.id"],
            name=op.f("fk_utility_call_tasks_tenant_id_outage_id_utility_outages"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_utility_call_tasks")),
    )
    op.create_index(
        "ix_utility_call_tasks_open", "utility_call_tasks", ["tenant_id", "status", "assignee", "due_at"], unique=False
    )
    op.create_index(
        "uq_utility_call_tasks_once",
        "utility_call_tasks",
        ["tenant_id", "outage_id", "account_id", "reason"],
        unique=True,
    )
    rls.tenant_table("utility_call_tasks", PRIVILEGES)

    op.create_table(
        "utility_enrolments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clawed_back", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('paperless', 'autopay')", name=op.f("ck_utility_enrolments_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_enrolments_tenant_id_account_id_utility_accounts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "kind", name=op.f("pk_utility_enrolments")),
    )
    rls.tenant_table("utility_enrolments", PRIVILEGES)

    op.create_table(
        "utility_bills",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("bill_id", sa.String(length=64), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("paid_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("on_time", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_bills_tenant_id_account_id_utility_accounts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "bill_id", name=op.f("pk_utility_bills")),
    )
    rls.tenant_table("utility_bills", PRIVILEGES)

    op.create_table(
        "utility_meter_reads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("kwh", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.CheckConstraint("kwh >= 0 AND minutes > 0", name=op.f("ck_utility_meter_reads_read")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_meter_reads_tenant_id_account_id_utility_accounts"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "account_id", "starts_at", name=op.f("pk_utility_meter_reads")),
    )
    rls.tenant_table("utility_meter_reads", PRIVILEGES)

    op.create_table(
        "utility_peak_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feeders", JSON, nullable=False),
        sa.Column("areas", JSON, nullable=False),
        sa.Column("rate_per_kwh", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('scheduled', 'settled', 'cancelled')", name=op.f("ck_utility_peak_events_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_utility_peak_events_window")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_utility_peak_events")),
    )
    op.create_index(
        "ix_utility_peak_events_status", "utility_peak_events", ["tenant_id", "status", "starts_at"], unique=False
    )
    rls.tenant_table("utility_peak_events", PRIVILEGES)

    op.create_table(
        "utility_peak_rebates",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("peak_event_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("baseline_kwh", sa.Numeric(precision=12, scale=3), nullable=True),
        sa.Column("event_kwh", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("saved_kwh", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["utility_accounts.tenant_id", "utility_accounts.id"],
            name=op.f("fk_utility_peak_rebates_tenant_id_account_id_utility_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_utility_peak_rebates_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "peak_event_id"],
            ["utility_peak_events.tenant_id", "utility_peak_events.id"],
            name=op.f("fk_utility_peak_rebates_tenant_id_peak_event_id_utility_peak_events"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "peak_event_id", "account_id", name=op.f("pk_utility_peak_rebates")),
    )
    rls.tenant_table("utility_peak_rebates", PRIVILEGES)


def downgrade() -> None:
    op.drop_table("utility_peak_rebates")
    op.drop_index("ix_utility_peak_events_status", table_name="utility_peak_events")
    op.drop_table("utility_peak_events")
    op.drop_table("utility_meter_reads")
    op.drop_table("utility_bills")
    op.drop_table("utility_enrolments")
    op.drop_index("ix_utility_call_tasks_open", table_name="utility_call_tasks")
    op.drop_index("uq_utility_call_tasks_once", table_name="utility_call_tasks")
    op.drop_table("utility_call_tasks")
    op.drop_index("ix_utility_compensations_account", table_name="utility_compensations")
    op.drop_index("ix_utility_compensations_due", table_name="utility_compensations")
    op.drop_index("uq_utility_compensations_outage_account", table_name="utility_compensations")
    op.drop_table("utility_compensations")
    op.drop_table("utility_notices")
    op.drop_index("ix_utility_outage_accounts_account", table_name="utility_outage_accounts")
    op.drop_table("utility_outage_accounts")
    op.drop_index("ix_utility_outages_status", table_name="utility_outages")
    op.drop_index("uq_utility_outages_tenant_id_reference", table_name="utility_outages")
    op.drop_table("utility_outages")
    op.drop_index("ix_utility_accounts_area", table_name="utility_accounts")
    op.drop_index("ix_utility_accounts_feeder", table_name="utility_accounts")
    op.drop_index("ix_utility_accounts_member", table_name="utility_accounts")
    op.drop_index("uq_utility_accounts_tenant_id_account_number", table_name="utility_accounts")
    op.drop_table("utility_accounts")
