"""The microfinance plugin's tables (tenant-scoped like core's: ``tenant_id`` leads every key)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core import Base, TenantScoped, id_column

LOAN_STATUSES = ("applied", "approved", "signed", "disbursed", "active", "closed", "written_off", "rejected")
#: Loans that owe or will owe instalments (counted by the over-indebtedness check).
OPEN_STATUSES = ("approved", "signed", "disbursed", "active")
TASK_KINDS = (
    "use_of_funds",
    "monthly_visit",
    "late_instalment",
    "partial_payment",
    "overdue_visit",
    "group_arrears",
    "attendance",
)
TASK_STATES = ("open", "done", "cancelled")
VISIT_KINDS = ("use_of_funds", "monthly", "other")
Rate = Numeric(9, 4)


def _member_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "member_id"], ["members.tenant_id", "members.id"])


class Borrower(TenantScoped, Base):
    """A member's lending fields: household income, business, village, loan officer, integrity training."""

    __tablename__ = "microfinance_borrowers"
    __table_args__ = (
        _member_fk(),
        CheckConstraint("household_income_monthly >= 0", name="income"),
        Index("ix_microfinance_borrowers_officer", "tenant_id", "officer"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    household_income_monthly: Mapped[Decimal] = mapped_column()
    business: Mapped[str | None] = mapped_column(String(200))
    village: Mapped[str | None] = mapped_column(String(200))
    officer: Mapped[str | None] = mapped_column(String(100))
    training_on: Mapped[date | None] = mapped_column(Date())
    trainer: Mapped[str | None] = mapped_column(String(100))
    #: Progressive lending: the largest next loan after a clean cycle (None: no cycle closed yet).
    next_loan_limit: Mapped[Decimal | None] = mapped_column()
    clean_cycles: Mapped[int] = mapped_column(Integer(), default=0)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Bereavement(TenantScoped, Base):
    """A recorded bereavement: no collection contact from ``starts_on`` to ``ends_on`` (local days, inclusive)."""

    __tablename__ = "microfinance_bereavements"
    __table_args__ = (
        _member_fk(),
        CheckConstraint("ends_on >= starts_on", name="dates"),
        Index("ix_microfinance_bereavements_member", "tenant_id", "member_id", "ends_on"),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    starts_on: Mapped[date] = mapped_column(Date())
    ends_on: Mapped[date] = mapped_column(Date())
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column()


class Group(TenantScoped, Base):
    """A joint-liability group: its centre, meeting day and leader."""

    __tablename__ = "microfinance_groups"
    __table_args__ = (
        CheckConstraint("meeting_day BETWEEN 0 AND 6", name="meeting_day"),
        CheckConstraint("max_members >= 2", name="max_members"),
        Index("uq_microfinance_groups_tenant_id_name", "tenant_id", "name", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    centre: Mapped[str] = mapped_column(String(100))
    #: 0 Monday .. 6 Sunday.
    meeting_day: Mapped[int] = mapped_column(SmallInteger())
    leader_member_id: Mapped[uuid.UUID | None] = mapped_column()
    max_members: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[datetime] = mapped_column()


class GroupMember(TenantScoped, Base):
    """A borrower's place in a group (one group at a time)."""

    __tablename__ = "microfinance_group_members"
    __table_args__ = (
        _member_fk(),
        ForeignKeyConstraint(["tenant_id", "group_id"], ["microfinance_groups.tenant_id", "microfinance_groups.id"]),
        Index("uq_microfinance_group_members_tenant_id_member_id", "tenant_id", "member_id", unique=True),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    joined_at: Mapped[datetime] = mapped_column()


class Meeting(TenantScoped, Base):
    """A group meeting held."""

    __tablename__ = "microfinance_meetings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "group_id"], ["microfinance_groups.tenant_id", "microfinance_groups.id"]),
        Index("uq_microfinance_meetings_tenant_id_group_id_held_on", "tenant_id", "group_id", "held_on", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    group_id: Mapped[uuid.UUID] = mapped_column()
    held_on: Mapped[date] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column()


class Attendance(TenantScoped, Base):
    """Whether one group member attended one meeting."""

    __tablename__ = "microfinance_attendance"
    __table_args__ = (
        _member_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "meeting_id"], ["microfinance_meetings.tenant_id", "microfinance_meetings.id"]
        ),
        Index("ix_microfinance_attendance_member", "tenant_id", "member_id"),
    )

    meeting_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    present: Mapped[bool] = mapped_column(Boolean())


class Product(TenantScoped, Base):
    """A loan product: term, frequency, interest method and rate, fees, grace, limits."""

    __tablename__ = "microfinance_products"
    __table_args__ = (
        CheckConstraint("interest_method IN ('flat', 'declining')", name="method"),
        CheckConstraint("frequency IN ('weekly', 'fortnightly', 'monthly')", name="frequency"),
        CheckConstraint("instalments >= 1 AND grace >= 0 AND grace < instalments", name="term"),
        CheckConstraint("annual_rate >= 0 AND instalment_fee >= 0 AND late_penalty >= 0", name="amounts"),
        CheckConstraint("min_principal > 0 AND max_principal >= min_principal", name="limits"),
        Index("uq_microfinance_products_tenant_id_code", "tenant_id", "code", unique=True),
    )

    id: Mapped[uuid.UUID] = id_column()
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    interest_method: Mapped[str] = mapped_column(String(16))
    annual_rate: Mapped[Decimal] = mapped_column(Rate)
    frequency: Mapped[str] = mapped_column(String(16))
    instalments: Mapped[int] = mapped_column(Integer())
    grace: Mapped[int] = mapped_column(Integer())
    instalment_fee: Mapped[Decimal] = mapped_column()
    late_penalty: Mapped[Decimal] = mapped_column()
    penalty_after_days: Mapped[int] = mapped_column(Integer())
    min_principal: Mapped[Decimal] = mapped_column()
    max_principal: Mapped[Decimal] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean(), default=True)
    created_at: Mapped[datetime] = mapped_column()


class Loan(TenantScoped, Base):
    """A loan: its terms (copied from the product when applied for) and where it stands."""

    __tablename__ = "microfinance_loans"
    __table_args__ = (
        _member_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "product_id"], ["microfinance_products.tenant_id", "microfinance_products.id"]
        ),
        CheckConstraint(f"status IN {LOAN_STATUSES!r}", name="status"),
        CheckConstraint("principal > 0", name="principal"),
        CheckConstraint(
            "status IN ('applied', 'approved', 'rejected') OR signed_at IS NOT NULL", name="signed_before_disbursed"
        ),
        Index("ix_microfinance_loans_member", "tenant_id", "member_id", "status"),
        Index("ix_microfinance_loans_status", "tenant_id", "status"),
    )

    id: Mapped[uuid.UUID] = id_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column()
    group_id: Mapped[uuid.UUID | None] = mapped_column()
    officer: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    principal: Mapped[Decimal] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    interest_method: Mapped[str] = mapped_column(String(16))
    annual_rate: Mapped[Decimal] = mapped_column(Rate)
    frequency: Mapped[str] = mapped_column(String(16))
    instalments: Mapped[int] = mapped_column(Integer())
    grace: Mapped[int] = mapped_column(Integer())
    instalment_fee: Mapped[Decimal] = mapped_column()
    purpose: Mapped[str | None] = mapped_column(String(500))
    applied_on: Mapped[date] = mapped_column(Date())
    #: The over-indebtedness check as it ran at approval, and the override reason when it was over the limit.
    indebtedness: Mapped[dict[str, Any] | None] = mapped_column()
    override_reason: Mapped[str | None] = mapped_column(String(500))
    approved_at: Mapped[datetime | None] = mapped_column()
    signed_at: Mapped[datetime | None] = mapped_column()
    disbursed_on: Mapped[date | None] = mapped_column(Date())
    first_due_on: Mapped[date | None] = mapped_column(Date())
    closed_on: Mapped[date | None] = mapped_column(Date())
    written_off_on: Mapped[date | None] = mapped_column(Date())
    #: The worst days past due the loan reached (kept by repayments and the nightly job): a clean record is 0.
    max_days_past_due: Mapped[int] = mapped_column(Integer(), default=0)
    #: Set when the loan closed: perfectly repaid (every instalment on time), the interest rebate it may get.
    perfect: Mapped[bool | None] = mapped_column(Boolean())
    rebate_amount: Mapped[Decimal | None] = mapped_column()
    #: Consecutive instalments paid on time (for the streak bonus).
    on_time_streak: Mapped[int] = mapped_column(Integer(), default=0)
    #: The last local day a collection contact (arrears notice) was asked of the care engine.
    collection_requested_on: Mapped[date | None] = mapped_column(Date())
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class Instalment(TenantScoped, Base):
    """One instalment of a disbursed loan: what is due, what was paid, and when it was paid off."""

    __tablename__ = "microfinance_instalments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "loan_id"], ["microfinance_loans.tenant_id", "microfinance_loans.id"]),
        CheckConstraint(
            "principal_paid BETWEEN 0 AND principal_due AND interest_paid BETWEEN 0 AND interest_due "
            "AND fee_paid BETWEEN 0 AND fee_due AND penalty_paid BETWEEN 0 AND penalty_due",
            name="paid_within_due",
        ),
        Index("ix_microfinance_instalments_due", "tenant_id", "due_on"),
    )

    loan_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    no: Mapped[int] = mapped_column(Integer(), primary_key=True)
    due_on: Mapped[date] = mapped_column(Date())
    principal_due: Mapped[Decimal] = mapped_column()
    interest_due: Mapped[Decimal] = mapped_column()
    fee_due: Mapped[Decimal] = mapped_column()
    penalty_due: Mapped[Decimal] = mapped_column(default=Decimal(0))
    principal_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    interest_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fee_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    penalty_paid: Mapped[Decimal] = mapped_column(default=Decimal(0))
    #: The local day principal, interest and fee were all paid (penalties apart); None while they are not.
    paid_off_on: Mapped[date | None] = mapped_column(Date())
    #: When the repayment reminder for it was asked of the care engine.
    reminded_at: Mapped[datetime | None] = mapped_column()


class Repayment(TenantScoped, Base):
    """A ``microfinance.repayment`` event as applied to its loan."""

    __tablename__ = "microfinance_repayments"
    __table_args__ = (
        _member_fk(),
        ForeignKeyConstraint(["tenant_id", "loan_id"], ["microfinance_loans.tenant_id", "microfinance_loans.id"]),
        CheckConstraint("amount > 0", name="amount"),
        Index("uq_microfinance_repayments_tenant_id_event_id", "tenant_id", "event_id", unique=True),
        Index("ix_microfinance_repayments_loan", "tenant_id", "loan_id", "paid_on"),
    )

    id: Mapped[uuid.UUID] = id_column()
    #: Core's event (``GET /v1/events/{id}``) and the source system's id.
    event_id: Mapped[uuid.UUID] = mapped_column()
    source_event_id: Mapped[str] = mapped_column(String(128))
    loan_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    paid_at: Mapped[datetime] = mapped_column()
    paid_on: Mapped[date] = mapped_column(Date())
    amount: Mapped[Decimal] = mapped_column()
    reversed_at: Mapped[datetime | None] = mapped_column()


class Allocation(TenantScoped, Base):
    """What one repayment paid into one instalment, by part (kept when reversed, flagged)."""

    __tablename__ = "microfinance_allocations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "repayment_id"], ["microfinance_repayments.tenant_id", "microfinance_repayments.id"]
        ),
        CheckConstraint("penalty >= 0 AND fee >= 0 AND interest >= 0 AND principal >= 0", name="parts"),
        Index("ix_microfinance_allocations_loan", "tenant_id", "loan_id", "paid_on"),
    )

    repayment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    instalment_no: Mapped[int] = mapped_column(Integer(), primary_key=True)
    loan_id: Mapped[uuid.UUID] = mapped_column()
    paid_on: Mapped[date] = mapped_column(Date())
    penalty: Mapped[Decimal] = mapped_column()
    fee: Mapped[Decimal] = mapped_column()
    interest: Mapped[Decimal] = mapped_column()
    principal: Mapped[Decimal] = mapped_column()
    reversed: Mapped[bool] = mapped_column(Boolean(), default=False)


