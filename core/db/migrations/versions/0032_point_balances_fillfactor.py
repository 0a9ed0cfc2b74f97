"""Balance updates in place: ``point_balances`` gets a ``fillfactor`` of 90 on PostgreSQL, so that every page keeps
room for its rows' next versions and an event's balance update is a heap-only tuple (HOT) update. Its pages were
packed full (the default 100): at 1M members almost every update moved the row to another page and wrote a new
entry in the primary key, two pages more in the write-ahead log per event. It holds for pages written from now on
(a ``VACUUM FULL point_balances`` in a quiet hour rewrites the old ones); SQLite has no such setting.

Revision ID: 0032_point_balances_fillfactor
Revises: 0031_member_loyalty_value
Create Date: 2026-12-06 04:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0032_point_balances_fillfactor"
down_revision: str | Sequence[str] | None = "0031_member_loyalty_value"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Kept in step with ``core.ledger.models.BALANCE_FILLFACTOR``.
FILLFACTOR = 90


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE point_balances SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE point_balances RESET (fillfactor)")
