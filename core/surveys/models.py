"""Satisfaction surveys: the survey (factors two levels deep, questions, five answer levels with the tenant's values,
an optional 0-10 recommendation question), its invitations (one signed single-use link each), responses (one per
invitation) and answers (one row per question, with the level's value as it was, for the results' sums)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

SURVEY_STATUSES = ("draft", "active", "closed")


class Survey(TenantScoped, Base):
    __tablename__ = "surveys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"status IN {SURVEY_STATUSES!r}", name="status"),
        CheckConstraint("link_days > 0", name="link_days"),
        Index("uq_surveys_tenant_id_code", "tenant_id", "code", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str | None] = mapped_column(Text)
    #: ``[{"code", "name", "factors": [{"code", "name", "questions": [{"code", "text"}]}]}]`` (or ``questions``
    #: directly under a first-level factor).
    factors: Mapped[list[Any]] = mapped_column(default=list)
    #: The five levels, best first: ``[{"key": "very_satisfied", "label": "Very satisfied", "value": 100}, ...]``.
    levels: Mapped[list[Any]] = mapped_column(default=list)
    #: The 0-10 "would you recommend us" question, when asked.
    nps_question: Mapped[str | None] = mapped_column(String(500))
    allow_comment: Mapped[bool] = mapped_column(default=True)
    #: What invites members by itself: ``{"trigger": "case.closed"}`` or ``{"trigger": "event", "event_type",
    #: "days"}``; None: only invitations asked for (``POST /v1/surveys/{id}/invitations``).
    invite_on: Mapped[dict[str, Any] | None] = mapped_column()
    link_days: Mapped[int] = mapped_column(default=30)
    status: Mapped[str] = mapped_column(String(8), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyInvitation(TenantScoped, Base):
    """One member invited once per occasion (a closed case, an event, a campaign): the signed link names it."""

    __tablename__ = "survey_invitations"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "survey_id"], ["surveys.tenant_id", "surveys.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        Index("uq_survey_invitations_tenant_id_survey_id_occasion", "tenant_id", "survey_id", "occasion", unique=True),
        Index("ix_survey_invitations_survey", "tenant_id", "survey_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    survey_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    #: Why: ``case.closed:<case>:<n>``, ``event:<event id>``, ``campaign:<name>:<member>``.
    occasion: Mapped[str] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    responded_at: Mapped[datetime | None] = mapped_column()
    #: The member's tier and segments when invited (response rates by tier and segment). ``segments`` is None for
    #: invitations made before they were recorded and never answered (migration 0028): in no segment's rate.
    tier: Mapped[str | None] = mapped_column(String(40))
    segments: Mapped[list[Any] | None] = mapped_column()


class SurveyResponse(TenantScoped, Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "survey_id"], ["surveys.tenant_id", "surveys.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "invitation_id"], ["survey_invitations.tenant_id", "survey_invitations.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint("nps IS NULL OR (nps >= 0 AND nps <= 10)", name="nps"),
        Index(
            "uq_survey_responses_tenant_id_invitation_id",
            "tenant_id",
            "invitation_id",
            unique=True,
            postgresql_where=text("invitation_id IS NOT NULL"),
            sqlite_where=text("invitation_id IS NOT NULL"),
        ),
        Index("ix_survey_responses_survey", "tenant_id", "survey_id", "submitted_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    survey_id: Mapped[uuid.UUID] = mapped_column()
    invitation_id: Mapped[uuid.UUID | None] = mapped_column()
    member_id: Mapped[uuid.UUID | None] = mapped_column()
    #: ``link`` (the signed form) or ``api`` (the tenant's own form).
    channel: Mapped[str] = mapped_column(String(8))
    nps: Mapped[int | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    #: The member's tier and segments when answering (results by tier and segment).
    tier: Mapped[str | None] = mapped_column(String(40))
    segments: Mapped[list[Any]] = mapped_column(default=list)
    submitted_at: Mapped[datetime] = mapped_column()


class SurveyAnswer(TenantScoped, Base):
    __tablename__ = "survey_answers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "response_id"], ["survey_responses.tenant_id", "survey_responses.id"], ondelete="CASCADE"
        ),
        CheckConstraint("level >= 1 AND level <= 5", name="level"),
        Index("ix_survey_answers_survey", "tenant_id", "survey_id", "factor"),
    )

    response_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(String(40), primary_key=True)
    survey_id: Mapped[uuid.UUID] = mapped_column()
    #: The question's factor (a leaf) and that factor's parent (None for a first-level factor).
    factor: Mapped[str] = mapped_column(String(40))
    parent_factor: Mapped[str | None] = mapped_column(String(40))
    #: 1 (the best level) .. 5, and that level's value when answered.
    level: Mapped[int] = mapped_column()
    value: Mapped[Decimal] = mapped_column(Numeric(8, 2))
