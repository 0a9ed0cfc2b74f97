"""The hotel plugin's own tables (tenant-scoped like core's: ``tenant_id`` leads every key)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKeyConstraint, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from core import Base, TenantScoped, id_column

STAY_STATUSES = ("booked", "in_house", "checked_out", "cancelled", "no_show")
MILESTONE_STATUSES = ("offered", "chosen", "withdrawn")


class HotelStay(TenantScoped, Base):
    """One reservation as the PMS last described it, and what it earned (by which event)."""

    __tablename__ = "hotel_stays"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint(f"status IN {STAY_STATUSES!r}", name="status"),
        CheckConstraint("check_out > check_in", name="dates"),
        CheckConstraint("rooms >= 1 AND nights >= 0 AND qualifying_nights >= 0", name="counts"),
        Index("uq_hotel_stays_tenant_id_reservation_id", "tenant_id", "reservation_id", unique=True),
        Index("ix_hotel_stays_member", "tenant_id", "member_id", "check_in"),
        Index("ix_hotel_stays_arrivals", "tenant_id", "status", "check_in"),
    )

    id: Mapped[uuid.UUID] = id_column()
    reservation_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[uuid.UUID] = mapped_column()
    property: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(String(64))
    property_category: Mapped[str | None] = mapped_column(String(16))
    check_in: Mapped[date] = mapped_column(Date())
    check_out: Mapped[date] = mapped_column(Date())
    rooms: Mapped[int] = mapped_column(Integer())
    nights: Mapped[int] = mapped_column(Integer())
    rate_type: Mapped[str] = mapped_column(String(40))
    booking_channel: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    payment_status: Mapped[str] = mapped_column(String(16))
    #: The PMS message that last updated the reservation.
    last_event_id: Mapped[str] = mapped_column(String(128))
    #: The event that earned (None: nothing earned yet, or it was reversed).
    earning_event_id: Mapped[str | None] = mapped_column(String(128))
    #: What the earning event gave (0 once reversed in full); a partial reversal takes ``reversed_share`` of it back.
    base_points: Mapped[int] = mapped_column(Integer(), default=0)
    bonus_points: Mapped[int] = mapped_column(Integer(), default=0)
    #: Nights and stays this reservation counted toward status when it earned (0 once reversed in full).
    qualifying_nights: Mapped[int] = mapped_column(Integer(), default=0)
    stay_credit: Mapped[int] = mapped_column(Integer(), default=0)
    #: Share of the earning event reversed through the API (0..1 excluded: reversed in full, the row is reset): it
    #: still counts ``qualifying_nights * (1 - reversed_share)`` nights, as core's credits do.
    reversed_share: Mapped[Decimal] = mapped_column(Numeric(9, 8), default=Decimal(0), server_default="0")
    #: The calendar year (program time zone) its nights count in.
    credit_year: Mapped[int | None] = mapped_column(Integer())
    #: When a pre-arrival notice was asked for.
    pre_arrival_at: Mapped[datetime | None] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class HotelMilestone(TenantScoped, Base):
    """A milestone choice offered to a member for reaching N nights in a calendar year."""

    __tablename__ = "hotel_milestones"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"]),
        CheckConstraint(f"status IN {MILESTONE_STATUSES!r}", name="status"),
        Index(
            "uq_hotel_milestones_tenant_id_member_id_year_nights",
            "tenant_id",
            "member_id",
            "year",
            "nights",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    year: Mapped[int] = mapped_column(Integer())
    nights: Mapped[int] = mapped_column(Integer())
    status: Mapped[str] = mapped_column(String(16))
    #: The choices offered, as the settings stood when the milestone was reached.
    options: Mapped[list[Any]] = mapped_column()
    choice: Mapped[str | None] = mapped_column(String(32))
    #: What the choice gave (points credited and their ledger entry, vouchers to issue...).
    fulfilment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The stay event that reached it.
    event_id: Mapped[str] = mapped_column(String(128))
    offered_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
