"""Credit follow-ups: visits and their forms, the officer's tasks, the nightly follow-up and arrears job (set-based
SQL, one statement per rule), repayment reminders and arrears notices through the care engine, and fair collection."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    CareAsk,
    CareProtectionContext,
    Defer,
    JobContext,
    NotFound,
    Suppress,
    TenantView,
    local_instant,
    new_id,
    next_in_window,
)
from plugins.microfinance import rules
from plugins.microfinance.models import Bereavement, Instalment, Loan, Product, Task, Visit
from plugins.microfinance.reports import date_param, days_between
from plugins.microfinance.service import (
    ARREARS_TRIGGER,
    COLLECTION_TRIGGERS,
    PLUGIN,
    REMINDER_TRIGGER,
    digits_of,
    get_loan,
    settings_of,
    today_of,
)

VISIT_TASKS = ("use_of_funds", "monthly_visit", "overdue_visit")
LIVE = "('disbursed', 'active')"


def _new_id_sql(dialect: str) -> str:
    return "gen_random_uuid()" if dialect == "postgresql" else "lower(hex(randomblob(16)))"


def _add_days(expr: str, days: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"({expr} + CAST({days} AS INTEGER))"
    return f"date({expr}, '+' || ({days}) || ' days')"


def _text_of(expr: str, dialect: str) -> str:
    return f"CAST({expr} AS TEXT)"


# --- visits and tasks -----------------------------------------------------------------------------------------------


async def record_visit(session: AsyncSession, tenant: TenantView, body: Any, now: datetime) -> Visit:
    """A visit closes the loan's open visit tasks (use of funds, monthly, overdue)."""
    loan = await get_loan(session, body.loan_id)
    if loan.disbursed_on is None:
        raise NotFound("No disbursed loan with this id.", field="loan_id")
    visit = Visit(
        id=new_id(),
        loan_id=loan.id,
        member_id=loan.member_id,
        kind=body.kind,
        officer=body.officer,
        visited_on=body.visited_on,
        place=body.place,
        use_of_funds=body.use_of_funds,
        business_state=body.business_state,
        needs=body.needs,
        feedback=body.feedback,
        signature_ref=body.signature_ref,
        created_at=now,
    )
    session.add(visit)
    await session.flush()
    await session.execute(
        update(Task)
        .where(Task.loan_id == loan.id, Task.state == "open", Task.kind.in_(VISIT_TASKS))
        .values(state="done", closed_at=now, visit_id=visit.id)
    )
    return visit


async def close_task(session: AsyncSession, task_id: uuid.UUID, state: str, note: str | None, now: datetime) -> Task:
    task = (await session.execute(select(Task).where(Task.id == task_id).with_for_update())).scalar_one_or_none()
    if task is None:
        raise NotFound("No such follow-up task.", field="task_id")
    if task.state != "open":
        from core import Conflict

        raise Conflict(f"The task is already {task.state}.", field="state")
    task.state, task.note, task.closed_at = state, note, now
    await session.flush()
    return task


# --- the nightly job ------------------------------------------------------------------------------------------------


def _task_insert(dialect: str, select_sql: str, with_sql: str = "") -> str:
    return f"""
        {with_sql}
        INSERT INTO microfinance_tasks
            (tenant_id, id, occasion_key, loan_id, member_id, officer, kind, reason, due_on, state, created_at)
        {select_sql}
        ON CONFLICT (tenant_id, occasion_key) DO NOTHING
    """


