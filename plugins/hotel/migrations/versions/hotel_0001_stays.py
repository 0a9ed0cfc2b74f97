"""Hotel plugin: reservations (what each earned and counted) and milestone choices.

Revision ID: hotel_0001
Revises: (the hotel branch starts here; needs core's 0007_care)
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core import rls

revision: str = "hotel_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("hotel",)
depends_on: str | Sequence[str] | None = "0007_care"

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "hotel_stays",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reservation_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("property", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("property_category", sa.String(length=16), nullable=True),
        sa.Column("check_in", sa.Date(), nullable=False),
        sa.Column("check_out", sa.Date(), nullable=False),
        sa.Column("rooms", sa.Integer(), nullable=False),
        sa.Column("nights", sa.Integer(), nullable=False),
        sa.Column("rate_type", sa.String(length=40), nullable=False),
        sa.Column("booking_channel", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_status", sa.String(length=16), nullable=False),
        sa.Column("last_event_id", sa.String(length=128), nullable=False),
        sa.Column("earning_event_id", sa.String(length=128), nullable=True),
        sa.Column("base_points", sa.Integer(), nullable=False),
        sa.Column("bonus_points", sa.Integer(), nullable=False),
        sa.Column("qualifying_nights", sa.Integer(), nullable=False),
        sa.Column("stay_credit", sa.Integer(), nullable=False),
        sa.Column("credit_year", sa.Integer(), nullable=True),
        sa.Column("pre_arrival_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('booked', 'in_house', 'checked_out', 'cancelled', 'no_show')",
            name=op.f("ck_hotel_stays_status"),
        ),
        sa.CheckConstraint("check_out > check_in", name=op.f("ck_hotel_stays_dates")),
        sa.CheckConstraint("rooms >= 1 AND nights >= 0 AND qualifying_nights >= 0", name=op.f("ck_hotel_stays_counts")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_hotel_stays_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_hotel_stays")),
    )
    op.create_index(
        "uq_hotel_stays_tenant_id_reservation_id", "hotel_stays", ["tenant_id", "reservation_id"], unique=True
    )
    op.create_index("ix_hotel_stays_member", "hotel_stays", ["tenant_id", "member_id", "check_in"], unique=False)
    op.create_index("ix_hotel_stays_arrivals", "hotel_stays", ["tenant_id", "status", "check_in"], unique=False)
    rls.tenant_table("hotel_stays", ("SELECT", "INSERT", "UPDATE"))

    op.create_table(
        "hotel_milestones",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("nights", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("choice", sa.String(length=32), nullable=True),
        sa.Column("fulfilment", JSON, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('offered', 'chosen', 'withdrawn')", name=op.f("ck_hotel_milestones_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "member_id"],
            ["members.tenant_id", "members.id"],
            name=op.f("fk_hotel_milestones_tenant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_hotel_milestones")),
    )
    op.create_index(
        "uq_hotel_milestones_tenant_id_member_id_year_nights",
        "hotel_milestones",
        ["tenant_id", "member_id", "year", "nights"],
        unique=True,
    )
    rls.tenant_table("hotel_milestones", ("SELECT", "INSERT", "UPDATE"))


def downgrade() -> None:
    op.drop_index("uq_hotel_milestones_tenant_id_member_id_year_nights", table_name="hotel_milestones")
    op.drop_table("hotel_milestones")
    op.drop_index("ix_hotel_stays_arrivals", table_name="hotel_stays")
    op.drop_index("ix_hotel_stays_member", table_name="hotel_stays")
    op.drop_index("uq_hotel_stays_tenant_id_reservation_id", table_name="hotel_stays")
    op.drop_table("hotel_stays")