class LoanAction(TenantScoped, Base):
    """Every state change and reschedule of a loan, with who did it and why (the schedule before and after)."""

    __tablename__ = "microfinance_loan_actions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "loan_id"], ["microfinance_loans.tenant_id", "microfinance_loans.id"]),
        Index("ix_microfinance_loan_actions_loan", "tenant_id", "loan_id", "at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    loan_id: Mapped[uuid.UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column()


class Visit(TenantScoped, Base):
    """A follow-up visit and its form, signed by the borrower."""

    __tablename__ = "microfinance_visits"
    __table_args__ = (
        _member_fk(),
        ForeignKeyConstraint(["tenant_id", "loan_id"], ["microfinance_loans.tenant_id", "microfinance_loans.id"]),
        CheckConstraint(f"kind IN {VISIT_KINDS!r}", name="kind"),
        Index("ix_microfinance_visits_loan", "tenant_id", "loan_id", "visited_on"),
    )

    id: Mapped[uuid.UUID] = id_column()
    loan_id: Mapped[uuid.UUID] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    officer: Mapped[str] = mapped_column(String(100))
    visited_on: Mapped[date] = mapped_column(Date())
    place: Mapped[str] = mapped_column(String(200))
    use_of_funds: Mapped[str | None] = mapped_column(Text())
    business_state: Mapped[str | None] = mapped_column(Text())
    needs: Mapped[str | None] = mapped_column(Text())
    feedback: Mapped[str | None] = mapped_column(Text())
    signature_ref: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class Task(TenantScoped, Base):
    """A follow-up task for a loan officer, raised once per occasion (``occasion_key`` is unique)."""

    __tablename__ = "microfinance_tasks"
    __table_args__ = (
        _member_fk(),
        CheckConstraint(f"kind IN {TASK_KINDS!r}", name="kind"),
        CheckConstraint(f"state IN {TASK_STATES!r}", name="state"),
        Index("uq_microfinance_tasks_tenant_id_occasion_key", "tenant_id", "occasion_key", unique=True),
        Index("ix_microfinance_tasks_worklist", "tenant_id", "state", "officer", "due_on"),
        Index("ix_microfinance_tasks_loan", "tenant_id", "loan_id", "state"),
    )

    id: Mapped[uuid.UUID] = id_column()
    occasion_key: Mapped[str] = mapped_column(String(200))
    loan_id: Mapped[uuid.UUID | None] = mapped_column()
    member_id: Mapped[uuid.UUID] = mapped_column()
    officer: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(500))
    due_on: Mapped[date] = mapped_column(Date())
    state: Mapped[str] = mapped_column(String(16), default="open")
    visit_id: Mapped[uuid.UUID | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
