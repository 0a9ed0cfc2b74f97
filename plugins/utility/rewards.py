"""Rewards a utility gives through events: a bill paid on time, paperless and autopay enrolment credits (clawed back
when cancelled within a year), interval meter reads (the peak-time baseline's data)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy import select, update

from core import (
    Award,
    AwardsContext,
    EventContext,
    EventType,
    FieldIssue,
    ProcessedContext,
    Screening,
    table_of,
)
from plugins.utility import rules
from plugins.utility.models import UtilityAccount, UtilityBill, UtilityEnrolment, UtilityMeterRead
from plugins.utility.outages import _insert, settings_of

Number = Annotated[str, Meta(min_length=1, max_length=40)]
BILL_PAID = "utility.bill_paid"
ENROLMENTS = {
    "utility.paperless_enrolled": ("paperless", True),
    "utility.autopay_enrolled": ("autopay", True),
    "utility.paperless_cancelled": ("paperless", False),
    "utility.autopay_cancelled": ("autopay", False),
}
METER_READS = "utility.meter_reads"
TYPES = {BILL_PAID, METER_READS, *ENROLMENTS}

accounts = table_of(UtilityAccount)
bills = table_of(UtilityBill)
enrolments = table_of(UtilityEnrolment)
reads = table_of(UtilityMeterRead)


class BillPaid(msgspec.Struct, forbid_unknown_fields=True):
    """A bill paid: the amount in the event's ``amount``/``currency``."""

    account_number: Number
    bill_id: Annotated[str, Meta(min_length=1, max_length=64)]
    due_date: date
    paid_date: date


class AccountOnly(msgspec.Struct, forbid_unknown_fields=True):
    account_number: Number


class Read(msgspec.Struct, forbid_unknown_fields=True):
    start: datetime
    #: kWh as a decimal string or number (at most 3 decimals).
    kwh: Decimal


class MeterReads(msgspec.Struct, forbid_unknown_fields=True):
    """Interval reads of an account's meter (``interval_minutes`` each, 30 by default); a read sent again
    replaces the earlier one."""

    account_number: Number
    reads: Annotated[list[Read], Meta(min_length=1, max_length=2000)]
    interval_minutes: Annotated[int, Meta(ge=1, le=1440)] = 30


EVENT_TYPES = [
    EventType(
        BILL_PAID,
        "A bill paid (amount and currency): points when paid by its due date, none when late.",
        attributes=BillPaid,
        requires_amount=True,
    ),
    EventType(
        "utility.paperless_enrolled",
        "The account went paperless: a one-time credit (once per account).",
        attributes=AccountOnly,
    ),
    EventType(
        "utility.autopay_enrolled",
        "The account pays by autopay: a one-time credit (once per account).",
        attributes=AccountOnly,
    ),
    EventType(
        "utility.paperless_cancelled",
        "Paperless billing cancelled: its credit is clawed back within the claw-back window.",
        attributes=AccountOnly,
        counts_as_activity=False,
    ),
    EventType(
        "utility.autopay_cancelled",
        "Autopay cancelled: its credit is clawed back within the claw-back window.",
        attributes=AccountOnly,
        counts_as_activity=False,
    ),
    EventType(
        METER_READS,
        "Interval meter reads (kWh): the data peak-time rebates are computed from.",
        attributes=MeterReads,
        counts_as_activity=False,
    ),
]


async def _account(ctx: EventContext) -> Any:
    number = ctx.event.attributes.account_number
    query = select(accounts).where(accounts.c.tenant_id == ctx.tenant.id, accounts.c.account_number == number)
    return (await ctx.session.execute(query)).first()


async def validate(ctx: EventContext) -> list[FieldIssue]:
    if ctx.event.type not in TYPES:
        return []
    account = await _account(ctx)
    if account is None or account.member_id != ctx.member.id:
        return [FieldIssue("attributes.account_number", "no such account of this member")]
    issues: list[FieldIssue] = []
    if ctx.event.type == BILL_PAID and ctx.event.currency and ctx.event.currency != ctx.tenant.currency:
        issues.append(FieldIssue("currency", f"bills are in {ctx.tenant.currency}"))
    if ctx.event.type == METER_READS:
        for i, read in enumerate(ctx.event.attributes.reads):
            if not read.kwh.is_finite() or read.kwh < 0 or read.kwh > 100_000 or read.kwh != round(read.kwh, 3):
                issues.append(FieldIssue(f"attributes.reads[{i}].kwh", "kWh from 0 to 100000, at most 3 decimals"))
            if read.start.tzinfo is None:
                issues.append(FieldIssue(f"attributes.reads[{i}].start", "a time with its offset"))
    return issues


async def screen(ctx: EventContext) -> Screening | None:
    """A bill already paid earns nothing again (whatever the event's id)."""
    if ctx.event.type != BILL_PAID:
        return None
    account = await _account(ctx)
    query = select(bills.c.bill_id).where(
        bills.c.tenant_id == ctx.tenant.id,
        bills.c.account_id == account.id,
        bills.c.bill_id == ctx.event.attributes.bill_id,
    )
    if (await ctx.session.execute(query)).first() is not None:
        return Screening("reject", "this bill was already paid", "utility.bill_already_paid")
    return None


