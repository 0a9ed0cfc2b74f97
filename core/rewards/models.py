"""The rewards catalogue and the redemptions made from it.

A redemption is issued with a unique voucher code once the stock unit and the points are taken (in one transaction);
it is then used, cancelled (points and stock come back) or expires. The ledger entries it made are named by
``debit_entry_id`` and ``restore_entry_id``; the ledger's own entries name the redemption as their cause.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

REDEMPTION_STATUSES = ("issued", "used", "cancelled", "expired")
#: The kind core fulfils itself; any other kind is fulfilled by a plugin (``fealty_fulfil_reward``).
VOUCHER = "voucher"


class Reward(TenantScoped, Base):
    """One entry of the catalogue. ``stock`` None is unlimited; ``attributes`` carry what plugins need (category,
    step...). Never deleted: deactivating it keeps its redemptions' history readable."""

    __tablename__ = "rewards"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("uq_rewards_tenant_id_code", "tenant_id", "code", unique=True),
        CheckConstraint("points_cost > 0", name="points_cost_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint("per_member_limit IS NULL OR per_member_limit > 0", name="per_member_limit_positive"),
        CheckConstraint("min_tier_rank IS NULL OR min_tier_rank >= 0", name="min_tier_rank_not_negative"),
        CheckConstraint("voucher_valid_days IS NULL OR voucher_valid_days > 0", name="voucher_valid_days_positive"),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from", name="validity_ordered"
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40), default=VOUCHER)
    points_cost: Mapped[int] = mapped_column(BigInteger)
    #: Units left to redeem; None: unlimited. Taken with one conditional UPDATE, so it is never oversold.
    stock: Mapped[int | None] = mapped_column()
    #: How many times one member may redeem it (cancelled redemptions do not count); None: no limit.
    per_member_limit: Mapped[int | None] = mapped_column()
    #: Tier restriction: the member's tier rank must be at least this, and (when listed) its code one of these.
    min_tier_rank: Mapped[int | None] = mapped_column()
    tier_codes: Mapped[list[Any]] = mapped_column(default=list)
    valid_from: Mapped[datetime | None] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    #: How long an issued voucher can be used, in days; None: it never expires.
    voucher_valid_days: Mapped[int | None] = mapped_column()
    #: An expired voucher gives its points (and its stock unit) back.
    refund_on_expiry: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Redemption(TenantScoped, Base):
    """One redemption of a reward by a member: its voucher, the points it took, and what became of it."""

    __tablename__ = "redemptions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        ForeignKeyConstraint(["tenant_id", "reward_id"], ["rewards.tenant_id", "rewards.id"]),
        ForeignKeyConstraint(["tenant_id", "debit_entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]),
        ForeignKeyConstraint(["tenant_id", "restore_entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]),
        CheckConstraint(f"status IN {REDEMPTION_STATUSES!r}", name="status"),
        CheckConstraint("points > 0", name="points_positive"),
        Index("uq_redemptions_tenant_id_voucher_code", "tenant_id", "voucher_code", unique=True),
        Index("ix_redemptions_member_reward", "tenant_id", "member_id", "reward_id"),
        Index("ix_redemptions_reward", "tenant_id", "reward_id"),
        Index(
            "ix_redemptions_expiring",
            "tenant_id",
            "expires_at",
            postgresql_where=text("status = 'issued' AND expires_at IS NOT NULL"),
            sqlite_where=text("status = 'issued' AND expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    reward_id: Mapped[uuid.UUID] = mapped_column()
    #: What the member paid (the reward's cost at the time).
    points: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="issued")
    #: ``XXXX-XXXX-XXXX`` in Crockford base32; unique within the tenant.
    voucher_code: Mapped[str] = mapped_column(String(14))
    debit_entry_id: Mapped[uuid.UUID] = mapped_column()
    restore_entry_id: Mapped[uuid.UUID | None] = mapped_column()
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()
    #: What the fulfilling plugin answered (non-voucher kinds).
    fulfilment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Who issued, used or cancelled it, where it was used, why it was cancelled.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
