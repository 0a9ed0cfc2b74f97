"""Use cases on the database: borrowers, groups, products, loans and their states, schedules, repayments (through
core's events), reversals, the PAR and ageing report, follow-ups and the nightly job, incentives, fair collection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from babel.numbers import get_currency_precision
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    Award,
    AwardsContext,
    Conflict,
    EventContext,
    FealtyError,
    FieldIssue,
    HookContext,
    NotFound,
    ProcessedContext,
    ReversalContext,
    TenantView,
    ValidationFailed,
    local_day,
    new_id,
)
from plugins.microfinance import rules
from plugins.microfinance.models import (
    OPEN_STATUSES,
    Allocation,
    Attendance,
    Borrower,
    Group,
    GroupMember,
    Instalment,
    Loan,
    LoanAction,
    Meeting,
    Product,
    Repayment,
    Task,
)
from plugins.microfinance.settings import MicrofinanceSettings

PLUGIN = "microfinance"
REPAYMENT = "microfinance.repayment"
REMINDER_TRIGGER = "microfinance.repayment_due"
ARREARS_TRIGGER = "microfinance.arrears"
COLLECTION_TRIGGERS = (REMINDER_TRIGGER, ARREARS_TRIGGER)
ZERO = Decimal(0)


def settings_of(tenant: TenantView) -> MicrofinanceSettings:
    settings: MicrofinanceSettings = tenant.settings_for(PLUGIN)
    return settings


def digits_of(currency: str) -> int:
    return int(get_currency_precision(currency))


def rounder_for(tenant: TenantView, currency: str | None = None) -> rules.Rounder:
    return rules.rounder(digits_of(currency or tenant.currency), settings_of(tenant).rounding)


def today_of(tenant: TenantView, now: datetime) -> date:
    return local_day(now, ZoneInfo(tenant.timezone))


def _as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- borrowers and groups -------------------------------------------------------------------------------------------


async def get_borrower(session: AsyncSession, member_id: uuid.UUID, *, lock: bool = False) -> Borrower:
    query = select(Borrower).where(Borrower.member_id == member_id)
    if lock:
        query = query.with_for_update()
    borrower = (await session.execute(query)).scalar_one_or_none()
    if borrower is None:
        raise NotFound("No such borrower.", field="member_id")
    return borrower


async def get_group(session: AsyncSession, group_id: uuid.UUID, *, lock: bool = False) -> Group:
    query = select(Group).where(Group.id == group_id)
    if lock:
        query = query.with_for_update()
    group = (await session.execute(query)).scalar_one_or_none()
    if group is None:
        raise NotFound("No such group.", field="group_id")
    return group


async def group_members(session: AsyncSession, group_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.execute(
        select(GroupMember.member_id).where(GroupMember.group_id == group_id).order_by(GroupMember.joined_at)
    )
    return list(rows.scalars())


async def add_group_member(session: AsyncSession, group: Group, member_id: uuid.UUID, now: datetime) -> None:
    """Join a borrower to a group (locked: two joins racing for the last place cannot both take it)."""
    await get_borrower(session, member_id)
    members = await group_members(session, group.id)
    if member_id in members:
        return
    if len(members) >= group.max_members:
        raise Conflict(f"The group is full ({group.max_members} members).", field="member_id")
    current = (
        await session.execute(select(GroupMember.group_id).where(GroupMember.member_id == member_id))
    ).scalar_one_or_none()
    if current is not None:
        raise Conflict("The borrower is already in another group.", field="member_id")
    session.add(GroupMember(group_id=group.id, member_id=member_id, joined_at=now))
    await session.flush()


async def record_meeting(
    session: AsyncSession, group: Group, held_on: date, present: list[uuid.UUID], now: datetime
) -> tuple[Meeting, list[uuid.UUID]]:
    members = await group_members(session, group.id)
    strangers = [m for m in present if m not in members]
    if strangers:
        raise ValidationFailed(f"Not a member of this group: {strangers[0]}.", field="present")
    exists = (
        await session.execute(select(Meeting.id).where(Meeting.group_id == group.id, Meeting.held_on == held_on))
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"A meeting on {held_on} is already recorded for this group.", field="held_on")
    meeting = Meeting(id=new_id(), group_id=group.id, held_on=held_on, created_at=now)
    session.add(meeting)
    await session.flush()
    for member_id in members:
        session.add(Attendance(meeting_id=meeting.id, member_id=member_id, present=member_id in present))
    await session.flush()
    return meeting, members


# --- products -------------------------------------------------------------------------------------------------------


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> Product:
    product = (await session.execute(select(Product).where(Product.id == product_id))).scalar_one_or_none()
    if product is None:
        raise NotFound("No such product.", field="product_id")
    return product


# --- loans ----------------------------------------------------------------------------------------------------------


async def get_loan(session: AsyncSession, loan_id: uuid.UUID, *, lock: bool = False) -> Loan:
    query = select(Loan).where(Loan.id == loan_id)
    if lock:
        query = query.with_for_update()
    loan = (await session.execute(query)).scalar_one_or_none()
    if loan is None:
        raise NotFound("No such loan.", field="loan_id")
    return loan


def terms_of(loan: Loan, first_due: date, rounding: str) -> rules.Terms:
    return rules.Terms(
        principal=loan.principal,
        annual_rate=loan.annual_rate,
        method=loan.interest_method,  # type: ignore[arg-type]
        frequency=loan.frequency,  # type: ignore[arg-type]
        instalments=loan.instalments,
        first_due=first_due,
        grace=loan.grace,
        fee=loan.instalment_fee,
        digits=digits_of(loan.currency),
        rounding=rounding,
    )


def preview_schedule(loan: Loan, tenant: TenantView, today: date) -> list[rules.Instalment]:
    """The schedule a loan not yet disbursed would have if disbursed today (or on its set first due date)."""
    first_due = loan.first_due_on or rules.first_due_after(loan.disbursed_on or today, loan.frequency)  # type: ignore[arg-type]
    return rules.schedule(terms_of(loan, first_due, settings_of(tenant).rounding))


async def _act(
    session: AsyncSession,
    loan: Loan,
    action: str,
    to_status: str,
    now: datetime,
    actor: str | None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        LoanAction(
            id=new_id(),
            loan_id=loan.id,
            action=action,
            from_status=loan.status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            details=details or {},
            at=now,
        )
    )
    loan.status = to_status
    loan.updated_at = now


def _require(loan: Loan, *statuses: str, action: str) -> None:
    if loan.status not in statuses:
        raise Conflict(f"A loan {loan.status} cannot be {action}; it must be {' or '.join(statuses)}.", field="status")


async def apply_for_loan(
    session: AsyncSession, tenant: TenantView, body: Any, now: datetime, actor: str | None
) -> Loan:
    borrower = await get_borrower(session, body.member_id)
    product = await get_product(session, body.product_id)
    if not product.active:
        raise ValidationFailed("This product is no longer offered.", field="product_id")
    r = rounder_for(tenant, product.currency)
    principal = _as_decimal(body.principal)
    if r(principal) != principal:
        raise ValidationFailed(f"principal has more decimals than {product.currency} allows.", field="principal")
    limit = product.max_principal
    if borrower.next_loan_limit is not None:
        limit = min(limit, max(borrower.next_loan_limit, product.min_principal))
    if not product.min_principal <= principal <= product.max_principal:
        raise ValidationFailed(
            f"principal must be between {product.min_principal} and {product.max_principal}.", field="principal"
        )
    group_id = (
        await session.execute(select(GroupMember.group_id).where(GroupMember.member_id == body.member_id))
    ).scalar_one_or_none()
    loan = Loan(
        id=new_id(),
        member_id=body.member_id,
        product_id=product.id,
        group_id=group_id,
        officer=body.officer or borrower.officer,
        status="applied",
        principal=principal,
        currency=product.currency,
        interest_method=product.interest_method,
        annual_rate=product.annual_rate,
        frequency=product.frequency,
        instalments=body.instalments or product.instalments,
        grace=product.grace,
        instalment_fee=product.instalment_fee,
        purpose=body.purpose,
        applied_on=today_of(tenant, now),
        max_days_past_due=0,
        on_time_streak=0,
        note=(
            None
            if principal <= limit
            else f"above the progressive-lending limit {limit} (next loan after a clean cycle)"
        ),
        created_at=now,
        updated_at=now,
    )
    if loan.grace >= loan.instalments:
        raise ValidationFailed("instalments must exceed the product's grace periods.", field="instalments")
    session.add(loan)
    await session.flush()
    session.add(
        LoanAction(
            id=new_id(), loan_id=loan.id, action="apply", from_status=None, to_status="applied", actor=actor, at=now
        )
    )
    await session.flush()
    return loan


async def monthly_burden(
    session: AsyncSession,
    tenant: TenantView,
    member_id: uuid.UUID,
    today: date,
    r: rules.Rounder,
    *,
    excluding: uuid.UUID,
) -> Decimal:
    """The monthly equivalent of the largest instalment of each of the borrower's open loans."""
    loans = (
        await session.execute(
            select(Loan).where(Loan.member_id == member_id, Loan.status.in_(OPEN_STATUSES), Loan.id != excluding)
        )
    ).scalars()
    total = ZERO
    for other in loans:
        if other.disbursed_on is not None:
            largest = (
                await session.execute(
                    select(func.max(Instalment.principal_due + Instalment.interest_due + Instalment.fee_due)).where(
                        Instalment.loan_id == other.id, Instalment.paid_off_on.is_(None)
                    )
                )
            ).scalar_one_or_none() or ZERO
        else:
            largest = max(i.total for i in preview_schedule(other, tenant, today))
        total += rules.monthly_equivalent(_as_decimal(largest), other.frequency, r)
    return total


