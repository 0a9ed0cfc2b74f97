"""The utility plugin's tables (tenant-scoped like core's: ``tenant_id`` leads every key).

Exactly-once lives in the keys: one notice per (outage, account, stage), one compensation per (outage, account),
one call task per (outage, account, reason), one rebate per (peak event, account), one credit per (account, kind).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKeyConstraint, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from core import Base, TenantScoped, id_column

CLASSES = ("residential", "sme", "large", "public")
OUTAGE_KINDS = ("planned", "unplanned")
OUTAGE_STATUSES = ("scheduled", "confirmed", "restored", "cancelled")
COMPENSATION_STATUSES = ("none", "due", "paid")
TASK_STATUSES = ("open", "done")


def _member_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"])


def _account_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "account_id"], ["utility_accounts.tenant_id", "utility_accounts.id"])


def _outage_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "outage_id"], ["utility_outages.tenant_id", "utility_outages.id"])


class UtilityAccount(TenantScoped, Base):
    """A service account (a supply point) held by a member; a member may hold several."""

    __tablename__ = "utility_accounts"
    __table_args__ = (
        _member_fk(),
        CheckConstraint(f"customer_class IN {CLASSES!r}", name="customer_class"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
        Index("uq_utility_accounts_tenant_id_account_number", "tenant_id", "account_number", unique=True),
        Index("ix_utility_accounts_feeder", "tenant_id", "feeder"),
        Index("ix_utility_accounts_area", "tenant_id", "area"),
        Index("ix_utility_accounts_member", "tenant_id", "member_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    account_number: Mapped[str] = mapped_column(String(40))
    premises_address: Mapped[str] = mapped_column(String(300))
    meter_id: Mapped[str | None] = mapped_column(String(40))
    feeder: Mapped[str] = mapped_column(String(40))
    area: Mapped[str] = mapped_column(String(40))
    customer_class: Mapped[str] = mapped_column(String(16))
    #: An SME's credit rating (the tenant's scale, e.g. A-D).
    credit_rating: Mapped[str | None] = mapped_column(String(8))
    #: A large customer's named account manager (who gets their call tasks and cases).
    account_manager: Mapped[str | None] = mapped_column(String(120))
    #: Priority Services Register needs, recorded with the customer's consent, its source and a review date.
    psr_needs: Mapped[list[Any]] = mapped_column(default=list)
    psr_consent: Mapped[bool] = mapped_column(default=False)
    psr_source: Mapped[str | None] = mapped_column(String(80))
    psr_recorded_at: Mapped[datetime | None] = mapped_column()
    psr_review_date: Mapped[date | None] = mapped_column(Date())
    #: Denormalised from ``psr_needs`` for the set-based outage queries.
    psr: Mapped[bool] = mapped_column(default=False)
    medical: Mapped[bool] = mapped_column(default=False)
    paperless: Mapped[bool] = mapped_column(default=False)
    autopay: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class UtilityOutage(TenantScoped, Base):
    """A planned or unplanned outage on feeders and/or areas."""

    __tablename__ = "utility_outages"
    __table_args__ = (
        CheckConstraint(f"kind IN {OUTAGE_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {OUTAGE_STATUSES!r}", name="status"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window"),
        Index("uq_utility_outages_tenant_id_reference", "tenant_id", "reference", unique=True),
        Index("ix_utility_outages_status", "tenant_id", "status", "starts_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    #: The outage management system's own id (unique per tenant; a replayed creation finds the outage).
    reference: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    feeders: Mapped[list[Any]] = mapped_column(default=list)
    areas: Mapped[list[Any]] = mapped_column(default=list)
    #: Planned: the window; unplanned: when the supply was lost (``ends_at`` None).
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column()
    #: Unplanned: the estimated restoration time.
    etr: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(300))
    contact_line: Mapped[str | None] = mapped_column(String(40))
    #: ``normal``, a severe-weather category or an exempt one (compensation).
    category: Mapped[str] = mapped_column(String(40), default="normal")
    #: Bumped by each change of the window (planned) or each told ETR change (unplanned): the stage's name.
    window_version: Mapped[int] = mapped_column(Integer(), default=0)
    etr_version: Mapped[int] = mapped_column(Integer(), default=0)
    affected_accounts: Mapped[int] = mapped_column(Integer(), default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    restored_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class UtilityOutageAccount(TenantScoped, Base):
    """An account an outage affects (the snapshot taken when it was confirmed or scheduled), with its own
    restoration: an account that replied "still out" is reopened and restored on its own."""

    __tablename__ = "utility_outage_accounts"
    __table_args__ = (
        _outage_fk(),
        _account_fk(),
        _member_fk(),
        Index("ix_utility_outage_accounts_account", "tenant_id", "account_id"),
    )

    outage_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column()
    customer_class: Mapped[str] = mapped_column(String(16))
    priority: Mapped[bool] = mapped_column(default=False)
    medical: Mapped[bool] = mapped_column(default=False)
    #: ``feeder``, ``area`` or ``claim`` (added by a customer's claim).
    source: Mapped[str] = mapped_column(String(16))
    out_from: Mapped[datetime] = mapped_column()
    restored_at: Mapped[datetime | None] = mapped_column()
    reopened_at: Mapped[datetime | None] = mapped_column()


class UtilityNotice(TenantScoped, Base):
    """One stage told to one account about one outage: the key that makes every stage go once."""

    __tablename__ = "utility_notices"
    __table_args__ = (_outage_fk(), _account_fk(), _member_fk())

    outage_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    #: ``priority_notice``, ``notice``, ``reminder:6``, ``changed:2``, ``cancelled``, ``alert``, ``etr:1``,
    #: ``restored``, ``compensation``.
    stage: Mapped[str] = mapped_column(String(40), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column()
    late: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()


class UtilityCompensation(TenantScoped, Base):
    """What one account is owed for one outage (Guaranteed Standards), paid once."""

    __tablename__ = "utility_compensations"
    __table_args__ = (
        _outage_fk(),
        _account_fk(),
        _member_fk(),
        CheckConstraint(f"status IN {COMPENSATION_STATUSES!r}", name="status"),
        CheckConstraint("amount >= 0 AND paid_amount >= 0 AND points >= 0 AND minutes >= 0", name="amounts"),
        Index("uq_utility_compensations_outage_account", "tenant_id", "outage_id", "account_id", unique=True),
        Index("ix_utility_compensations_due", "tenant_id", "status", "created_at"),
        Index("ix_utility_compensations_account", "tenant_id", "account_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    outage_id: Mapped[uuid.UUID] = mapped_column()
    account_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    category: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    minutes: Mapped[int] = mapped_column(Integer())
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    #: What was paid so far (an account restored again after "still out" may be owed more: the difference is paid).
    paid_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    basis: Mapped[str] = mapped_column(String(32))
    increments: Mapped[int] = mapped_column(Integer())
    #: ``points`` or ``bill_credit``; the points paid (points) or 0.
    method: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer(), default=0)
    #: ``none`` (nothing owed), ``due`` (to pay), ``paid``.
    status: Mapped[str] = mapped_column(String(8))
    #: ``automatic`` (at restoration) or ``claim``.
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()


class UtilityCallTask(TenantScoped, Base):
    """A call an account manager (or the priority desk) owes a priority customer about an outage."""

    __tablename__ = "utility_call_tasks"
    __table_args__ = (
        _outage_fk(),
        _account_fk(),
        CheckConstraint(f"status IN {TASK_STATUSES!r}", name="status"),
        Index("uq_utility_call_tasks_once", "tenant_id", "outage_id", "account_id", "reason", unique=True),
        Index("ix_utility_call_tasks_open", "tenant_id", "status", "assignee", "due_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    outage_id: Mapped[uuid.UUID] = mapped_column()
    account_id: Mapped[uuid.UUID] = mapped_column()
    #: ``planned_priority`` (a personal call before a planned outage) or ``medical`` (an unplanned outage).
    reason: Mapped[str] = mapped_column(String(32))
    assignee: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(8), default="open")
    due_at: Mapped[datetime] = mapped_column()
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()


class UtilityEnrolment(TenantScoped, Base):
    """A paperless or autopay enrolment's one-time credit (once per account and kind, ever), and its claw-back."""

    __tablename__ = "utility_enrolments"
    __table_args__ = (_account_fk(), CheckConstraint("kind IN ('paperless', 'autopay')", name="kind"))

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The event that earned the credit (its ``event_id``; reversed by a claw-back).
    event_id: Mapped[str] = mapped_column(String(128))
    enrolled_at: Mapped[datetime] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    clawed_back: Mapped[bool] = mapped_column(default=False)


