"""The points ledger: append-only entries, earn lots, lot consumptions and one balance row per member.

Lock protocol: every change to a member's lots or balance happens in a transaction that holds that member's
``point_balances`` row lock (an UPDATE or SELECT ... FOR UPDATE on it comes first). That single lock serialises all
writers of one member, so ``available == sum(remaining of posted lots)`` (or, when a reversal drove the balance
negative, ``available < 0`` with no posted points left) holds after any interleaving.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db.base import Base, TenantScoped, id_column

ENTRY_KINDS = ("earn", "redeem", "expire", "adjust", "reverse", "transfer")
ENTRY_STATUSES = ("posted", "pending", "cancelled")
CAUSE_TYPES = ("event", "redemption", "admin", "plugin", "system")
LOT_STATUSES = ("pending", "posted", "cancelled")
LOT_KINDS = ("earn", "adjust")
#: Room kept in each page of balances for their rows' next versions: an event's balance update stays on its page
#: (a HOT update, no new primary-key entry; migration 0032).
BALANCE_FILLFACTOR = 90


class PointBalance(TenantScoped, Base):
    __tablename__ = "point_balances"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"], ondelete="CASCADE"),
        CheckConstraint("pending >= 0", name="pending_not_negative"),
        CheckConstraint(
            "lifetime_earned >= 0 AND lifetime_redeemed >= 0 AND lifetime_expired >= 0 AND lifetime_written_off >= 0",
            name="lifetime_not_negative",
        ),
        CheckConstraint(
            "available = lifetime_earned - lifetime_redeemed - lifetime_expired + lifetime_adjusted"
            " + lifetime_written_off",
            name="totals_add_up",
        ),
        {"postgresql_with": {"fillfactor": BALANCE_FILLFACTOR}},
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Net admin adjustments (credits minus debits).
    lifetime_adjusted: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Points a reversal could not take back under the claw-back policy (already spent): the member kept them.
    lifetime_written_off: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Last qualifying activity (drives inactivity expiry); admin adjustments and transfers do not count.
    last_activity_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(TenantScoped, Base):
    """One movement of points. Never updated, except a pending entry's status (pending -> posted or cancelled)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        ForeignKeyConstraint(["tenant_id", "reverses_entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]),
        CheckConstraint(f"kind IN {ENTRY_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {ENTRY_STATUSES!r}", name="status"),
        CheckConstraint(f"cause_type IN {CAUSE_TYPES!r}", name="cause_type"),
        CheckConstraint("points <> 0 OR kind = 'reverse'", name="points_not_zero"),
        CheckConstraint("kind NOT IN ('earn') OR points > 0", name="earn_positive"),
        CheckConstraint("kind NOT IN ('redeem', 'expire') OR points < 0", name="spend_negative"),
        Index("ix_ledger_entries_member_created", "tenant_id", "member_id", "created_at"),
        Index("ix_ledger_entries_cause", "tenant_id", "cause_type", "cause_id"),
        Index("ix_ledger_entries_reverses", "tenant_id", "reverses_entry_id"),
        # The liability roll-up's live part: the entries created since its cut-off, and those released on one day.
        Index("ix_ledger_entries_created", "tenant_id", "created_at"),
        Index(
            "ix_ledger_entries_released",
            "tenant_id",
            "available_at",
            postgresql_where=text("available_at IS NOT NULL"),
            sqlite_where=text("available_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    #: Signed: credits positive, debits negative. A reversal that found nothing left to take is 0.
    points: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="posted")
    cause_type: Mapped[str] = mapped_column(String(16))
    cause_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column()
    #: Who asked: ``key:<api key id>``, ``platform``, ``worker``.
    actor: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: For a pending earn: when it becomes available.
    available_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lot(TenantScoped, Base):
    """The points of one credit (earn or admin credit), with what remains of them and when they expire."""

    __tablename__ = "lots"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "id"], ["ledger_entries.tenant_id", "ledger_entries.id"]),
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        CheckConstraint("reversed >= 0 AND reversed <= points", name="reversed_in_range"),
        CheckConstraint(f"status IN {LOT_STATUSES!r}", name="status"),
        CheckConstraint(f"kind IN {LOT_KINDS!r}", name="kind"),
        Index(
            "ix_lots_open_by_member",
            "tenant_id",
            "member_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        Index(
            "ix_lots_expiring",
            "tenant_id",
            "expires_at",
            postgresql_where=text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
            sqlite_where=text("remaining > 0 AND status = 'posted' AND expires_at IS NOT NULL"),
        ),
        Index(
            "ix_lots_releasing",
            "tenant_id",
            "available_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),  # The liability roll-up's live part: the lots earned since its cut-off.
        Index("ix_lots_earned", "tenant_id", "earned_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column()
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    #: How much of this credit reversals have taken back so far (never more than ``points``).
    reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    #: The credit that made it: an earn (counts as lifetime earned) or an admin credit.
    kind: Mapped[str] = mapped_column(String(8))
    earned_at: Mapped[datetime] = mapped_column()
    available_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()


class LotConsumption(TenantScoped, Base):
    """Which lot an entry took points from (positive) or gave points back to (negative)."""

    __tablename__ = "lot_consumptions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]),
        ForeignKeyConstraint(["tenant_id", "lot_id"], ["lots.tenant_id", "lots.id"]),
        CheckConstraint("points <> 0", name="points_not_zero"),
        Index("ix_lot_consumptions_entry", "tenant_id", "entry_id"),
        Index("ix_lot_consumptions_lot", "tenant_id", "lot_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    entry_id: Mapped[uuid.UUID] = mapped_column()
    lot_id: Mapped[uuid.UUID] = mapped_column()
    points: Mapped[int] = mapped_column(BigInteger)