def nightly_statements(dialect: str) -> list[tuple[str, str]]:
    """The job's statements, each set-based over the whole portfolio: (name, SQL)."""
    today = date_param("today", dialect)
    task_due = _add_days(today, ":task_days", dialect)
    new = _new_id_sql(dialect)
    tenant = ":tenant"
    lid = _text_of("l.id", dialect)
    return [
        (
            "activate",
            f"""UPDATE microfinance_loans SET status = 'active', updated_at = :now
                WHERE tenant_id = {tenant} AND status = 'disbursed' AND first_due_on <= {today}""",
        ),
        (
            "max_days_past_due",
            f"""UPDATE microfinance_loans SET max_days_past_due = late.dpd
                FROM (SELECT i.loan_id, {days_between(today, "MIN(i.due_on)", dialect)} AS dpd
                      FROM microfinance_instalments i
                      WHERE i.tenant_id = {tenant} AND i.due_on < {today} AND i.paid_off_on IS NULL
                      GROUP BY i.loan_id) late
                WHERE microfinance_loans.tenant_id = {tenant} AND microfinance_loans.id = late.loan_id
                  AND microfinance_loans.status IN {LIVE} AND late.dpd > microfinance_loans.max_days_past_due""",
        ),
        (
            "late_instalments",
            _task_insert(
                dialect,
                f"""SELECT {tenant}, {new}, 'late:' || {lid} || ':' || i.no, l.id, l.member_id, l.officer,
                       CASE WHEN i.principal_paid + i.interest_paid + i.fee_paid > 0
                            THEN 'partial_payment' ELSE 'late_instalment' END,
                       CASE WHEN i.principal_paid + i.interest_paid + i.fee_paid > 0
                            THEN 'instalment ' || i.no || ' due ' || {_text_of("i.due_on", dialect)} || ' partly paid'
                            ELSE 'instalment ' || i.no || ' due ' || {_text_of("i.due_on", dialect)} || ' unpaid' END,
                       {task_due}, 'open', :now
                    FROM microfinance_instalments i
                    JOIN microfinance_loans l ON l.tenant_id = i.tenant_id AND l.id = i.loan_id
                    WHERE i.tenant_id = {tenant} AND i.due_on < {today} AND i.due_on >= :since
                      AND i.paid_off_on IS NULL AND l.status IN {LIVE}""",
            ),
        ),
        (
            "monthly_visits",
            _task_insert(
                dialect,
                f"""SELECT {tenant}, {new}, 'visit:' || {lid} || ':' || {_text_of(_add_days("v.last_on", ":every", dialect), dialect)},
                       l.id, l.member_id, l.officer, 'monthly_visit',
                       'monthly follow-up visit (last on ' || {_text_of("v.last_on", dialect)} || ')',
                       {_add_days("v.last_on", ":every", dialect)}, 'open', :now
                    FROM (SELECT loan_id, MAX(visited_on) AS last_on FROM microfinance_visits
                          WHERE tenant_id = {tenant} GROUP BY loan_id) v
                    JOIN microfinance_loans l ON l.tenant_id = {tenant} AND l.id = v.loan_id
                    WHERE l.status IN {LIVE}
                      AND {_add_days("v.last_on", ":every", dialect)} <= {_add_days(today, ":lead", dialect)}""",
            ),
        ),
        (
            "overdue_visits",
            _task_insert(
                dialect,
                f"""SELECT {tenant}, {new}, 'overdue:' || {_text_of("t.id", dialect)}, t.loan_id, t.member_id, t.officer,
                       'overdue_visit',
                       'visit overdue since ' || {_text_of("t.due_on", dialect)} || ' (' || t.kind || ')',
                       {task_due}, 'open', :now
                    FROM microfinance_tasks t
                    WHERE t.tenant_id = {tenant} AND t.state = 'open'
                      AND t.kind IN ('use_of_funds', 'monthly_visit') AND t.due_on < {today}""",
            ),
        ),
        (
            "group_arrears",
            _task_insert(
                dialect,
                f"""SELECT {tenant}, {new}, 'group:' || {lid} || ':' || :month, l.id, l.member_id, l.officer,
                       'group_arrears', 'a member of the group is in arrears', {task_due}, 'open', :now
                    FROM microfinance_loans l
                    WHERE l.tenant_id = {tenant} AND l.status IN {LIVE} AND l.group_id IS NOT NULL
                      AND EXISTS (
                        SELECT 1 FROM microfinance_loans o
                        JOIN microfinance_instalments i ON i.tenant_id = o.tenant_id AND i.loan_id = o.id
                        WHERE o.tenant_id = {tenant} AND o.group_id = l.group_id AND o.member_id <> l.member_id
                          AND o.status IN {LIVE} AND i.due_on < {today} AND i.paid_off_on IS NULL)""",
            ),
        ),
        (
            "attendance",
            _task_insert(
                dialect,
                f"""SELECT {tenant}, {new}, 'attendance:' || {_text_of("s.member_id", dialect)} || ':' || :month,
                       l.id, s.member_id, l.officer, 'attendance',
                       'attended ' || s.p || ' of the group''s last ' || s.n || ' meetings', {task_due}, 'open', :now
                    FROM shares s
                    JOIN microfinance_loans l ON l.tenant_id = {tenant} AND l.id = (
                        SELECT o.id FROM microfinance_loans o
                        WHERE o.tenant_id = {tenant} AND o.member_id = s.member_id AND o.status IN {LIVE}
                        ORDER BY o.id LIMIT 1)
                    WHERE s.n >= :meetings AND s.p < s.n * CAST(:share AS REAL)""",
                with_sql=f"""WITH recent AS (
                        SELECT m.id, ROW_NUMBER() OVER (PARTITION BY m.group_id ORDER BY m.held_on DESC) AS rn
                        FROM microfinance_meetings m WHERE m.tenant_id = {tenant}),
                    shares AS (
                        SELECT a.member_id, COUNT(*) AS n, SUM(CASE WHEN a.present THEN 1 ELSE 0 END) AS p
                        FROM microfinance_attendance a JOIN recent r ON r.id = a.meeting_id AND r.rn <= :meetings
                        WHERE a.tenant_id = {tenant} GROUP BY a.member_id)""",
            ),
        ),
    ]


