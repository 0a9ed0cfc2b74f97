"""Tables of the care engine's protections: what was sent per member and local day (caps), the per-member lock that
makes a cap hold under concurrency, the tenant's suppression list, the tenant's care settings, and the platform's
signing secret for unsubscribe links."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped

SUPPRESSION_CHANNELS = ("email", "sms")
SUPPRESSION_REASONS = ("hard_bounce", "complaint", "manual", "invalid")


class CareSendTally(TenantScoped, Base):
    """How many messages went to a member on one local day (the member's zone), by purpose and category.

    Written only by :func:`core.care.protection.reserve`, under the member's :class:`CareSendLock`, so caps and
    same-day rules read exact numbers."""

    __tablename__ = "care_send_tallies"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        CheckConstraint("sent >= 0", name="sent"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    sent: Mapped[int] = mapped_column(default=0)


class CareSendLock(TenantScoped, Base):
    """One row per member that ever had a send reserved: reservations for one member take its row lock in turn."""

    __tablename__ = "care_send_locks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reservations: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareSuppression(TenantScoped, Base):
    """An address the tenant must not send to (a hard bounce, a complaint, or the tenant's own block)."""

    __tablename__ = "care_suppressions"
    __table_args__ = (
        CheckConstraint(f"channel IN {SUPPRESSION_CHANNELS!r}", name="channel"),
        CheckConstraint(f"reason IN {SUPPRESSION_REASONS!r}", name="reason"),
        Index("ix_care_suppressions_tenant_id_created_at", "tenant_id", "created_at"),
    )

    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    #: Canonical form: a lower-cased email address, or an E.164 phone number.
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))
    #: Who said so: ``api``, ``feedback:ses``, ``feedback:tenant``...
    source: Mapped[str] = mapped_column(String(64))
    #: The provider's words (bounce type, complaint type), never the message.
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CareSettings(TenantScoped, Base):
    """The tenant's sender identity and protections. No row: the defaults (docs/domain.md's)."""

    __tablename__ = "care_settings"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    #: Sender: ``Café Nord <hello@cafe.example>``, the reply-to address, the SMS sender id.
    email_from: Mapped[str | None] = mapped_column(String(320))
    email_reply_to: Mapped[str | None] = mapped_column(String(320))
    sms_sender_id: Mapped[str | None] = mapped_column(String(11))
    #: Protections that differ from the defaults (see core.care.protection.settings_from): a key absent takes the
    #: default; ``null`` turns that protection off.
    protection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformSecret(Base):
    """Secrets the platform generates once and every process shares (the unsubscribe links' signing key when
    ``FEALTY_CARE_LINK_SECRET`` is not set). Global: never exposed through the API."""

    __tablename__ = "platform_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
