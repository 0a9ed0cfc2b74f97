"""Care messages found by the provider's message id, so that a delivery (or a hard bounce) the provider reports marks
the message ``delivered`` (or ``failed``).

Revision ID: 0024_care_delivered
Revises: 0018_jobs_at_scale
Create Date: 2026-12-05 19:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024_care_delivered"
down_revision: str | Sequence[str] | None = "0018_jobs_at_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_care_messages_provider_message_id", "care_messages", ["tenant_id", "provider_message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_care_messages_provider_message_id", table_name="care_messages")
