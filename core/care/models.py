"""Care requests: what should be said to a member and why (win-back offers, pre-arrival notes, follow-ups).

Customer care (messages, channels, consent, quiet hours) turns these into messages in a later release; until then
they are recorded, listed, and announced as ``care.requested`` outbound webhooks so a tenant's own CRM can act.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

CARE_PURPOSES = ("service", "marketing", "safety")


class CareRequest(TenantScoped, Base):
    __tablename__ = "care_requests"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint(f"purpose IN {CARE_PURPOSES!r}", name="purpose"),
        Index("ix_care_requests_member", "tenant_id", "member_id", "created_at"),
        Index("uq_care_requests_tenant_id_dedupe_key", "tenant_id", "dedupe_key", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    #: What kind of care: ``fuel.win_back``, ``hotel.pre_arrival``...
    kind: Mapped[str] = mapped_column(String(80))
    purpose: Mapped[str] = mapped_column(String(16))
    #: Who asked: a plugin's name, or ``core``.
    source: Mapped[str] = mapped_column(String(40))
    #: The same request twice (e.g. a daily job that runs again) is recorded once.
    dedupe_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- the care engine: templates, rules, the calendar, occasions and messages ---------------------------------------

MESSAGE_STATES = ("queued", "deferred", "sent", "delivered", "failed", "suppressed")
MESSAGE_CHANNELS = ("email", "sms", "webhook")


class CareTemplate(TenantScoped, Base):
    """What a message says, per locale: ``texts = {locale: {"subject", "body", "html", "sms"}}`` (Jinja2, sandboxed).

    ``trigger`` names the trigger whose variables the texts may use (None: member and program only); the texts are
    checked against them when saved, never at send time."""

    __tablename__ = "care_templates"
    __table_args__ = (Index("uq_care_templates_tenant_id_name", "tenant_id", "name", unique=True),)

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str | None] = mapped_column(String(80))
    default_locale: Mapped[str] = mapped_column(String(35), default="en")
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareRule(TenantScoped, Base):
    """Which occasions become messages: trigger (and its parameters), audience, purpose, category, channels in order,
    template, validity, points attached."""

    __tablename__ = "care_rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "template_id"], ["care_templates.tenant_id", "care_templates.id"]),
        CheckConstraint(f"purpose IN {CARE_PURPOSES!r}", name="purpose"),
        Index("ix_care_rules_trigger", "tenant_id", "trigger"),
        Index("uq_care_rules_tenant_id_name", "tenant_id", "name", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``{"tiers": [codes], "segments": [codes]}``; empty lists: everyone.
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    purpose: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    channels: Mapped[list[Any]] = mapped_column(default=list)
    template_id: Mapped[uuid.UUID] = mapped_column()
    #: How long after its occasion a message is worth sending (None: no limit).
    valid_for_hours: Mapped[int | None] = mapped_column()
    #: Points credited once per occasion when the message is queued (None: none).
    points: Mapped[int | None] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareHoliday(TenantScoped, Base):
    """A day of the tenant's calendar (greetings on it; no collection contact on it)."""

    __tablename__ = "care_holidays"
    __table_args__ = (Index("uq_care_holidays_tenant_id_day", "tenant_id", "day", unique=True),)

    id: Mapped[uuid.UUID] = id_column()
    day: Mapped[date] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    #: ``tenant`` (added by hand) or ``country:<CC>`` (copied from the country's public holidays).
    source: Mapped[str] = mapped_column(String(40), default="tenant")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareOccasion(TenantScoped, Base):
    """Something worth a word to a member (a birthday this year, a tier change, a plugin's request). ``key`` is
    stable: the same occasion found twice is one row, so it never makes two messages."""

    __tablename__ = "care_occasions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        Index("uq_care_occasions_tenant_id_key", "tenant_id", "key", unique=True),
        Index("ix_care_occasions_member", "tenant_id", "member_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    trigger: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(250))
    member_id: Mapped[uuid.UUID] = mapped_column()
    source: Mapped[str] = mapped_column(String(40))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareMessage(TenantScoped, Base):
    """One message of one rule for one occasion (unique), with its state, reason, attempts and provider id."""

    __tablename__ = "care_messages"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "occasion_id"], ["care_occasions.tenant_id", "care_occasions.id"]),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["care_rules.tenant_id", "care_rules.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint(f"state IN {MESSAGE_STATES!r}", name="state"),
        CheckConstraint(f"channel IN {MESSAGE_CHANNELS!r}", name="channel"),
        CheckConstraint(f"purpose IN {CARE_PURPOSES!r}", name="purpose"),
        Index("uq_care_messages_tenant_id_occasion_id_rule_id", "tenant_id", "occasion_id", "rule_id", unique=True),
        Index(
            "ix_care_messages_due",
            "tenant_id",
            "due_at",
            postgresql_where=text("state IN ('queued', 'deferred')"),
            sqlite_where=text("state IN ('queued', 'deferred')"),
        ),
        Index("ix_care_messages_member", "tenant_id", "member_id", "created_at"),
        Index("ix_care_messages_created", "tenant_id", "created_at"),
        Index("ix_care_messages_provider_message_id", "tenant_id", "provider_message_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    occasion_id: Mapped[uuid.UUID] = mapped_column()
    rule_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    trigger: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(35))
    #: The email address or phone number (masked in lists); ``webhook`` for the tenant's endpoint.
    address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    #: SMS length in segments (GSM-7 or UCS-2); None for other channels.
    segments: Mapped[int | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    #: The idempotency reference every attempt carries (the same after a crash and retry).
    reference: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    #: A worker holds the message until then (at-least-once: after a crash it is taken again once this passes).
    claimed_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
