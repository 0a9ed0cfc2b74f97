"""Members, their consents (current state) and the history of every consent change."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

MEMBER_STATUSES = ("active", "anonymized")
CHANNELS = ("email", "sms", "push")
PURPOSES = ("service", "marketing")


class Member(TenantScoped, Base):
    __tablename__ = "members"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"status IN {MEMBER_STATUSES!r}", name="status"),
        Index("uq_members_tenant_id_external_id", "tenant_id", "external_id", unique=True),
        Index(
            "uq_members_tenant_id_card",
            "tenant_id",
            "card",
            unique=True,
            postgresql_where=text("card IS NOT NULL"),
            sqlite_where=text("card IS NOT NULL"),
        ),
        ForeignKeyConstraint(["tenant_id", "tier_id"], ["tiers.tenant_id", "tiers.id"]),
        ForeignKeyConstraint(["tenant_id", "tier_floor_id"], ["tiers.tenant_id", "tiers.id"]),
        Index("ix_members_tenant_id_tier_id", "tenant_id", "tier_id"),
        Index("ix_members_tenant_id_tier_valid_until", "tenant_id", "tier_valid_until"),
        Index("ix_members_tenant_id_email", "tenant_id", "email"),
        Index("ix_members_tenant_id_phone", "tenant_id", "phone"),
    )

    id: Mapped[uuid.UUID] = id_column()
    external_id: Mapped[str] = mapped_column(String(128))
    card: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))
    birthday: Mapped[date | None] = mapped_column()
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(16), default="active")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    anonymized_at: Mapped[datetime | None] = mapped_column()
    #: Current tier, since when, and until when the status holds before it is re-evaluated.
    tier_id: Mapped[uuid.UUID | None] = mapped_column()
    tier_since: Mapped[datetime | None] = mapped_column()
    tier_valid_until: Mapped[datetime | None] = mapped_column()
    #: A manual tier acts as a floor until the given time.
    tier_floor_id: Mapped[uuid.UUID | None] = mapped_column()
    tier_floor_until: Mapped[datetime | None] = mapped_column()


class MemberConsent(TenantScoped, Base):
    """The member's current consent for one channel and purpose."""

    __tablename__ = "member_consents"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        CheckConstraint(f"purpose IN {PURPOSES!r}", name="purpose"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column()
    source: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentChange(TenantScoped, Base):
    """Append-only history: every grant and withdrawal with its time and source."""

    __tablename__ = "consent_changes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "member_id", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    channel: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column()
    source: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
