"""Billing usage counted in sharded counters (``billing_usage_counts``), and usage periods that are ``owed`` (the
subscription ended in the period: the overage is a pending invoice item on the customer).

The counts of periods still open move from ``billing_usage`` into slot 0 of the new table.

Revision ID: 0008_billing_usage_counts
Revises: 0007_care
Create Date: 2026-11-30 10:12:03.118402
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import rls

revision: str = "0008_billing_usage_counts"
down_revision: str | Sequence[str] | None = "0007_care"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('open', 'billed', 'no_charge', 'not_billable', 'waived')"
NEW_STATUSES = "status IN ('open', 'billed', 'owed', 'no_charge', 'not_billable', 'waived')"


def upgrade() -> None:
    op.create_table(
        "billing_usage_counts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("active_members", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "events >= 0 AND active_members >= 0", name=op.f("ck_billing_usage_counts_counts_not_negative")
        ),
        sa.CheckConstraint("slot >= 0 AND slot < 16", name=op.f("ck_billing_usage_counts_slot")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_usage_counts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", "slot", name=op.f("pk_billing_usage_counts")),
    )
    op.execute(
        "INSERT INTO billing_usage_counts (tenant_id, period_start, slot, events, active_members) "
        "SELECT tenant_id, period_start, 0, events, active_members FROM billing_usage WHERE status = 'open'"
    )
    with op.batch_alter_table("billing_usage") as batch:
        batch.drop_constraint(op.f("ck_billing_usage_status"), type_="check")
        batch.create_check_constraint(op.f("ck_billing_usage_status"), NEW_STATUSES)
    rls.global_table("billing_usage_counts", ("SELECT", "INSERT", "UPDATE"))


def downgrade() -> None:
    op.execute("UPDATE billing_usage SET status = 'billed' WHERE status = 'owed'")
    with op.batch_alter_table("billing_usage") as batch:
        batch.drop_constraint(op.f("ck_billing_usage_status"), type_="check")
        batch.create_check_constraint(op.f("ck_billing_usage_status"), OLD_STATUSES)
    op.drop_table("billing_usage_counts")
