"""A tenant's program settings: one row per tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, String, false
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped

EXPIRY_KINDS = ("never", "days_after_earn", "end_of_month_after", "inactivity")
REVERSAL_POLICIES = ("allow_negative", "claw_back")


class Program(TenantScoped, Base):
    __tablename__ = "programs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint(f"expiry_kind IN {EXPIRY_KINDS!r}", name="expiry_kind"),
        CheckConstraint(f"reversal_policy IN {REVERSAL_POLICIES!r}", name="reversal_policy"),
        CheckConstraint("expiry_value IS NULL OR expiry_value > 0", name="expiry_value"),
    )

    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    #: ISO 3166 country used to read phone numbers written without a country code.
    country: Mapped[str | None] = mapped_column(String(2))
    points_name: Mapped[str] = mapped_column(String(40), default="points")
    expiry_kind: Mapped[str] = mapped_column(String(24), default="never")
    #: Days (days_after_earn) or months (end_of_month_after, inactivity).
    expiry_value: Mapped[int | None] = mapped_column()
    reversal_policy: Mapped[str] = mapped_column(String(16), default="claw_back")
    #: Bumped by every change to rules, tiers, campaigns, segments or webhook endpoints: the in-process cache of the
    #: tenant's configuration is checked against it on every request (read with authentication, no extra query).
    config_version: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Enrol unknown members on their first event (matched by external_id, card or phone).
    auto_enrol: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Everything else, validated by the program API and by plugins' own schemas.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