async def approve(
    session: AsyncSession, tenant: TenantView, loan: Loan, override_reason: str | None, now: datetime, actor: str | None
) -> Loan:
    """The over-indebtedness check runs here: over the limit, the loan is refused unless an override reason is
    given, which is recorded with the figures."""
    _require(loan, "applied", action="approved")
    settings = settings_of(tenant)
    r = rounder_for(tenant, loan.currency)
    today = today_of(tenant, now)
    borrower = await get_borrower(session, loan.member_id, lock=True)
    this_loan = rules.monthly_equivalent(max(i.total for i in preview_schedule(loan, tenant, today)), loan.frequency, r)
    existing = await monthly_burden(session, tenant, loan.member_id, today, r, excluding=loan.id)
    check = rules.indebtedness(
        r(borrower.household_income_monthly), existing, this_loan, Decimal(str(settings.max_repayment_share)), r
    )
    figures = {
        "monthly_income": str(check.monthly_income),
        "existing_monthly": str(check.existing_monthly),
        "this_loan_monthly": str(check.this_loan_monthly),
        "total_monthly": str(check.total),
        "limit": str(check.limit),
        "share": str(Decimal(str(settings.max_repayment_share))),
        "over": check.over,
    }
    if check.over and not override_reason:
        raise ValidationFailed(
            f"Over-indebted: instalments of {check.total} a month exceed {check.limit} "
            f"({Decimal(str(settings.max_repayment_share))} of a monthly household income of {check.monthly_income}); "
            "give an override_reason to approve anyway.",
            field="override_reason",
        )
    loan.indebtedness = figures
    loan.override_reason = override_reason if check.over else None
    loan.approved_at = now
    await _act(session, loan, "approve", "approved", now, actor, override_reason, figures)
    await session.flush()
    return loan