class UtilityBill(TenantScoped, Base):
    """A paid bill: once per account and bill id, on time or not."""

    __tablename__ = "utility_bills"
    __table_args__ = (_account_fk(),)

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_date: Mapped[date] = mapped_column(Date())
    paid_date: Mapped[date] = mapped_column(Date())
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    on_time: Mapped[bool] = mapped_column()
    event_id: Mapped[str] = mapped_column(String(128))


class UtilityMeterRead(TenantScoped, Base):
    """An interval read (kWh over ``minutes`` from ``starts_at``); a read sent again replaces the earlier one."""

    __tablename__ = "utility_meter_reads"
    __table_args__ = (_account_fk(), CheckConstraint("kwh >= 0 AND minutes > 0", name="read"))

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer())
    kwh: Mapped[Decimal] = mapped_column(Numeric(12, 3))


class UtilityPeakEvent(TenantScoped, Base):
    """A peak-time event: customers who use less than their baseline during it earn a rebate per kWh saved."""

    __tablename__ = "utility_peak_events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("status IN ('scheduled', 'settled', 'cancelled')", name="status"),
        Index("ix_utility_peak_events_status", "tenant_id", "status", "starts_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(120))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    feeders: Mapped[list[Any]] = mapped_column(default=list)
    areas: Mapped[list[Any]] = mapped_column(default=list)
    rate_per_kwh: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column()
    settled_at: Mapped[datetime | None] = mapped_column()


class UtilityPeakRebate(TenantScoped, Base):
    """One account's rebate for one peak event (paid once)."""

    __tablename__ = "utility_peak_rebates"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "peak_event_id"], ["utility_peak_events.tenant_id", "utility_peak_events.id"]
        ),
        _account_fk(),
        _member_fk(),
    )

    peak_event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column()
    #: None: not enough reads on similar days for a baseline.
    baseline_kwh: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    event_kwh: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    saved_kwh: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    points: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[datetime] = mapped_column()