async def compute_awards(ctx: AwardsContext) -> list[Award] | None:
    if ctx.event.type == BILL_PAID:
        settings = settings_of(ctx.tenant)
        a = ctx.event.attributes
        if a.paid_date <= a.due_date:
            return [Award(settings.on_time_points, "bill paid on time", "utility.on_time", base=True)]
        late = (a.paid_date - a.due_date).days
        return [Award(0, f"bill paid {late} day(s) after its due date", "utility.late", detail={"days_late": late})]
    if ctx.event.type in ENROLMENTS and ENROLMENTS[ctx.event.type][1]:
        kind = ENROLMENTS[ctx.event.type][0]
        settings = settings_of(ctx.tenant)
        account = await _account(ctx)
        query = select(enrolments.c.kind).where(
            enrolments.c.tenant_id == ctx.tenant.id, enrolments.c.account_id == account.id, enrolments.c.kind == kind
        )
        if (await ctx.session.execute(query)).first() is not None:
            return [Award(0, f"{kind} was credited before for this account", f"utility.{kind}")]
        credit = settings.paperless_credit if kind == "paperless" else settings.autopay_credit
        return [
            Award(
                rules.points_for(credit, settings),
                f"{kind} enrolment credit",
                f"utility.{kind}",
                detail={"credit": str(credit), "currency": ctx.tenant.currency},
            )
        ]
    return None


def qualifying_credits(ctx: EventContext) -> dict[str, Decimal] | None:
    if ctx.event.type == BILL_PAID and ctx.event.attributes.paid_date <= ctx.event.attributes.due_date:
        return {"on_time_payments": Decimal(1)}
    return None


async def record(ctx: ProcessedContext) -> None:
    """Keep the bill, the enrolment (and claw back a credit cancelled within the window), the reads."""
    if ctx.event.type not in TYPES or ctx.status != "awarded":
        return
    account = await _account(ctx)
    event = ctx.event
    if event.type == BILL_PAID:
        a = event.attributes
        await ctx.session.execute(
            _insert(ctx.session, bills)
            .values(
                tenant_id=ctx.tenant.id,
                account_id=account.id,
                bill_id=a.bill_id,
                due_date=a.due_date,
                paid_date=a.paid_date,
                amount=event.amount,
                on_time=a.paid_date <= a.due_date,
                event_id=event.event_id,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "account_id", "bill_id"])
        )
    elif event.type in ENROLMENTS:
        kind, enrolled = ENROLMENTS[event.type]
        await ctx.session.execute(
            update(accounts)
            .where(accounts.c.tenant_id == ctx.tenant.id, accounts.c.id == account.id)
            .values({kind: enrolled, "updated_at": ctx.now})
        )
        if enrolled:
            await ctx.session.execute(
                _insert(ctx.session, enrolments)
                .values(
                    tenant_id=ctx.tenant.id,
                    account_id=account.id,
                    kind=kind,
                    event_id=event.event_id,
                    enrolled_at=event.occurred_at,
                    cancelled_at=None,
                    clawed_back=False,
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "account_id", "kind"])
            )
        else:
            await _claw_back(ctx, account.id, kind)
    else:
        await _store_reads(ctx, account.id)


async def _claw_back(ctx: ProcessedContext, account_id: Any, kind: str) -> None:
    """A cancellation within ``clawback_months`` of the enrolment takes its credit back (the enrolment event is
    reversed through core, once: the row is marked under its lock)."""
    settings = settings_of(ctx.tenant)
    e = enrolments
    row = (
        await ctx.session.execute(
            select(e)
            .where(e.c.tenant_id == ctx.tenant.id, e.c.account_id == account_id, e.c.kind == kind)
            .with_for_update()
        )
    ).first()
    if row is None or row.clawed_back or row.cancelled_at is not None:
        return
    within = rules.within_months(row.enrolled_at, ctx.event.occurred_at, settings.clawback_months)
    await ctx.session.execute(
        update(e)
        .where(e.c.tenant_id == ctx.tenant.id, e.c.account_id == account_id, e.c.kind == kind)
        .values(cancelled_at=ctx.event.occurred_at, clawed_back=within)
    )
    if within and ctx.reverse_event is not None:
        await ctx.reverse_event(row.event_id, Decimal(1), f"{kind} cancelled within {settings.clawback_months} months")


async def _store_reads(ctx: ProcessedContext, account_id: Any) -> None:
    a = ctx.event.attributes
    rows = [
        {
            "tenant_id": ctx.tenant.id,
            "account_id": account_id,
            "starts_at": r.start,
            "minutes": a.interval_minutes,
            "kwh": r.kwh,
        }
        for r in a.reads
    ]
    statement = _insert(ctx.session, reads)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "account_id", "starts_at"],
        set_={"kwh": statement.excluded.kwh, "minutes": statement.excluded.minutes},
    )
    await ctx.session.execute(statement, rows)