async def sign(session: AsyncSession, tenant: TenantView, loan: Loan, now: datetime, actor: str | None) -> Loan:
    """Signing needs the borrower's integrity training on record."""
    _require(loan, "approved", action="signed")
    borrower = await get_borrower(session, loan.member_id)
    if borrower.training_on is None or not borrower.trainer:
        raise Conflict(
            "The borrower's integrity training (date and trainer) must be recorded before the contract is signed.",
            field="training",
        )
    loan.signed_at = now
    await _act(session, loan, "sign", "signed", now, actor, None, {"training_on": str(borrower.training_on)})
    await session.flush()
    return loan


async def disburse(
    session: AsyncSession,
    tenant: TenantView,
    loan: Loan,
    disbursed_on: date | None,
    first_due_on: date | None,
    now: datetime,
    actor: str | None,
) -> Loan:
    """Disbursement fixes the schedule (written once, never silently changed) and raises the use-of-funds visit."""
    _require(loan, "signed", action="disbursed")
    today = today_of(tenant, now)
    day = disbursed_on or today
    if day > today:
        raise ValidationFailed("A loan cannot be disbursed in the future.", field="disbursed_on")
    first_due = first_due_on or rules.first_due_after(day, loan.frequency)  # type: ignore[arg-type]
    if first_due <= day:
        raise ValidationFailed("The first instalment falls due after disbursement.", field="first_due_on")
    table = rules.schedule(terms_of(loan, first_due, settings_of(tenant).rounding))
    loan.disbursed_on, loan.first_due_on = day, first_due
    for inst in table:
        session.add(
            Instalment(
                loan_id=loan.id,
                no=inst.no,
                due_on=inst.due_on,
                principal_due=inst.principal,
                interest_due=inst.interest,
                fee_due=inst.fee,
                penalty_due=ZERO,
                principal_paid=ZERO,
                interest_paid=ZERO,
                fee_paid=ZERO,
                penalty_paid=ZERO,
            )
        )
    settings = settings_of(tenant)
    session.add(
        Task(
            id=new_id(),
            occasion_key=f"use_of_funds:{loan.id}",
            loan_id=loan.id,
            member_id=loan.member_id,
            officer=loan.officer,
            kind="use_of_funds",
            reason=f"use-of-funds visit within {settings.use_of_funds_days} days of disbursement",
            due_on=day + timedelta(days=settings.use_of_funds_days),
            state="open",
            created_at=now,
        )
    )
    await _act(session, loan, "disburse", "disbursed", now, actor, None, {"disbursed_on": str(day)})
    await session.flush()
    return loan


