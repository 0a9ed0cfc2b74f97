"""Survey invitations record the invitee's tier and segments when invited (as responses do when answered), so that
a survey's response rate can be read per tier and per segment: a group's rate is its answered invitations over its
invitations.

Backfill of the invitations made before this migration:

- answered ones take the tier and segments their response recorded (the member's profile when answering: the
  nearest thing to the profile when invited that was kept);
- unanswered ones take the member's current tier; their segments are not known (``NULL``: segment rules are
  evaluated by the application, not in SQL), so they count in no segment's response rate.

Row-level security is forced on these tables, for the owner too: it is lifted for the backfill, inside this
migration's transaction, as 0009 and 0017 do. The tables' policies and grants are unchanged.

Revision ID: 0028_invitation_profile
Revises: 0027_case_sweeps
Create Date: 2026-12-05 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0028_invitation_profile"
down_revision: str | Sequence[str] | None = "0027_case_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = ("survey_invitations", "survey_responses", "members", "tiers")

ANSWERED = """(SELECT {column} FROM survey_responses r
    WHERE r.tenant_id = survey_invitations.tenant_id AND r.invitation_id = survey_invitations.id)"""
CURRENT_TIER = """(SELECT t.code FROM members m JOIN tiers t ON t.tenant_id = m.tenant_id AND t.id = m.tier_id
    WHERE m.tenant_id = survey_invitations.tenant_id AND m.id = survey_invitations.member_id)"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("segments", JSON, nullable=True))
    backfill(postgres)


def backfill(postgres: bool) -> None:
    """Fill the invitations without a recorded profile (all of them, when this migration runs)."""
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(
        "UPDATE survey_invitations SET "  # noqa: S608 (constants only)
        f"tier = {ANSWERED.format(column='r.tier')}, segments = {ANSWERED.format(column='r.segments')} "
        "WHERE responded_at IS NOT NULL AND tier IS NULL AND segments IS NULL"
    )
    op.execute(
        f"UPDATE survey_invitations SET tier = {CURRENT_TIER} "  # noqa: S608 (constants only)
        "WHERE responded_at IS NULL AND tier IS NULL AND segments IS NULL"
    )
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_column("segments")
        batch_op.drop_column("tier")
