"""Activity events, each stored with its outcome (awarded, held for review, rejected) and what it earned."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

EVENT_STATUSES = ("processing", "awarded", "held", "rejected")


class Event(TenantScoped, Base):
    __tablename__ = "events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        Index("uq_events_tenant_id_event_id", "tenant_id", "event_id", unique=True),
        Index("ix_events_member", "tenant_id", "member_id", "occurred_at"),
        Index("ix_events_received", "tenant_id", "received_at"),
        Index(
            "ix_events_held",
            "tenant_id",
            "received_at",
            postgresql_where=text("status = 'held'"),
            sqlite_where=text("status = 'held'"),
        ),
        CheckConstraint(f"status IN {EVENT_STATUSES!r}", name="status"),
        CheckConstraint("points >= 0 AND reversed_points >= 0 AND reversed_points <= points", name="points"),
    )

    id: Mapped[uuid.UUID] = id_column()
    #: The source system's id: a retry with the same id returns the first outcome.
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[uuid.UUID] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The program-local day the event's metrics were counted on (reversals subtract from the same day).
    local_day: Mapped[date] = mapped_column()
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    unit: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="processing")
    #: Why it was held or rejected (a stable code and words).
    status_reason: Mapped[str | None] = mapped_column(String(500))
    points: Mapped[int] = mapped_column(default=0)
    reversed_points: Mapped[int] = mapped_column(default=0)
    #: Share of the event reversed so far (0..1): returns and reversals never take back more than it earned.
    reversed_fraction: Mapped[Decimal] = mapped_column(Numeric(9, 8), default=Decimal(0))
    #: SHA-256 of the submitted event: the same event_id with different content is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    #: Awards rule by rule, qualification credits, tier change: what the API answered.
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: A return: the event it returns (part of).
    original_event_id: Mapped[uuid.UUID | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column()
