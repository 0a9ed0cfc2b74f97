"""Key members by an index: ``member_loyalty`` gains ``ix_member_loyalty_value`` (tenant, expected value), read
backwards by the key-members report for its top N (the members with a value, most valuable first) instead of sorting
every row of the tenant. The value-concentration figures themselves are stored by the nightly run
in ``measurement_settings.last_run`` (a JSON column already there, under the table's row-level security).

Revision ID: 0031_member_loyalty_value
Revises: 0030_liability_rollup
Create Date: 2026-12-06 01:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0031_member_loyalty_value"
down_revision: str | Sequence[str] | None = "0030_liability_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_member_loyalty_value",
        "member_loyalty",
        ["tenant_id", "expected_value"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_member_loyalty_value", table_name="member_loyalty")