async def reject(session: AsyncSession, loan: Loan, reason: str, now: datetime, actor: str | None) -> Loan:
    _require(loan, "applied", "approved", "signed", action="rejected")
    await _act(session, loan, "reject", "rejected", now, actor, reason)
    await session.flush()
    return loan


async def write_off(
    session: AsyncSession, tenant: TenantView, loan: Loan, reason: str, now: datetime, actor: str | None
) -> Loan:
    _require(loan, "disbursed", "active", action="written off")
    outstanding = await outstanding_principal(session, loan.id)
    loan.written_off_on = today_of(tenant, now)
    await _act(session, loan, "write_off", "written_off", now, actor, reason, {"principal": str(outstanding)})
    await session.flush()
    return loan


async def reschedule(
    session: AsyncSession,
    tenant: TenantView,
    loan: Loan,
    instalments: int,
    first_due_on: date,
    reason: str,
    now: datetime,
    actor: str | None,
) -> Loan:
    """An explicit, recorded reschedule: the instalments nothing was paid into are replaced by a new schedule of
    the principal they still owe (the loan's method and rate), interest and fees owed so far kept where they are."""
    _require(loan, "disbursed", "active", action="rescheduled")
    rows = list(
        (await session.execute(select(Instalment).where(Instalment.loan_id == loan.id).order_by(Instalment.no)))
        .scalars()
        .all()
    )
    untouched = [
        i
        for i in rows
        if i.paid_off_on is None and i.principal_paid + i.interest_paid + i.fee_paid + i.penalty_paid == 0
    ]
    kept = [i for i in rows if i not in untouched]
    if not untouched:
        raise Conflict("Every instalment has payments in it: nothing to reschedule.", field="instalments")
    if kept and first_due_on <= max(i.due_on for i in kept):
        raise ValidationFailed("The new schedule starts after the instalments kept.", field="first_due_on")
    if first_due_on <= today_of(tenant, now):
        raise ValidationFailed("The new schedule starts in the future.", field="first_due_on")
    principal = sum((i.principal_due for i in untouched), ZERO)
    before = [_instalment_dict(i) for i in rows]
    start = len(kept)
    await session.execute(delete(Instalment).where(Instalment.loan_id == loan.id, Instalment.no > start))
    terms = terms_of(loan, first_due_on, settings_of(tenant).rounding)
    terms = rules.Terms(**{**terms.__dict__, "principal": principal, "instalments": instalments, "grace": 0})
    if principal <= 0:
        raise Conflict("No principal left to reschedule.", field="instalments")
    table = rules.schedule(terms)
    for inst in table:
        session.add(
            Instalment(
                loan_id=loan.id,
                no=start + inst.no,
                due_on=inst.due_on,
                principal_due=inst.principal,
                interest_due=inst.interest,
                fee_due=inst.fee,
                penalty_due=ZERO,
                principal_paid=ZERO,
                interest_paid=ZERO,
                fee_paid=ZERO,
                penalty_paid=ZERO,
            )
        )
    await session.flush()
    after = [
        _instalment_dict(i)
        for i in (
            await session.execute(select(Instalment).where(Instalment.loan_id == loan.id).order_by(Instalment.no))
        ).scalars()
    ]
    await _act(session, loan, "reschedule", loan.status, now, actor, reason, {"before": before, "after": after})
    await session.flush()
    return loan


