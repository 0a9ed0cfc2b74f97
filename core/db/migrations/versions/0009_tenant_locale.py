"""The program's time zone and currency copied onto ``tenants`` (as its enabled plugins already are), so the
platform's list of tenants reads them in one query: programs are tenant-owned and row-level security shows each only
inside its tenant's scope.

Revision ID: 0009_tenant_locale
Revises: 0008_billing_usage_counts
Create Date: 2026-12-01 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tenant_locale"
down_revision: str | Sequence[str] | None = "0008_billing_usage_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("tenants", sa.Column("currency", sa.String(length=3), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # The owner is subject to the policy too (FORCE): lift it for the copy, inside this migration's transaction.
        op.execute("ALTER TABLE programs NO FORCE ROW LEVEL SECURITY")
    op.execute(
        "UPDATE tenants SET timezone = (SELECT p.timezone FROM programs p WHERE p.tenant_id = tenants.id), "
        "currency = (SELECT p.currency FROM programs p WHERE p.tenant_id = tenants.id)"
    )
    if postgres:
        op.execute("ALTER TABLE programs FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("currency")
        batch.drop_column("timezone")
