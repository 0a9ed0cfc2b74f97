"""Microfinance plugin: borrowers, groups and meetings, loan products, loans, instalments, repayments and their
allocations, loan actions, visits and follow-up tasks.

Revision ID: microfinance_0001
Revises: (the microfinance branch starts here; needs core's 0018_jobs_at_scale)
Create Date: 2026-12-05 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core import rls

revision: str = "microfinance_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("microfinance",)
depends_on: str | Sequence[str] | None = "0018_jobs_at_scale"

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "microfinance_groups",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("centre", sa.String(length=100), nullable=False),
        sa.Column("meeting_day", sa.SmallInteger(), nullable=False),
        sa.Column("leader_member_id", sa.Uuid(), nullable=True),
        sa.Column("max_members", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("max_members >= 2", name=op.f("ck_microfinance_groups_max_members")),
        sa.CheckConstraint("meeting_day BETWEEN 0 AND 6", name=op.f("ck_microfinance_groups_meeting_day")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_groups")),
    )
    op.create_index("uq_microfinance_groups_tenant_id_name", "microfinance_groups", ["tenant_id", "name"], unique=True)
    op.create_table(
        "microfinance_products",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interest_method", sa.String(length=16), nullable=False),
        sa.Column("annual_rate", sa.Numeric(precision=9, scale=4), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("instalments", sa.Integer(), nullable=False),
        sa.Column("grace", sa.Integer(), nullable=False),
        sa.Column("instalment_fee", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("late_penalty", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("penalty_after_days", sa.Integer(), nullable=False),
        sa.Column("min_principal", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("max_principal", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "frequency IN ('weekly', 'fortnightly', 'monthly')", name=op.f("ck_microfinance_products_frequency")
        ),
        sa.CheckConstraint("interest_method IN ('flat', 'declining')", name=op.f("ck_microfinance_products_method")),
        sa.CheckConstraint(
            "annual_rate >= 0 AND instalment_fee >= 0 AND late_penalty >= 0",
            name=op.f("ck_microfinance_products_amounts"),
        ),
        sa.CheckConstraint(
            "instalments >= 1 AND grace >= 0 AND grace < instalments", name=op.f("ck_microfinance_products_term")
        ),
        sa.CheckConstraint(
            "min_principal > 0 AND max_principal >= min_principal", name=op.f("ck_microfinance_products_limits")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_products")),
    )
    op.create_index(
        "uq_microfinance_products_tenant_id_code", "microfinance_products", ["tenant_id", "code"], unique=True
    )
    op.create_table(
        "microfinance_meetings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_id"],
            ["microfinance_groups.tenant_id", "microfinance_groups.id"],
            name=op.f("fk_microfinance_meetings_tenant_id_group_id_microfinance_groups"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_meetings")),
    )
    op.create_index(
        "uq_microfinance_meetings_tenant_id_group_id_held_on",
        "microfinance_meetings",
        ["tenant_id", "group_id", "held_on"],
        unique=True,
    )
    op.create_table(
        "microfinance_attendance",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "meeting_id"],
            ["microfinance_meetings.tenant_id", "microfinance_meetings.id"],
            name=op.f("fk_microfinance_attendance_tenant_id_meeting_id_microfinance_meetings"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_attendance_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "meeting_id", "member_id", name=op.f("pk_microfinance_attendance")),
    )
    op.create_index(
        "ix_microfinance_attendance_member", "microfinance_attendance", ["tenant_id", "member_id"], unique=False
    )
    op.create_table(
        "microfinance_bereavements",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_microfinance_bereavements_dates")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_bereavements_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_bereavements")),
    )
    op.create_index(
        "ix_microfinance_bereavements_member",
        "microfinance_bereavements",
        ["tenant_id", "member_id", "ends_on"],
        unique=False,
    )
    op.create_table(
        "microfinance_borrowers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("household_income_monthly", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("business", sa.String(length=200), nullable=True),
        sa.Column("village", sa.String(length=200), nullable=True),
        sa.Column("officer", sa.String(length=100), nullable=True),
        sa.Column("training_on", sa.Date(), nullable=True),
        sa.Column("trainer", sa.String(length=100), nullable=True),
        sa.Column("next_loan_limit", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("clean_cycles", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("household_income_monthly >= 0", name=op.f("ck_microfinance_borrowers_income")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_borrowers_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "member_id", name=op.f("pk_microfinance_borrowers")),
    )
    op.create_index(
        "ix_microfinance_borrowers_officer", "microfinance_borrowers", ["tenant_id", "officer"], unique=False
    )
    op.create_table(
        "microfinance_group_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "group_id"],
            ["microfinance_groups.tenant_id", "microfinance_groups.id"],
            name=op.f("fk_microfinance_group_members_tenant_id_group_id_microfinance_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_group_members_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "group_id", "member_id", name=op.f("pk_microfinance_group_members")),
    )
    op.create_index(
        "uq_microfinance_group_members_tenant_id_member_id",
        "microfinance_group_members",
        ["tenant_id", "member_id"],
        unique=True,
    )
    op.create_table(
        "microfinance_loans",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("officer", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("principal", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interest_method", sa.String(length=16), nullable=False),
        sa.Column("annual_rate", sa.Numeric(precision=9, scale=4), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("instalments", sa.Integer(), nullable=False),
        sa.Column("grace", sa.Integer(), nullable=False),
        sa.Column("instalment_fee", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=True),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("indebtedness", JSON, nullable=True),
        sa.Column("override_reason", sa.String(length=500), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disbursed_on", sa.Date(), nullable=True),
        sa.Column("first_due_on", sa.Date(), nullable=True),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("written_off_on", sa.Date(), nullable=True),
        sa.Column("max_days_past_due", sa.Integer(), nullable=False),
        sa.Column("perfect", sa.Boolean(), nullable=True),
        sa.Column("rebate_amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("on_time_streak", sa.Integer(), nullable=False),
        sa.Column("collection_requested_on", sa.Date(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('applied', 'approved', 'rejected') OR signed_at IS NOT NULL",
            name=op.f("ck_microfinance_loans_signed_before_disbursed"),
        ),
        sa.CheckConstraint(
            "status IN ('applied', 'approved', 'signed', 'disbursed', 'active', 'closed', 'written_off', 'rejected')",
            name=op.f("ck_microfinance_loans_status"),
        ),
        sa.CheckConstraint("principal > 0", name=op.f("ck_microfinance_loans_principal")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_loans_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "product_id"],
            ["microfinance_products.tenant_id", "microfinance_products.id"],
            name=op.f("fk_microfinance_loans_tenant_id_product_id_microfinance_products"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_loans")),
    )
    op.create_index(
        "ix_microfinance_loans_member", "microfinance_loans", ["tenant_id", "member_id", "status"], unique=False
    )
    op.create_index("ix_microfinance_loans_status", "microfinance_loans", ["tenant_id", "status"], unique=False)
    op.create_table(
        "microfinance_tasks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occasion_key", sa.String(length=200), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=True),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("officer", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('use_of_funds', 'monthly_visit', 'late_instalment', 'partial_payment', 'overdue_visit', 'group_arrears', 'attendance')",
            name=op.f("ck_microfinance_tasks_kind"),
        ),
        sa.CheckConstraint("state IN ('open', 'done', 'cancelled')", name=op.f("ck_microfinance_tasks_state")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_tasks_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_tasks")),
    )
    op.create_index("ix_microfinance_tasks_loan", "microfinance_tasks", ["tenant_id", "loan_id", "state"], unique=False)
    op.create_index(
        "ix_microfinance_tasks_worklist",
        "microfinance_tasks",
        ["tenant_id", "state", "officer", "due_on"],
        unique=False,
    )
    op.create_index(
        "uq_microfinance_tasks_tenant_id_occasion_key", "microfinance_tasks", ["tenant_id", "occasion_key"], unique=True
    )
    op.create_table(
        "microfinance_instalments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("principal_due", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("interest_due", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("fee_due", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("penalty_due", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("principal_paid", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("interest_paid", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("fee_paid", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("penalty_paid", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("paid_off_on", sa.Date(), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "principal_paid BETWEEN 0 AND principal_due AND interest_paid BETWEEN 0 AND interest_due AND fee_paid BETWEEN 0 AND fee_due AND penalty_paid BETWEEN 0 AND penalty_due",
            name=op.f("ck_microfinance_instalments_paid_within_due"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "loan_id"],
            ["microfinance_loans.tenant_id", "microfinance_loans.id"],
            name=op.f("fk_microfinance_instalments_tenant_id_loan_id_microfinance_loans"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "loan_id", "no", name=op.f("pk_microfinance_instalments")),
    )
    op.create_index(
        "ix_microfinance_instalments_due", "microfinance_instalments", ["tenant_id", "due_on"], unique=False
    )
    op.create_table(
        "microfinance_loan_actions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "loan_id"],
            ["microfinance_loans.tenant_id", "microfinance_loans.id"],
            name=op.f("fk_microfinance_loan_actions_tenant_id_loan_id_microfinance_loans"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_loan_actions")),
    )
    op.create_index(
        "ix_microfinance_loan_actions_loan", "microfinance_loan_actions", ["tenant_id", "loan_id", "at"], unique=False
    )
    op.create_table(
        "microfinance_repayments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("source_event_id", sa.String(length=128), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_microfinance_repayments_amount")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "loan_id"],
            ["microfinance_loans.tenant_id", "microfinance_loans.id"],
            name=op.f("fk_microfinance_repayments_tenant_id_loan_id_microfinance_loans"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_repayments_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_repayments")),
    )
    op.create_index(
        "ix_microfinance_repayments_loan", "microfinance_repayments", ["tenant_id", "loan_id", "paid_on"], unique=False
    )
    op.create_index(
        "uq_microfinance_repayments_tenant_id_event_id",
        "microfinance_repayments",
        ["tenant_id", "event_id"],
        unique=True,
    )
    op.create_table(
        "microfinance_visits",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("officer", sa.String(length=100), nullable=False),
        sa.Column("visited_on", sa.Date(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("use_of_funds", sa.Text(), nullable=True),
        sa.Column("business_state", sa.Text(), nullable=True),
        sa.Column("needs", sa.Text(), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("signature_ref", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('use_of_funds', 'monthly', 'other')", name=op.f("ck_microfinance_visits_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "loan_id"],
            ["microfinance_loans.tenant_id", "microfinance_loans.id"],
            name=op.f("fk_microfinance_visits_tenant_id_loan_id_microfinance_loans"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_microfinance_visits_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_microfinance_visits")),
    )
    op.create_index(
        "ix_microfinance_visits_loan", "microfinance_visits", ["tenant_id", "loan_id", "visited_on"], unique=False
    )
    op.create_table(
        "microfinance_allocations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("repayment_id", sa.Uuid(), nullable=False),
        sa.Column("instalment_no", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("penalty", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("fee", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("interest", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("principal", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("reversed", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "penalty >= 0 AND fee >= 0 AND interest >= 0 AND principal >= 0",
            name=op.f("ck_microfinance_allocations_parts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "repayment_id"],
            ["microfinance_repayments.tenant_id", "microfinance_repayments.id"],
            name=op.f("fk_microfinance_allocations_tenant_id_repayment_id_microfinance_repayments"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "repayment_id", "instalment_no", name=op.f("pk_microfinance_allocations")),
    )
    op.create_index(
        "ix_microfinance_allocations_loan",
        "microfinance_allocations",
        ["tenant_id", "loan_id", "paid_on"],
        unique=False,
    )
    rls.tenant_table("microfinance_groups", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_products", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_meetings", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_attendance", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_bereavements", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_borrowers", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_group_members", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_loans", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_tasks", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_instalments", ("SELECT", "INSERT", "UPDATE", "DELETE"))
    rls.tenant_table("microfinance_loan_actions", ("SELECT", "INSERT"))
    rls.tenant_table("microfinance_repayments", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_visits", ("SELECT", "INSERT", "UPDATE"))
    rls.tenant_table("microfinance_allocations", ("SELECT", "INSERT", "UPDATE"))


def downgrade() -> None:
    op.drop_table("microfinance_allocations")
    op.drop_table("microfinance_visits")
    op.drop_table("microfinance_repayments")
    op.drop_table("microfinance_loan_actions")
    op.drop_table("microfinance_instalments")
    op.drop_table("microfinance_tasks")
    op.drop_table("microfinance_loans")
    op.drop_table("microfinance_group_members")
    op.drop_table("microfinance_borrowers")
    op.drop_table("microfinance_bereavements")
    op.drop_table("microfinance_attendance")
    op.drop_table("microfinance_meetings")
    op.drop_table("microfinance_products")
    op.drop_table("microfinance_groups")
