"""Fuel stations: what reversals took back of a transaction (its share, and the capped points it no longer counts).

Revision ID: fuel_0002
Revises: fuel_0001
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fuel_0002"
down_revision: str | Sequence[str] | None = "fuel_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN with a server default: existing rows read "nothing reversed" (no table rebuild on SQLite).
    op.add_column(
        "fuel_transactions",
        sa.Column("reversed_fraction", sa.Numeric(precision=9, scale=8), server_default="0", nullable=False),
    )
    op.add_column(
        "fuel_transactions", sa.Column("reversed_points", sa.BigInteger(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("fuel_transactions") as batch:
        batch.drop_column("reversed_points")
        batch.drop_column("reversed_fraction")
