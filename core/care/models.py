"""Care requests: what should be said to a member and why (win-back offers, pre-arrival notes, follow-ups).

Customer care (messages, channels, consent, quiet hours) turns these into messages in a later release; until then
they are recorded, listed, and announced as ``care.requested`` outbound webhooks so a tenant's own CRM can act.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String
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
