"""Hotel plugin: the share of a stay's earning event reversed through the API (its nights count that much less).

Revision ID: hotel_0002
Revises: hotel_0001
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hotel_0002"
down_revision: str | Sequence[str] | None = "hotel_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default: existing stays read "nothing reversed" (no table rebuild on SQLite).
    op.add_column(
        "hotel_stays",
        sa.Column("reversed_share", sa.Numeric(precision=9, scale=8), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("hotel_stays") as batch:
        batch.drop_column("reversed_share")
