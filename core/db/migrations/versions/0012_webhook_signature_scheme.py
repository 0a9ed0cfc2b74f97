"""Standard Webhooks: each endpoint's signature scheme. Endpoints that exist keep Fealty's scheme of before
(``fealty-v1``, the column's default here) until their secret is rotated or they opt in; new ones are created with
``standard`` by the application.

Revision ID: 0012_webhook_signature_scheme
Revises: 0011_care_protection
Create Date: 2026-12-05 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_webhook_signature_scheme"
down_revision: str | Sequence[str] | None = "0011_care_protection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One statement both dialects accept (SQLite cannot add a CHECK constraint to an existing table otherwise).
    op.execute(
        "ALTER TABLE webhook_endpoints ADD COLUMN signature_scheme VARCHAR(16) DEFAULT 'fealty-v1' NOT NULL "
        "CONSTRAINT ck_webhook_endpoints_signature_scheme CHECK (signature_scheme IN ('standard', 'fealty-v1'))"
    )
    op.add_column("webhook_endpoints", sa.Column("previous_signature_scheme", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("previous_signature_scheme")
        batch.drop_constraint("ck_webhook_endpoints_signature_scheme", type_="check")
        batch.drop_column("signature_scheme")