def _instalment_dict(i: Instalment) -> dict[str, Any]:
    return {
        "no": i.no,
        "due_on": i.due_on.isoformat(),
        "principal": str(i.principal_due),
        "interest": str(i.interest_due),
        "fee": str(i.fee_due),
        "penalty": str(i.penalty_due),
    }


async def instalments_of(session: AsyncSession, loan_id: uuid.UUID) -> list[Instalment]:
    rows = await session.execute(select(Instalment).where(Instalment.loan_id == loan_id).order_by(Instalment.no))
    return list(rows.scalars())


async def outstanding_principal(session: AsyncSession, loan_id: uuid.UUID) -> Decimal:
    value = (
        await session.execute(
            select(func.sum(Instalment.principal_due - Instalment.principal_paid)).where(Instalment.loan_id == loan_id)
        )
    ).scalar_one_or_none()
    return _as_decimal(value or 0)


def owed_of(rows: list[Instalment]) -> list[rules.Owed]:
    return [
        rules.Owed(
            i.no,
            i.due_on,
            penalty=i.penalty_due - i.penalty_paid,
            fee=i.fee_due - i.fee_paid,
            interest=i.interest_due - i.interest_paid,
            principal=i.principal_due - i.principal_paid,
        )
        for i in rows
    ]


def loan_days_past_due(rows: list[Instalment], as_of: date) -> int:
    return rules.days_past_due(as_of, [(i.due_on, i.paid_off_on) for i in rows])


# --- repayments -----------------------------------------------------------------------------------------------------


class RepaymentAttributes(msgspec.Struct, forbid_unknown_fields=True):
    """``microfinance.repayment``: the loan paid into (the amount and currency are the event's)."""

    loan_id: uuid.UUID
    #: Where the money came in (cash at the group meeting, bank transfer, mobile...), for the record.
    channel: str | None = None


@dataclass
class Preview:
    """What a repayment would do: allocations, the instalments it pays off (on time or not), the streak after."""

    allocations: list[rules.Allocation]
    paid_off: list[tuple[int, bool]]
    streak: int
    left: Decimal


def _earlier_amount(ctx: EventContext, loan_id: uuid.UUID) -> Decimal:
    """Repayments of the same loan earlier in this batch, not yet written (they are applied first)."""
    total = ZERO
    for earlier in ctx.earlier_results:
        event = earlier.event
        if event.type == REPAYMENT and earlier.status == "awarded" and event.attributes.loan_id == loan_id:
            total += event.amount or ZERO
    return total


def simulate(rows: list[Instalment], amount: Decimal, paid_on: date, order: Sequence[str], streak: int) -> Preview:
    owed = owed_of(rows)
    allocations, left = rules.allocate(amount, owed, order)
    by_no = {o.no: o for o in owed}
    paid_off: list[tuple[int, bool]] = []
    for a in allocations:
        o = by_no[a.no]
        rest = (
            o.fee
            + o.interest
            + o.principal
            - sum((a.parts.get(p, ZERO) for p in ("fee", "interest", "principal")), ZERO)
        )
        if rest == 0 and o.fee + o.interest + o.principal > 0:
            on_time = paid_on <= o.due_on
            paid_off.append((a.no, on_time))
            streak = streak + 1 if on_time else 0
    return Preview(allocations, paid_off, streak, left)


def _paid_on(ctx: EventContext) -> date:
    return today_of(ctx.tenant, ctx.event.occurred_at)


async def validate_repayment(ctx: EventContext) -> list[FieldIssue]:
    attrs: RepaymentAttributes = ctx.event.attributes
    loan = (
        await ctx.session.execute(select(Loan).where(Loan.id == attrs.loan_id).with_for_update())
    ).scalar_one_or_none()
    if loan is None or loan.member_id != ctx.member.id:
        return [FieldIssue("attributes.loan_id", "No such loan for this borrower.")]
    if loan.status not in ("disbursed", "active"):
        return [FieldIssue("attributes.loan_id", f"The loan is {loan.status}: it takes no repayment.")]
    amount = ctx.event.amount
    if amount is None or amount <= 0:
        return [FieldIssue("amount", "A repayment has a positive amount.")]
    if ctx.event.currency and ctx.event.currency != loan.currency:
        return [FieldIssue("currency", f"The loan is in {loan.currency}.")]
    r = rounder_for(ctx.tenant, loan.currency)
    if r(amount) != amount:
        return [FieldIssue("amount", f"{loan.currency} has {digits_of(loan.currency)} decimals.")]
    if loan.disbursed_on and _paid_on(ctx) < loan.disbursed_on:
        return [FieldIssue("occurred_at", "A repayment cannot come before the disbursement.")]
    rows = await instalments_of(ctx.session, loan.id)
    owed = sum((o.total for o in owed_of(rows)), ZERO) - _earlier_amount(ctx, loan.id)
    if amount > owed:
        return [FieldIssue("amount", f"More than the loan owes ({owed}).")]
    return []


