"""Outbound webhooks: the tenant's endpoints, one delivery per (event, endpoint), and every attempt made."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

ENDPOINT_STATUSES = ("active", "disabled")
#: How requests are signed (:mod:`core.webhooks.signing`): Standard Webhooks, or Fealty's scheme of before.
SIGNATURE_SCHEMES = ("standard", "fealty-v1")
#: pending: due at ``next_attempt_at``; sending: claimed by a worker until ``next_attempt_at`` (its lease);
#: succeeded / dead (no attempts left) / cancelled (its endpoint was disabled): final, ``next_attempt_at`` is null.
DELIVERY_STATUSES = ("pending", "sending", "succeeded", "dead", "cancelled")
FINAL_STATUSES = ("succeeded", "dead", "cancelled")


class WebhookEndpoint(TenantScoped, Base):
    """A URL of the tenant's that receives the event types it subscribed to, signed with its secret.

    The secret is stored as is (not hashed, unlike API keys): Fealty needs it to sign every request. It is shown in
    full only when created or rotated, never logged, and row-level security keeps it to its tenant. Endpoints are
    never deleted, only disabled, so the delivery log keeps its references.
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"status IN {ENDPOINT_STATUSES!r}", name="status"),
        CheckConstraint(f"signature_scheme IN {SIGNATURE_SCHEMES!r}", name="signature_scheme"),
    )

    id: Mapped[uuid.UUID] = id_column()
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    #: Event types (see :mod:`core.webhooks.event_types`), or ``["*"]`` for all.
    event_types: Mapped[list[Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="active")
    secret: Mapped[str] = mapped_column(String(100))
    secret_hint: Mapped[str] = mapped_column(String(16))
    #: ``standard`` for endpoints created or rotated since Standard Webhooks support; ``fealty-v1`` for older ones
    #: (the migration's default), until their secret is rotated or they opt in.
    signature_scheme: Mapped[str] = mapped_column(String(16), default="standard", server_default="fealty-v1")
    #: After a rotation, the old secret still signs (as a second ``v1``) until this time, so receivers can switch.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    #: The scheme the previous secret signed in (it keeps signing that way during its grace period).
    previous_signature_scheme: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column()


class WebhookDelivery(TenantScoped, Base):
    """One event to be delivered to one endpoint: retried with backoff until it succeeds or runs out of attempts.

    ``body`` is built once, when the delivery is created, so every attempt sends the very same bytes. A replay is a
    new delivery (``replay_of`` names the one replayed) with the same event, body and endpoint.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"], ["webhook_endpoints.tenant_id", "webhook_endpoints.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "replay_of"], ["webhook_deliveries.tenant_id", "webhook_deliveries.id"], ondelete="CASCADE"
        ),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint(
            "(status IN ('pending', 'sending')) = (next_attempt_at IS NOT NULL)", name="due_while_unfinished"
        ),
        #: What the worker claims: due deliveries of one tenant, soonest first.
        Index("ix_webhook_deliveries_due", "tenant_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "id"),
        #: An event reaches an endpoint once, however many dispatchers run (replays are new rows on purpose).
        Index(
            "uq_webhook_deliveries_event_endpoint",
            "tenant_id",
            "event_id",
            "endpoint_id",
            unique=True,
            postgresql_where=text("replay_of IS NULL"),
            sqlite_where=text("replay_of IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    #: The outbox event's id (the payload's ``id`` and the ``Fealty-Event-Id`` header).
    event_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(String(64))
    #: The exact JSON sent, identical on every attempt.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: POSTs started so far (a worker that died mid-POST counts: its lease ran out).
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(1000))
    replay_of: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class WebhookDeliveryAttempt(TenantScoped, Base):
    """One POST of a delivery and what came back (append-only: the application role may not change history)."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
        Index("uq_webhook_delivery_attempts_attempt", "tenant_id", "delivery_id", "attempt", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    delivery_id: Mapped[uuid.UUID] = mapped_column()
    #: 1 for the first POST of the delivery, 2 for the first retry...
    attempt: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column()
    duration_ms: Mapped[int] = mapped_column()
    succeeded: Mapped[bool] = mapped_column()
    #: The receiver's HTTP status (null when no response came: timeout, refused connection...).
    status_code: Mapped[int | None] = mapped_column()
    #: The start of the receiver's answer (at most 2 KB).
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(1000))
