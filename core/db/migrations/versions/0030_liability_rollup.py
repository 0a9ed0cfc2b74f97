"""The liability roll-up (``core/measurement/liability_rollup.py``): ``liability_rollup`` (points by local day of the
entries and lots that can no longer change) and ``liability_rollup_state`` (its zone and cut-off), both tenant tables
with row-level security; and the indexes its live part reads: ledger entries by creation and by release, lots by
earning.

Revision ID: 0030_liability_rollup
Revises: 0029_daily_sweeps
Create Date: 2026-12-06 01:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.db import rls

revision: str = "0030_liability_rollup"
down_revision: str | Sequence[str] | None = "0029_daily_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("liability_rollup_state", "liability_rollup")


def upgrade() -> None:
    op.create_table(
        "liability_rollup_state",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_liability_rollup_state_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_liability_rollup_state")),
    )
    op.create_table(
        "liability_rollup",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("measure", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("day_a", sa.Date(), nullable=False),
        sa.Column("day_b", sa.Date(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("measure IN ('move', 'earn', 'fate')", name=op.f("ck_liability_rollup_measure")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_liability_rollup_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "measure", "kind", "day_a", "day_b", name=op.f("pk_liability_rollup")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entries_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_ledger_entries_released",
            ["tenant_id", "available_at"],
            unique=False,
            postgresql_where=sa.text("available_at IS NOT NULL"),
            sqlite_where=sa.text("available_at IS NOT NULL"),
        )
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.create_index("ix_lots_earned", ["tenant_id", "earned_at"], unique=False)
    for table in TABLES:
        rls.tenant_table(table)


def downgrade() -> None:
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.drop_index("ix_lots_earned")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_ledger_entries_released",
            postgresql_where=sa.text("available_at IS NOT NULL"),
            sqlite_where=sa.text("available_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_ledger_entries_created")
    op.drop_table("liability_rollup")
    op.drop_table("liability_rollup_state")