def _penalty_sql(dialect: str) -> str:
    return f"""UPDATE microfinance_instalments SET penalty_due = :penalty
        WHERE tenant_id = :tenant AND paid_off_on IS NULL AND penalty_due = 0 AND due_on < {date_param("cutoff", dialect)}
          AND loan_id IN (SELECT id FROM microfinance_loans
                          WHERE tenant_id = :tenant AND product_id = :product AND status IN {LIVE})"""


async def run_nightly(session: AsyncSession, tenant: TenantView, now: datetime) -> dict[str, int]:
    """Arrears and follow-ups for the whole portfolio: activate loans whose first instalment fell due, charge late
    penalties, keep each loan's worst days past due, and raise the officer's tasks (late or partial instalment, monthly
    visit, overdue visit, arrears elsewhere in the group, falling attendance), each once (unique occasion key)."""
    settings = settings_of(tenant)
    dialect = session.get_bind().dialect.name
    today = today_of(tenant, now)
    pg = dialect == "postgresql"
    params: dict[str, Any] = {
        "tenant": tenant.id if pg else tenant.id.hex,
        "today": today if pg else today.isoformat(),
        "now": now if pg else now.replace(tzinfo=None).isoformat(sep=" "),
        "task_days": settings.task_due_days,
        "every": settings.visit_every_days,
        "lead": settings.visit_lead_days,
        "month": today.strftime("%Y-%m"),
        "meetings": settings.attendance_meetings,
        "share": float(settings.attendance_warning_share),
        # late instalments are raised once, when they fall late (a long-closed arrear raised nothing new)
        "since": (today - timedelta(days=62)) if pg else (today - timedelta(days=62)).isoformat(),
    }
    counts: dict[str, int] = {}
    products = (await session.execute(select(Product.id, Product.late_penalty, Product.penalty_after_days))).all()
    penalised = 0
    for product_id, penalty, after in products:
        if penalty and penalty > 0:
            cutoff = today - timedelta(days=after)
            result = await session.execute(
                text(_penalty_sql(dialect)),
                {
                    "tenant": params["tenant"],
                    "penalty": penalty if pg else str(penalty),
                    "cutoff": cutoff if pg else cutoff.isoformat(),
                    "product": product_id if pg else product_id.hex,
                },
            )
            penalised += int(getattr(result, "rowcount", 0) or 0)
    counts["penalties"] = penalised
    for name, sql in nightly_statements(dialect):
        result = await session.execute(text(sql), params)
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


async def nightly_job(ctx: JobContext) -> None:
    await run_nightly(ctx.session, ctx.tenant, ctx.now)


# --- reminders and arrears notices through the care engine ----------------------------------------------------------

PAGE = 5000