async def repayment_awards(ctx: AwardsContext) -> list[Award]:
    """Points per instalment paid off on time, and a streak bonus every ``streak_length`` in a row: awarded with the
    event, so reversing the repayment takes them back."""
    settings = settings_of(ctx.tenant)
    attrs: RepaymentAttributes = ctx.event.attributes
    loan = await get_loan(ctx.session, attrs.loan_id)
    rows = await instalments_of(ctx.session, loan.id)
    order = list(settings.allocation_order)
    paid_on = _paid_on(ctx)
    streak = loan.on_time_streak
    earlier = _earlier_amount(ctx, loan.id)
    if earlier:
        # the batch's earlier repayments of this loan, applied to copies (the rows themselves change only when each
        # event is recorded)
        rows = [_copy(i) for i in rows]
        first = simulate(rows, earlier, paid_on, order, streak)
        _apply(rows, first.allocations, paid_on)
        streak = first.streak
    preview = simulate(rows, ctx.event.amount or ZERO, paid_on, order, streak)
    awards: list[Award] = []
    for no, on_time in preview.paid_off:
        streak = streak + 1 if on_time else 0
        if on_time and settings.points_per_on_time_instalment:
            awards.append(
                Award(
                    settings.points_per_on_time_instalment,
                    f"instalment {no} paid on time",
                    "microfinance.on_time",
                    detail={"loan_id": str(loan.id), "instalment": no},
                )
            )
        if on_time and settings.streak_bonus and streak % settings.streak_length == 0:
            awards.append(
                Award(
                    settings.streak_bonus,
                    f"{streak} instalments on time in a row",
                    "microfinance.streak",
                    detail={"loan_id": str(loan.id), "streak": streak},
                )
            )
    return awards


def _copy(i: Instalment) -> Instalment:
    """A transient copy of an instalment (never added to the session)."""
    return Instalment(
        loan_id=i.loan_id,
        no=i.no,
        due_on=i.due_on,
        principal_due=i.principal_due,
        interest_due=i.interest_due,
        fee_due=i.fee_due,
        penalty_due=i.penalty_due,
        principal_paid=i.principal_paid,
        interest_paid=i.interest_paid,
        fee_paid=i.fee_paid,
        penalty_paid=i.penalty_paid,
        paid_off_on=i.paid_off_on,
    )


def _apply(rows: list[Instalment], allocations: list[rules.Allocation], paid_on: date, sign: int = 1) -> None:
    by_no = {i.no: i for i in rows}
    for a in allocations:
        inst = by_no[a.no]
        for part, value in a.parts.items():
            column = f"{part}_paid"
            setattr(inst, column, getattr(inst, column) + sign * value)
        done = inst.principal_paid == inst.principal_due and inst.interest_paid == inst.interest_due
        done = done and inst.fee_paid == inst.fee_due
        if sign > 0 and done and inst.paid_off_on is None:
            inst.paid_off_on = paid_on


def _streak(rows: list[Instalment]) -> int:
    streak = 0
    for inst in rows:
        if inst.paid_off_on is None:
            break
        streak = streak + 1 if inst.paid_off_on <= inst.due_on else 0
    return streak


