"""The transactional outbox: what happened, written in the same transaction as the change itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column


class OutboxEvent(TenantScoped, Base):
    """One domain event (``points.earned``, ``tier.changed``...). The dispatcher turns it into webhook deliveries
    for the tenant's endpoints and marks it dispatched, in one transaction."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index(
            "ix_outbox_events_undispatched",
            "tenant_id",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    type: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column()