async def collection_job(ctx: JobContext) -> None:
    """Repayment reminders before due dates and an arrears notice a day per loan in arrears, asked of the care
    engine in bulk (``request_care_many``: its rules decide the messages; fair collection protects the borrower). Up
    to a page of each a run: what is asked is marked, so the next run goes on."""
    settings = settings_of(ctx.tenant)
    today = today_of(ctx.tenant, ctx.now)
    if settings.reminder_days_before is not None:
        due = today + timedelta(days=settings.reminder_days_before)
        rows = (
            await ctx.session.execute(
                select(Instalment, Loan)
                .join(Loan, (Loan.tenant_id == Instalment.tenant_id) & (Loan.id == Instalment.loan_id))
                .where(
                    Instalment.due_on <= due,
                    Instalment.due_on >= today,
                    Instalment.paid_off_on.is_(None),
                    Instalment.reminded_at.is_(None),
                    Loan.status.in_(("disbursed", "active")),
                )
                .order_by(Instalment.due_on)
                .limit(PAGE)
            )
        ).all()
        asks = []
        for inst, loan in rows:
            owed = (
                inst.principal_due
                - inst.principal_paid
                + inst.interest_due
                - inst.interest_paid
                + inst.fee_due
                - inst.fee_paid
                + inst.penalty_due
                - inst.penalty_paid
            )
            asks.append(
                CareAsk(
                    loan.member_id,
                    f"microfinance.due:{loan.id}:{inst.no}",
                    {
                        "loan_id": str(loan.id),
                        "instalment": inst.no,
                        "due_on": inst.due_on.isoformat(),
                        "amount": str(rules.rounder(digits_of(loan.currency))(owed)),
                        "currency": loan.currency,
                    },
                )
            )
            inst.reminded_at = ctx.now
        if asks:
            await ctx.services.request_care_many(asks, kind=REMINDER_TRIGGER, purpose="service", source=PLUGIN)
    late = (
        await ctx.session.execute(
            select(Loan.id, Loan.member_id, Loan.currency, func.min(Instalment.due_on))
            .join(Instalment, (Loan.tenant_id == Instalment.tenant_id) & (Loan.id == Instalment.loan_id))
            .where(
                Loan.status.in_(("disbursed", "active")),
                Instalment.due_on < today,
                Instalment.paid_off_on.is_(None),
                (Loan.collection_requested_on.is_(None)) | (Loan.collection_requested_on < today),
            )
            .group_by(Loan.id, Loan.member_id, Loan.currency)
            .order_by(Loan.id)
            .limit(PAGE)
        )
    ).all()
    if not late:
        return
    await ctx.services.request_care_many(
        [
            CareAsk(
                member_id,
                f"microfinance.arrears:{loan_id}:{today.isoformat()}",
                {
                    "loan_id": str(loan_id),
                    "days_past_due": (today - oldest).days,
                    "oldest_due_on": oldest.isoformat(),
                    "currency": currency,
                },
            )
            for loan_id, member_id, currency, oldest in late
        ],
        kind=ARREARS_TRIGGER,
        purpose="service",
        source=PLUGIN,
    )
    await ctx.session.execute(
        update(Loan).where(Loan.id.in_([row[0] for row in late])).values(collection_requested_on=today)
    )


# --- fair collection ------------------------------------------------------------------------------------------------


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def is_collection(message: Any) -> bool:
    return message.trigger in COLLECTION_TRIGGERS or message.category == "collection"


async def fair_collection(ctx: CareProtectionContext) -> Defer | Suppress | None:
    """Repayment reminders and collection contacts: only to a borrower with a loan of their own (never group
    members, relatives or colleagues), none during a recorded bereavement or on the tenant's holidays, at most N in 7
    local days across channels, and only within contact hours (08:00-19:00 local). Greetings on the same day are
    core's ``category_conflict``."""
    if not is_collection(ctx.message):
        return None
    settings = settings_of(ctx.tenant)
    zone = ctx.facts.zone
    today = ctx.now.astimezone(zone).date()
    owes = (
        await ctx.session.execute(
            select(Loan.id).where(Loan.member_id == ctx.member_id, Loan.status.in_(("disbursed", "active"))).limit(1)
        )
    ).scalar_one_or_none()
    if owes is None:
        return Suppress("microfinance.not_borrower")
    start, end = _clock(settings.contact_hours[0]), _clock(settings.contact_hours[1])
    mourning = (
        await ctx.session.execute(
            select(Bereavement.ends_on)
            .where(
                Bereavement.member_id == ctx.member_id,
                Bereavement.starts_on <= today,
                Bereavement.ends_on >= today,
            )
            .order_by(Bereavement.ends_on.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if mourning is not None:
        return Defer(local_instant(mourning + timedelta(days=1), start, zone), "microfinance.bereavement")
    if today in ctx.facts.holidays:
        return Defer(local_instant(today + timedelta(days=1), start, zone), "microfinance.holiday")
    week = today - timedelta(days=6)
    contacts = ctx.facts.count_between(week, today, category="collection") + ctx.facts.count_between(
        week, today, category="reminder"
    )
    if contacts >= settings.collection_contacts_per_7_days:
        return Defer(local_instant(today + timedelta(days=1), start, zone), "microfinance.contact_cap")
    allowed = next_in_window(ctx.now, (start, end), zone)
    return Defer(allowed, "microfinance.contact_hours") if allowed > ctx.now else None