async def record_repayment(ctx: ProcessedContext) -> None:
    """Allocate the repayment (the loan is locked since validation), record it, close the loan when nothing is
    owed."""
    if ctx.status != "awarded":
        return
    settings = settings_of(ctx.tenant)
    attrs: RepaymentAttributes = ctx.event.attributes
    loan = await get_loan(ctx.session, attrs.loan_id, lock=True)
    rows = await instalments_of(ctx.session, loan.id)
    paid_on = _paid_on(ctx)
    amount = ctx.event.amount or ZERO
    preview = simulate(rows, amount, paid_on, list(settings.allocation_order), loan.on_time_streak)
    if preview.left > 0:
        raise ValidationFailed("More than the loan owes.", field="amount")
    repayment = Repayment(
        id=new_id(),
        event_id=ctx.event.id,
        source_event_id=ctx.event.event_id,
        loan_id=loan.id,
        member_id=loan.member_id,
        paid_at=ctx.event.occurred_at,
        paid_on=paid_on,
        amount=amount,
    )
    ctx.session.add(repayment)
    await ctx.session.flush()
    for a in preview.allocations:
        ctx.session.add(
            Allocation(
                repayment_id=repayment.id,
                instalment_no=a.no,
                loan_id=loan.id,
                paid_on=paid_on,
                penalty=a.parts.get("penalty", ZERO),
                fee=a.parts.get("fee", ZERO),
                interest=a.parts.get("interest", ZERO),
                principal=a.parts.get("principal", ZERO),
                reversed=False,
            )
        )
    _apply(rows, preview.allocations, paid_on)
    loan.on_time_streak = _streak(rows)
    dpd = loan_days_past_due(rows, paid_on)
    loan.max_days_past_due = max(loan.max_days_past_due, dpd)
    if loan.status == "disbursed":
        await _act(ctx.session, loan, "first_repayment", "active", ctx.now, None)
    if all(i.paid_off_on is not None and i.penalty_paid == i.penalty_due for i in rows):
        await _close(ctx, loan, rows, paid_on)
    loan.updated_at = ctx.now
    await ctx.session.flush()


async def _close(ctx: HookContext, loan: Loan, rows: list[Instalment], paid_on: date) -> None:
    """Fully repaid: closed; a perfect record (every instalment on time) makes the loan eligible for the interest
    rebate; a clean record (never more than ``clean_max_days_past_due``) raises the next-cycle limit, credits the
    clean-cycle bonus and puts the borrower in the credit-household tier."""
    settings = settings_of(ctx.tenant)
    r = rounder_for(ctx.tenant, loan.currency)
    loan.closed_on = paid_on
    loan.perfect = all(i.paid_off_on is not None and i.paid_off_on <= i.due_on for i in rows)
    total_interest = sum((i.interest_due for i in rows), ZERO)
    loan.rebate_amount = (
        rules.rebate(total_interest, loan.annual_rate, Decimal(str(settings.interest_rebate_points)), r)
        if loan.perfect
        else None
    )
    await _act(ctx.session, loan, "close", "closed", ctx.now, None, None, {"perfect": loan.perfect})
    clean = loan.max_days_past_due <= settings.clean_max_days_past_due
    if not clean:
        return
    borrower = await get_borrower(ctx.session, loan.member_id, lock=True)
    product = await get_product(ctx.session, loan.product_id)
    borrower.clean_cycles += 1
    borrower.next_loan_limit = rules.next_cycle_limit(
        loan.principal, settings.next_cycle_increase_percent, product.max_principal, r
    )
    borrower.updated_at = ctx.now
    if settings.clean_cycle_bonus:
        await ctx.services.credit_points(
            loan.member_id,
            settings.clean_cycle_bonus,
            plugin=PLUGIN,
            reason="loan repaid with a clean record",
            reference=f"clean:{loan.id}",
            details={"loan_id": str(loan.id)},
        )
    tier = settings.credit_household_tier
    if tier and tier in await ctx.services.tier_codes():
        await ctx.services.assign_tier(loan.member_id, tier, until=None, reason="clean repayment record")


