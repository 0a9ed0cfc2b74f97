"""Satisfaction surveys: surveys (factors, five levels, NPS, what invites), survey_invitations (one per survey and
occasion: the signed link's subject), survey_responses (one per invitation) and survey_answers (per question, with
the level's value as answered: the results' and the satisfaction index's source).

Revision ID: 0020_surveys
Revises: 0026_more_sweeps
Create Date: 2026-12-05 20:07:39.937681
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.db import rls

revision: str = "0020_surveys"
down_revision: str | Sequence[str] | None = "0026_more_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = ("surveys", "survey_invitations", "survey_responses", "survey_answers")


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("intro", sa.Text(), nullable=True),
        sa.Column("factors", JSON, nullable=False),
        sa.Column("levels", JSON, nullable=False),
        sa.Column("nps_question", sa.String(length=500), nullable=True),
        sa.Column("allow_comment", sa.Boolean(), nullable=False),
        sa.Column("invite_on", JSON, nullable=True),
        sa.Column("link_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('draft', 'active', 'closed')", name=op.f("ck_surveys_status")),
        sa.CheckConstraint("link_days > 0", name=op.f("ck_surveys_link_days")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_surveys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_surveys")),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index("uq_surveys_tenant_id_code", ["tenant_id", "code"], unique=True)

    op.create_table(
        "survey_invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("occasion", sa.String(length=250), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_survey_invitations_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survey_id"],
            ["surveys.tenant_id", "surveys.id"],
            name=op.f("fk_survey_invitations_tenant_id_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_invitations")),
    )
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.create_index("ix_survey_invitations_survey", ["tenant_id", "survey_id", "created_at"], unique=False)
        batch_op.create_index(
            "uq_survey_invitations_tenant_id_survey_id_occasion", ["tenant_id", "survey_id", "occasion"], unique=True
        )

    op.create_table(
        "survey_responses",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("invitation_id", sa.Uuid(), nullable=True),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("tier", sa.String(length=40), nullable=True),
        sa.Column("segments", JSON, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("nps IS NULL OR (nps >= 0 AND nps <= 10)", name=op.f("ck_survey_responses_nps")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "invitation_id"],
            ["survey_invitations.tenant_id", "survey_invitations.id"],
            name=op.f("fk_survey_responses_tenant_id_invitation_id_survey_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_survey_responses_tenant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survey_id"],
            ["surveys.tenant_id", "surveys.id"],
            name=op.f("fk_survey_responses_tenant_id_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_responses")),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index("ix_survey_responses_survey", ["tenant_id", "survey_id", "submitted_at"], unique=False)
        batch_op.create_index(
            "uq_survey_responses_tenant_id_invitation_id",
            ["tenant_id", "invitation_id"],
            unique=True,
            postgresql_where=sa.text("invitation_id IS NOT NULL"),
            sqlite_where=sa.text("invitation_id IS NOT NULL"),
        )

    op.create_table(
        "survey_answers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("response_id", sa.Uuid(), nullable=False),
        sa.Column("question", sa.String(length=40), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("factor", sa.String(length=40), nullable=False),
        sa.Column("parent_factor", sa.String(length=40), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("value", sa.Numeric(precision=8, scale=2), nullable=False),
        sa.CheckConstraint("level >= 1 AND level <= 5", name=op.f("ck_survey_answers_level")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "response_id"],
            ["survey_responses.tenant_id", "survey_responses.id"],
            name=op.f("fk_survey_answers_tenant_id_response_id_survey_responses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "response_id", "question", name=op.f("pk_survey_answers")),
    )
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.create_index("ix_survey_answers_survey", ["tenant_id", "survey_id", "factor"], unique=False)

    for table in TABLES:
        rls.tenant_table(table)


def downgrade() -> None:
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_answers_survey")

    op.drop_table("survey_answers")
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_survey_responses_tenant_id_invitation_id",
            postgresql_where=sa.text("invitation_id IS NOT NULL"),
            sqlite_where=sa.text("invitation_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_survey_responses_survey")

    op.drop_table("survey_responses")
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_index("uq_survey_invitations_tenant_id_survey_id_occasion")
        batch_op.drop_index("ix_survey_invitations_survey")

    op.drop_table("survey_invitations")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index("uq_surveys_tenant_id_code")

    op.drop_table("surveys")
