"""Stored results of requests sent with an ``Idempotency-Key``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped


class _StoredResponse:
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: SHA-256 of method, path, query and body.
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column()
    response_headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class IdempotencyRecord(TenantScoped, _StoredResponse, Base):
    """One key per tenant. Written in the same transaction as the request's own changes, so it exists exactly
    when those changes were committed."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "expires_at"),
    )


class PlatformIdempotencyRecord(_StoredResponse, Base):
    """The same for the platform operator's requests (creating tenants), which belong to no tenant."""

    __tablename__ = "platform_idempotency_records"
    __table_args__ = (Index(None, "expires_at"),)