async def reverse_repayment(ctx: ReversalContext) -> None:
    """A reversed repayment restores exactly what it paid into each instalment; a loan it had closed is open
    again (its clean-cycle bonus taken back)."""
    if ctx.event.type != REPAYMENT:
        return
    if ctx.reversal.reversed_fraction < 1:
        raise Conflict("A repayment is reversed in full, not in part.", field="fraction")
    repayment = (
        await ctx.session.execute(select(Repayment).where(Repayment.event_id == ctx.event.id).with_for_update())
    ).scalar_one_or_none()
    if repayment is None or repayment.reversed_at is not None:
        return
    loan = await get_loan(ctx.session, repayment.loan_id, lock=True)
    if loan.status == "written_off":
        raise Conflict("The loan was written off: its repayments stay.", field="id")
    rows = await instalments_of(ctx.session, loan.id)
    allocations = list(
        (await ctx.session.execute(select(Allocation).where(Allocation.repayment_id == repayment.id))).scalars()
    )
    back = [
        rules.Allocation(
            a.instalment_no,
            {"penalty": a.penalty, "fee": a.fee, "interest": a.interest, "principal": a.principal},
        )
        for a in allocations
    ]
    _apply(rows, back, repayment.paid_on, sign=-1)
    for a in allocations:
        a.reversed = True
    repayment.reversed_at = ctx.now
    await ctx.session.flush()
    # An instalment paid off is so from the day its remaining payments covered it, or not at all.
    by_no = {i.no: i for i in rows}
    touched = {a.instalment_no for a in allocations}
    for no in touched:
        inst = by_no[no]
        if (
            inst.principal_paid + inst.interest_paid + inst.fee_paid
            < inst.principal_due + inst.interest_due + inst.fee_due
        ):
            inst.paid_off_on = None
        else:
            inst.paid_off_on = await _paid_off_day(ctx.session, loan.id, inst)
    loan.on_time_streak = _streak(rows)
    if loan.status == "closed":
        await _reopen(ctx, loan)
    loan.updated_at = ctx.now
    await ctx.session.flush()


async def _paid_off_day(session: AsyncSession, loan_id: uuid.UUID, inst: Instalment) -> date | None:
    rows = await session.execute(
        select(Allocation.paid_on, Allocation.fee + Allocation.interest + Allocation.principal)
        .where(Allocation.loan_id == loan_id, Allocation.instalment_no == inst.no, Allocation.reversed.is_(False))
        .order_by(Allocation.paid_on)
    )
    need, paid = inst.principal_due + inst.interest_due + inst.fee_due, ZERO
    for day, value in rows:
        paid += _as_decimal(value)
        if paid >= need:
            return day
    return None


async def _reopen(ctx: HookContext, loan: Loan) -> None:
    settings = settings_of(ctx.tenant)
    was_clean = loan.max_days_past_due <= settings.clean_max_days_past_due
    loan.closed_on, loan.perfect, loan.rebate_amount = None, None, None
    await _act(ctx.session, loan, "reopen", "active", ctx.now, None, "a repayment that closed it was reversed")
    if was_clean:
        borrower = await get_borrower(ctx.session, loan.member_id, lock=True)
        borrower.clean_cycles = max(0, borrower.clean_cycles - 1)
        if borrower.clean_cycles == 0:
            borrower.next_loan_limit = None
        if settings.clean_cycle_bonus:
            # in a savepoint: a borrower who already spent the bonus keeps the reversal going (a debit never
            # overdraws); what could not be taken back is recorded on the loan's actions
            try:
                async with ctx.session.begin_nested():
                    await ctx.services.debit_points(
                        loan.member_id,
                        settings.clean_cycle_bonus,
                        plugin=PLUGIN,
                        reason="clean-record bonus taken back: the closing repayment was reversed",
                        reference=f"clean-reversed:{loan.id}:{new_id()}",
                    )
            except FealtyError as exc:
                await _act(
                    ctx.session,
                    loan,
                    "bonus_kept",
                    loan.status,
                    ctx.now,
                    None,
                    "the clean-record bonus was already spent",
                    {"points": settings.clean_cycle_bonus, "problem": str(exc)},
                )


# --- defaults -------------------------------------------------------------------------------------------------------


def default_tiers(settings: MicrofinanceSettings) -> list[dict[str, Any]]:
    """A member tier and the credit-household tier (信用户): reached only through the plugin's ``assign_tier`` when
    a loan closes with a clean record (its criterion names a credit nothing else gives)."""
    assert settings.credit_household_tier is not None
    return [
        {"code": "member", "name": "Member 会员", "rank": 1, "qualification": {}},
        {
            "code": settings.credit_household_tier,
            "name": "Credit household 信用户",
            "rank": 2,
            "qualification": {
                "window": {"kind": "lifetime"},
                "mode": "any",
                "criteria": [{"metric": "microfinance_clean_cycles", "min": "1"}],
            },
        },
    ]


async def seed_defaults(ctx: HookContext) -> None:
    settings = settings_of(ctx.tenant)
    if not settings.seed_defaults or settings.credit_household_tier is None:
        return
    if not await ctx.services.tier_codes():
        for body in default_tiers(settings):
            await ctx.services.create_tier(body)
