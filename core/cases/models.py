"""Complaints and service cases: categories with their SLAs, cases, their status history, SLA breaches (one row per
breach: the unique key that makes the ``case.sla_breached`` webhook exactly-once) and members' inbound replies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column
from core.plugin.types import CASE_KINDS, CASE_PRIORITIES

CASE_STATUSES = ("received", "classified", "assigned", "investigating", "resolved", "replied", "closed")
CASE_CHANNELS = ("email", "sms", "phone", "web", "app", "store", "letter", "social", "reply", "plugin")
SLA_CLOCKS = ("first_reply", "resolution")
REPLY_OUTCOMES = ("opted_out", "claimed", "case_opened", "case_threaded")


class CaseCategory(TenantScoped, Base):
    """A kind of case with its default priority and SLA: hours to the first reply and to resolution, counted in the
    tenant's time zone, within business hours and outside the tenant's holidays when ``business_hours`` is set."""

    __tablename__ = "case_categories"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"default_priority IN {CASE_PRIORITIES!r}", name="default_priority"),
        CheckConstraint("first_reply_minutes IS NULL OR first_reply_minutes > 0", name="first_reply_minutes"),
        CheckConstraint("resolution_minutes IS NULL OR resolution_minutes > 0", name="resolution_minutes"),
        Index("uq_case_categories_tenant_id_code", "tenant_id", "code", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(40))
    #: The name per locale: ``{"en": "Billing", "zh-CN": "账单"}``.
    names: Mapped[dict[str, Any]] = mapped_column(default=dict)
    default_priority: Mapped[str] = mapped_column(String(8), default="normal")
    first_reply_minutes: Mapped[int | None] = mapped_column()
    resolution_minutes: Mapped[int | None] = mapped_column()
    #: ``{"days": [1..7 ISO weekdays], "start": "09:00", "end": "18:00", "holidays": true}``; None: round the clock.
    business_hours: Mapped[dict[str, Any] | None] = mapped_column()
    #: Who is told of a breach (beyond the ``case.sla_breached`` webhook): ``["assignee", "team:care", ...]``.
    notify: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(TenantScoped, Base):
    __tablename__ = "cases"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "category_id"], ["case_categories.tenant_id", "case_categories.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint(f"kind IN {CASE_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {CASE_STATUSES!r}", name="status"),
        CheckConstraint(f"priority IN {CASE_PRIORITIES!r}", name="priority"),
        CheckConstraint(f"channel IN {CASE_CHANNELS!r}", name="channel"),
        CheckConstraint("goodwill_points IS NULL OR goodwill_points > 0", name="goodwill_points"),
        Index(
            "uq_cases_tenant_id_reference",
            "tenant_id",
            "reference",
            unique=True,
            postgresql_where=text("reference IS NOT NULL"),
            sqlite_where=text("reference IS NOT NULL"),
        ),
        Index("ix_cases_opened", "tenant_id", "opened_at"),
        Index("ix_cases_member", "tenant_id", "member_id", "opened_at"),
        Index("ix_cases_status", "tenant_id", "status", "opened_at"),
        Index("ix_cases_category", "tenant_id", "category_id", "opened_at"),
        Index("ix_cases_assignee", "tenant_id", "assignee", "opened_at"),
        Index("ix_cases_thread", "tenant_id", "thread"),
        # The breach sweep reads only open clocks.
        Index(
            "ix_cases_first_reply_due",
            "tenant_id",
            "first_reply_due_at",
            postgresql_where=text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
            sqlite_where=text("first_replied_at IS NULL AND first_reply_breached_at IS NULL"),
        ),
        Index(
            "ix_cases_resolution_due",
            "tenant_id",
            "resolution_due_at",
            postgresql_where=text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL AND resolution_breached_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    kind: Mapped[str] = mapped_column(String(12))
    category_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    member_id: Mapped[uuid.UUID | None] = mapped_column()
    #: An unknown contact's address or name (matched to a member later).
    contact: Mapped[str | None] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    assignee: Mapped[str | None] = mapped_column(String(120))
    #: ``event_id``, ``redemption_id``, ``message_id``, ``object``.
    related: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``[{"name", "url", "content_type"}]``: references, never the files.
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    #: Replies to one message belong to one thread (``message:<id>``): an open case of the thread takes them.
    thread: Mapped[str | None] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column()
    first_reply_due_at: Mapped[datetime | None] = mapped_column()
    resolution_due_at: Mapped[datetime | None] = mapped_column()
    first_replied_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    first_reply_breached_at: Mapped[datetime | None] = mapped_column()
    resolution_breached_at: Mapped[datetime | None] = mapped_column()
    #: The resolution: ``cause``, ``prevention`` (what changes so it does not happen again), ``summary``.
    resolution: Mapped[dict[str, Any] | None] = mapped_column()
    goodwill_points: Mapped[int | None] = mapped_column()
    goodwill_reward_id: Mapped[uuid.UUID | None] = mapped_column()
    #: The ledger entry or redemption the goodwill gesture became (given once).
    goodwill_given: Mapped[dict[str, Any] | None] = mapped_column()
    reopened: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseHistory(TenantScoped, Base):
    """One step of a case: who moved it from which status to which, when, why."""

    __tablename__ = "case_history"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "case_id"], ["cases.tenant_id", "cases.id"], ondelete="CASCADE"),
        Index("ix_case_history_case", "tenant_id", "case_id", "at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    case_id: Mapped[uuid.UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column()


class CaseBreach(TenantScoped, Base):
    """An SLA breach: one row per case, clock and due time (the primary key), so the sweep of any number of workers
    records it, and announces it, exactly once."""

    __tablename__ = "case_breaches"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "case_id"], ["cases.tenant_id", "cases.id"], ondelete="CASCADE"),
        CheckConstraint(f"clock IN {SLA_CLOCKS!r}", name="clock"),
        Index("ix_case_breaches_at", "tenant_id", "breached_at"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    clock: Mapped[str] = mapped_column(String(12), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(primary_key=True)
    breached_at: Mapped[datetime] = mapped_column()


class CareReply(TenantScoped, Base):
    """A member's reply to a message, relayed by the tenant, and what became of it."""

    __tablename__ = "care_replies"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        ForeignKeyConstraint(["tenant_id", "case_id"], ["cases.tenant_id", "cases.id"]),
        CheckConstraint(f"outcome IN {REPLY_OUTCOMES!r}", name="outcome"),
        Index("ix_care_replies_received", "tenant_id", "received_at"),
        Index("ix_care_replies_member", "tenant_id", "member_id", "received_at"),
        Index("ix_care_replies_case", "tenant_id", "case_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(320))
    member_id: Mapped[uuid.UUID | None] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[uuid.UUID | None] = mapped_column()
    #: The plugin that claimed it, with what it made of it.
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    claim: Mapped[dict[str, Any] | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
