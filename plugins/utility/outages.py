"""Outages on the database, set-based: who is affected, which stage is told to whom, what each account is owed.

Every step is a few statements whatever the number of accounts (an unplanned outage of 100,000 accounts): the
affected accounts are copied by ``INSERT ... SELECT``; a stage is told by inserting its notices (one per outage,
account and stage: the primary key) and handing the new ones to the care engine in one call per 2,000
(``request_care_many``, the occasion key ``utility:<outage>:<account>:<stage>``), so no account hears a stage twice,
however many times an outage is edited or however many workers run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, case, func, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core import (
    CareAsk,
    PluginCredit,
    TenantView,
    credit_points_many,
    emit,
    new_id,
    request_care_many,
    table_of,
)
from plugins.utility import rules
from plugins.utility.models import (
    UtilityAccount,
    UtilityCallTask,
    UtilityCompensation,
    UtilityNotice,
    UtilityOutage,
    UtilityOutageAccount,
)
from plugins.utility.settings import UtilitySettings

accounts = table_of(UtilityAccount)
outages = table_of(UtilityOutage)
affected = table_of(UtilityOutageAccount)
notices = table_of(UtilityNotice)
compensations = table_of(UtilityCompensation)
tasks = table_of(UtilityCallTask)

#: Accounts per statement.
CHUNK = 2000
Purpose = Literal["service", "marketing", "safety"]

#: Each stage's care trigger and purpose: unplanned alerts are safety messages (quiet hours bypassed, no consent
#: needed); planned notices and everything after restoration are service messages.
STAGE_TRIGGERS: dict[str, tuple[str, Purpose]] = {
    "priority_notice": ("utility.planned_notice", "service"),
    "notice": ("utility.planned_notice", "service"),
    "reminder": ("utility.planned_reminder", "service"),
    "changed": ("utility.planned_changed", "service"),
    "cancelled": ("utility.planned_cancelled", "service"),
    "alert": ("utility.outage_alert", "safety"),
    "etr": ("utility.etr_update", "safety"),
    "restored": ("utility.restored", "service"),
    "compensation": ("utility.compensation", "service"),
}


def settings_of(tenant: TenantView) -> UtilitySettings:
    settings: UtilitySettings = tenant.settings_for("utility")
    return settings


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def outage_variables(outage: Any) -> dict[str, Any]:
    return {
        "outage_id": str(outage.id),
        "kind": outage.kind,
        "starts_at": _iso(outage.starts_at),
        "ends_at": _iso(outage.ends_at),
        "etr": _iso(outage.etr),
        "reason": outage.reason or "",
        "contact_line": outage.contact_line or "",
        "restored_at": _iso(outage.restored_at),
    }


async def lock_outage(session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID) -> Any:
    """The outage, locked for this transaction (two edits at once take turns; None when absent)."""
    query = select(outages).where(outages.c.tenant_id == tenant_id, outages.c.id == outage_id).with_for_update()
    return (await session.execute(query)).first()


async def snapshot(session: AsyncSession, tenant: TenantView, outage: Any, now: datetime) -> int:
    """Copy the active accounts on the outage's feeders and areas into its affected accounts (once each)."""
    settings = settings_of(tenant)
    a = accounts
    place = []
    if outage.feeders:
        place.append(a.c.feeder.in_(list(outage.feeders)))
    if outage.areas:
        place.append(a.c.area.in_(list(outage.areas)))
    if not place:
        return 0
    priority = or_(a.c.psr.is_(True), a.c.customer_class.in_(list(settings.priority_classes)))
    picked = select(
        a.c.tenant_id,
        literal(outage.id, affected.c.outage_id.type),
        a.c.id,
        a.c.member_id,
        a.c.customer_class,
        priority,
        a.c.medical,
        _source_expr(outage),
        literal(outage.starts_at, affected.c.out_from.type),
    ).where(a.c.tenant_id == tenant.id, a.c.status == "active", or_(*place), true())
    statement = (
        _insert(session, affected)
        .from_select(
            [
                "tenant_id",
                "outage_id",
                "account_id",
                "member_id",
                "customer_class",
                "priority",
                "medical",
                "source",
                "out_from",
            ],
            picked,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id"])
    )
    result = await session.execute(statement)
    count = (
        await session.execute(
            select(func.count())
            .select_from(affected)
            .where(affected.c.tenant_id == tenant.id, affected.c.outage_id == outage.id)
        )
    ).scalar_one()
    await session.execute(
        update(outages)
        .where(outages.c.tenant_id == tenant.id, outages.c.id == outage.id)
        .values(affected_accounts=count, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _source_expr(outage: Any) -> Any:
    if outage.feeders:
        return case((accounts.c.feeder.in_(list(outage.feeders)), literal("feeder")), else_=literal("area"))
    return literal("area")


@dataclass(frozen=True)
class Told:
    stage: str
    accounts: int


async def tell(
    session: AsyncSession,
    tenant: TenantView,
    outage: Any,
    stage: str,
    now: datetime,
    *,
    where: Sequence[Any] = (),
    extra: dict[str, Any] | None = None,
    late: bool = False,
    among: set[uuid.UUID] | None = None,
) -> Told:
    """Tell ``stage`` of ``outage`` to its affected accounts matching ``where`` (and in ``among`` when given) that
    were not told it yet.

    Each account's notice row is inserted first (``ON CONFLICT DO NOTHING``): only the rows this transaction
    inserted go to the care engine, so two workers or two edits never tell an account the same stage twice."""
    trigger, purpose = STAGE_TRIGGERS[stage.split(":")[0]]
    oa, a = affected, accounts
    # Who was told already is a set difference in Python, not an anti-join: right after an outage's 100,000 notices
    # are inserted the planner's statistics still see an empty table, and a nested-loop anti-join would take hours.
    done = await told(session, tenant.id, outage.id, [stage])
    query = (
        select(oa.c.account_id, oa.c.member_id, a.c.account_number, a.c.premises_address)
        .join(a, and_(a.c.tenant_id == oa.c.tenant_id, a.c.id == oa.c.account_id))
        .where(oa.c.tenant_id == tenant.id, oa.c.outage_id == outage.id, *where)
        .order_by(oa.c.account_id)
    )
    candidates = [
        r
        for r in (await session.execute(query)).all()
        if r.account_id not in done and (among is None or r.account_id in among)
    ]
    variables = outage_variables(outage) | {"stage": stage, "late": late} | dict(extra or {})
    total = 0
    statement = (
        _insert(session, notices)
        .on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id", "stage"])
        .returning(notices.c.account_id)
    )
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        rows = [
            {
                "tenant_id": tenant.id,
                "outage_id": outage.id,
                "account_id": r.account_id,
                "stage": stage,
                "member_id": r.member_id,
                "late": late,
                "created_at": now,
            }
            for r in chunk
        ]
        inserted = {r.account_id for r in (await session.execute(statement, rows)).all()}
        asks = [
            CareAsk(
                r.member_id,
                f"utility:{outage.id}:{r.account_id}:{stage}",
                variables | {"account_number": r.account_number, "premises_address": r.premises_address},
            )
            for r in chunk
            if r.account_id in inserted
        ]
        if asks:
            await request_care_many(
                session, tenant_id=tenant.id, kind=trigger, purpose=purpose, source="utility", asks=asks, now=now
            )
        total += len(asks)
    return Told(stage, total)


def not_restored() -> Any:
    return affected.c.restored_at.is_(None)


async def told(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    outage_id: uuid.UUID,
    stages: Sequence[str],
    before: datetime | None = None,
) -> set[uuid.UUID]:
    """The accounts of the outage told any of ``stages`` (before ``before`` when given): one indexed scan."""
    n = notices
    query = select(n.c.account_id).where(
        n.c.tenant_id == tenant_id, n.c.outage_id == outage_id, n.c.stage.in_(list(stages))
    )
    if before is not None:
        query = query.where(n.c.created_at < before)
    return set((await session.execute(query)).scalars().all())


async def call_tasks(
    session: AsyncSession,
    tenant: TenantView,
    outage: Any,
    reason: str,
    due_at: datetime,
    now: datetime,
    where: Sequence[Any],
) -> int:
    """A call task per matching affected account (once per outage, account and reason), for the account's manager
    or the tenant's priority desk."""
    settings = settings_of(tenant)
    oa, a = affected, accounts
    picked = (
        select(oa.c.outage_id, oa.c.account_id, func.coalesce(a.c.account_manager, settings.priority_desk))
        .join(a, and_(a.c.tenant_id == oa.c.tenant_id, a.c.id == oa.c.account_id))
        .where(oa.c.tenant_id == tenant.id, oa.c.outage_id == outage.id, *where)
    )
    rows = (await session.execute(picked)).all()
    if not rows:
        return 0
    values = [
        {
            "tenant_id": tenant.id,
            "id": new_id(),
            "outage_id": r.outage_id,
            "account_id": r.account_id,
            "reason": reason,
            "assignee": r[2],
            "status": "open",
            "due_at": due_at,
            "created_at": now,
        }
        for r in rows
    ]
    statement = (
        _insert(session, tasks)
        .on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id", "reason"])
        .returning(tasks.c.id)
    )
    created = 0
    for start in range(0, len(values), CHUNK):
        created += len((await session.execute(statement, values[start : start + CHUNK])).all())
    return created


# --- planned outages -------------------------------------------------------------------------------------------------


async def advance_planned(session: AsyncSession, tenant: TenantView, outage: Any, now: datetime) -> list[Told]:
    """Tell every stage of a scheduled planned outage that is due now (and not yet told): the priority customers'
    notice (with a call task for their manager), everyone else's notice, then the latest reminder that is due to the
    accounts told before it was due. A notice that goes after its due moment (plus the grace) says it is late."""
    if outage.status != "scheduled" or now >= outage.starts_at:
        return []
    settings = settings_of(tenant)
    zone = ZoneInfo(tenant.timezone)
    stages = rules.planned_stages(settings, outage.starts_at, zone)
    done: list[Told] = []
    priority_stage, notice_stage, *reminders = stages
    if now >= priority_stage.due_at:
        done.append(
            await tell(
                session,
                tenant,
                outage,
                "priority_notice",
                now,
                where=[affected.c.priority.is_(True)],
                extra={"days_before": priority_stage.days},
                late=rules.is_late(priority_stage, now, settings),
            )
        )
        await call_tasks(
            session,
            tenant,
            outage,
            "planned_priority",
            max(now, priority_stage.due_at),
            now,
            [affected.c.priority.is_(True)],
        )
    if now >= notice_stage.due_at:
        done.append(
            await tell(
                session,
                tenant,
                outage,
                "notice",
                now,
                where=[affected.c.priority.is_(False)],
                extra={"days_before": notice_stage.days},
                late=rules.is_late(notice_stage, now, settings),
            )
        )
    due = [r for r in reminders if now >= r.due_at]
    if due:
        latest = due[-1]
        done.append(
            await tell(
                session,
                tenant,
                outage,
                latest.name,
                now,
                among=await told(session, tenant.id, outage.id, ["notice", "priority_notice"], latest.due_at),
                extra={"days_before": latest.days},
            )
        )
    return done


async def window_changed(
    session: AsyncSession, tenant: TenantView, outage: Any, previous: tuple[datetime, datetime | None], now: datetime
) -> list[Told]:
    """Tell the accounts already told of the outage its new window (stage ``changed:<version>``), then any stage
    now due for the new window."""
    changed = await tell(
        session,
        tenant,
        outage,
        f"changed:{outage.window_version}",
        now,
        among=await told(session, tenant.id, outage.id, ["notice", "priority_notice"]),
        extra={"previous_starts_at": _iso(previous[0]), "previous_ends_at": _iso(previous[1])},
    )
    return [changed, *await advance_planned(session, tenant, outage, now)]


async def cancelled(session: AsyncSession, tenant: TenantView, outage: Any, now: datetime) -> Told:
    """Tell the accounts already told of the outage that it is cancelled; their open call tasks are closed."""
    await session.execute(
        update(tasks)
        .where(tasks.c.tenant_id == tenant.id, tasks.c.outage_id == outage.id, tasks.c.status == "open")
        .values(status="done", done_at=now, note="outage cancelled")
    )
    return await tell(
        session,
        tenant,
        outage,
        "cancelled",
        now,
        among=await told(session, tenant.id, outage.id, ["notice", "priority_notice"]),
    )


# --- unplanned outages -----------------------------------------------------------------------------------------------


async def alert(session: AsyncSession, tenant: TenantView, outage: Any, now: datetime) -> Told:
    """The first alert to every affected account still out (safety), and a call task for each medical-equipment
    customer."""
    told = await tell(session, tenant, outage, "alert", now, where=[not_restored()])
    await call_tasks(session, tenant, outage, "medical", now, now, [affected.c.medical.is_(True), not_restored()])
    return told


async def etr_update(
    session: AsyncSession, tenant: TenantView, outage: Any, previous: datetime | None, now: datetime
) -> Told:
    return await tell(
        session,
        tenant,
        outage,
        f"etr:{outage.etr_version}",
        now,
        where=[not_restored()],
        among=await told(session, tenant.id, outage.id, ["alert"]),
        extra={"previous_etr": _iso(previous)},
    )


async def notified_at(session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID) -> dict[uuid.UUID, datetime]:
    """When each account of a planned outage was last told its window (its notice, or the latest change of window:
    every change is told to everyone already told, so the latest of these describes the window as it stands)."""
    n = notices
    rows = await session.execute(
        select(n.c.account_id, func.max(n.c.created_at))
        .where(
            n.c.tenant_id == tenant_id,
            n.c.outage_id == outage_id,
            or_(n.c.stage.in_(["notice", "priority_notice"]), n.c.stage.like("changed:%")),
        )
        .group_by(n.c.account_id)
    )
    return {account_id: at for account_id, at in rows.all()}


async def restore(
    session: AsyncSession, tenant: TenantView, outage: Any, restored_at: datetime, now: datetime
) -> tuple[Told, int]:
    """Restore every affected account still out (not the ones that said "still out" after an earlier
    restoration: they are restored one by one), tell them, and compute what each is owed. A planned outage's
    accounts lost supply at its start as it stands (its window may have moved since they were taken)."""
    if outage.kind == "planned":
        await session.execute(
            update(affected)
            .where(
                affected.c.tenant_id == tenant.id,
                affected.c.outage_id == outage.id,
                affected.c.restored_at.is_(None),
                affected.c.source != "claim",
            )
            .values(out_from=outage.starts_at)
        )
    await session.execute(
        update(affected)
        .where(
            affected.c.tenant_id == tenant.id,
            affected.c.outage_id == outage.id,
            affected.c.restored_at.is_(None),
            affected.c.reopened_at.is_(None),
        )
        .values(restored_at=restored_at)
    )
    computed = await compute_compensation(session, tenant, outage, now)
    if outage.affected_accounts > INLINE_NOTICES:
        return Told("restored", 0), computed  # the worker's job tells them (restored_notices)
    return await restored_notices(session, tenant, outage, now), computed


async def restored_notices(session: AsyncSession, tenant: TenantView, outage: Any, now: datetime) -> Told:
    """``restored`` to every restored account of the outage not yet told (the restoring request's own when the
    outage is small, else the worker's next run)."""
    return await tell(
        session,
        tenant,
        outage,
        "restored",
        now,
        where=[affected.c.restored_at.is_not(None), affected.c.reopened_at.is_(None)],
        extra={"restored_at": _iso(outage.restored_at)},
    )


# --- compensation ----------------------------------------------------------------------------------------------------


async def compute_compensation(
    session: AsyncSession,
    tenant: TenantView,
    outage: Any,
    now: datetime,
    *,
    account_ids: Sequence[uuid.UUID] | None = None,
    source: str = "automatic",
) -> int:
    """What each restored account of ``outage`` is owed (once per outage and account: the unique key), set-based.

    An account restored again after a "still out" reply has its amount recomputed on its longer outage; only the
    difference is paid then (``paid_amount``)."""
    settings = settings_of(tenant)
    oa, c = affected, compensations
    query = select(oa.c.account_id, oa.c.member_id, oa.c.customer_class, oa.c.out_from, oa.c.restored_at).where(
        oa.c.tenant_id == tenant.id, oa.c.outage_id == outage.id, oa.c.restored_at.is_not(None)
    )
    if account_ids is not None:
        query = query.where(oa.c.account_id.in_(list(account_ids)))
    # the compensations already computed, apart (no join: the statistics may not know yet of a big outage's rows)
    existing = {
        r.account_id: (r.id, r.minutes)
        for r in (
            await session.execute(
                select(c.c.account_id, c.c.id, c.c.minutes).where(
                    c.c.tenant_id == tenant.id, c.c.outage_id == outage.id
                )
            )
        ).all()
    }
    rows = (await session.execute(query)).all()
    method = settings.compensation_payment
    fresh: list[dict[str, Any]] = []
    longer: list[tuple[Any, rules.Compensation, int]] = []
    planned = outage.kind == "planned" and outage.ends_at is not None
    notified = await notified_at(session, tenant.id, outage.id) if planned else {}
    zone = ZoneInfo(tenant.timezone)
    for r in rows:
        start = r.out_from
        if planned:
            window = (outage.starts_at, outage.ends_at)
            start = rules.planned_counted_from(settings, zone, window, r.out_from, notified.get(r.account_id))
        minutes = max(0, int((r.restored_at - start).total_seconds() // 60))
        owed = rules.compensation(settings, outage.category, r.customer_class, minutes, tenant.currency)
        known = existing.get(r.account_id)
        if known is None:
            fresh.append(
                {
                    "tenant_id": tenant.id,
                    "id": new_id(),
                    "outage_id": outage.id,
                    "account_id": r.account_id,
                    "member_id": r.member_id,
                    "category": outage.category,
                    "kind": owed.kind,
                    "minutes": minutes,
                    "amount": owed.amount,
                    "paid_amount": Decimal(0),
                    "currency": tenant.currency,
                    "basis": owed.basis,
                    "increments": owed.increments,
                    "method": method,
                    "points": 0,
                    "status": "due" if owed.amount > 0 else "none",
                    "source": source,
                    "created_at": now,
                    "paid_at": None,
                }
            )
        elif minutes > known[1]:
            longer.append((known[0], owed, minutes))
    statement = _insert(session, c).on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id"])
    for start in range(0, len(fresh), CHUNK * 2):
        await session.execute(statement, fresh[start : start + CHUNK * 2])
    for compensation_id, owed, minutes in longer:
        await session.execute(
            update(c)
            .where(c.c.tenant_id == tenant.id, c.c.id == compensation_id, c.c.minutes < minutes)
            .values(
                minutes=minutes,
                amount=owed.amount,
                basis=owed.basis,
                increments=owed.increments,
                status="due" if owed.amount > 0 else "none",
            )
        )
    return len(fresh) + len(longer)


#: Compensations paid per page: one transaction each in the worker's job (``ctx.commit`` between pages).
PAY_PAGE = 5000


async def pay_due(session: AsyncSession, tenant: TenantView, now: datetime, *, limit: int | None = None) -> int:
    """Pay up to ``limit`` (default ``PAY_PAGE``) due compensations, set-based: the rows are locked
    (``FOR UPDATE SKIP LOCKED``: two workers skip each other's rows) and marked paid in this transaction, paid as
    points in one ledger batch (one entry per compensation, reference ``utility:compensation:<id>:<amount>``) or
    announced to the tenant's billing system as bill credits (``utility.bill_credits``, up to 500 a webhook event),
    and the customers are told (``utility.compensation``, ``request_care_many``): a few statements per page, none per
    account."""
    settings = settings_of(tenant)
    c = compensations
    query = (
        select(c)
        .where(c.c.tenant_id == tenant.id, c.c.status == "due")
        .order_by(c.c.created_at, c.c.id)
        .limit(PAY_PAGE if limit is None else limit)
        .with_for_update(skip_locked=True)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return 0
    numbers = await _account_numbers(session, tenant.id, [r.account_id for r in rows])
    credits: list[dict[str, Any]] = []
    points_credits: list[PluginCredit] = []
    points_after: list[dict[str, Any]] = []
    by_outage: dict[uuid.UUID, list[Any]] = {}
    for r in rows:
        delta = Decimal(r.amount) - Decimal(r.paid_amount)
        points = 0
        if r.method == "points":
            total = rules.points_for(Decimal(r.amount), settings)
            points = total - int(r.points)
            points_after.append({"b_id": r.id, "b_points": total})
            if points > 0:
                points_credits.append(
                    PluginCredit(
                        r.member_id,
                        points,
                        reference=f"utility:compensation:{r.id}:{r.amount}",
                        details={
                            "outage_id": str(r.outage_id),
                            "account_id": str(r.account_id),
                            "amount": str(r.amount),
                        },
                    )
                )
        elif r.method == "bill_credit" and delta > 0:
            credits.append(
                {
                    "compensation_id": str(r.id),
                    "outage_id": str(r.outage_id),
                    "account_number": numbers.get(r.account_id, ("", ""))[0],
                    "amount": str(delta),
                    "currency": r.currency,
                }
            )
        by_outage.setdefault(r.outage_id, []).append((r, delta, points))
    for start in range(0, len(points_credits), CHUNK):
        await credit_points_many(
            session,
            tenant_id=tenant.id,
            credits=points_credits[start : start + CHUNK],
            plugin="utility",
            reason="Compensation for a power cut (guaranteed standards)",
            now=now,
        )
    ids = [r.id for r in rows]
    for start in range(0, len(ids), CHUNK):
        await session.execute(
            update(c)
            .where(c.c.tenant_id == tenant.id, c.c.id.in_(ids[start : start + CHUNK]))
            .values(status="paid", paid_amount=c.c.amount, paid_at=now)
        )
    if points_after:
        # the points paid so far on each row: one executemany, whatever the number of rows
        await session.execute(
            update(c)
            .where(c.c.tenant_id == tenant.id, c.c.id == bindparam("b_id"))
            .values(points=bindparam("b_points")),
            points_after,
        )
    for start in range(0, len(credits), 500):
        await emit(session, tenant.id, "utility.bill_credits", {"credits": credits[start : start + 500]})
    for outage_id, paid in by_outage.items():
        outage = (
            await session.execute(select(outages).where(outages.c.tenant_id == tenant.id, outages.c.id == outage_id))
        ).one()
        await _tell_compensation(session, tenant, outage, paid, numbers, now)
    return len(rows)


async def _account_numbers(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each account's number and premises address."""
    found: dict[uuid.UUID, tuple[str, str]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), CHUNK):
        rows = (
            await session.execute(
                select(accounts.c.id, accounts.c.account_number, accounts.c.premises_address).where(
                    accounts.c.tenant_id == tenant_id, accounts.c.id.in_(unique[start : start + CHUNK])
                )
            )
        ).all()
        found.update({r.id: (r.account_number, r.premises_address) for r in rows})
    return found


async def _tell_compensation(
    session: AsyncSession,
    tenant: TenantView,
    outage: Any,
    paid: Sequence[tuple[Any, Decimal, int]],
    numbers: dict[uuid.UUID, tuple[str, str]],
    now: datetime,
) -> None:
    """``utility.compensation`` to each paid account (stage ``compensation:<amount>``: a top-up is told too)."""
    rows = [(r, delta, points) for r, delta, points in paid if delta > 0]
    if not rows:
        return
    notice_rows = [
        {
            "tenant_id": tenant.id,
            "outage_id": outage.id,
            "account_id": r.account_id,
            "stage": f"compensation:{r.amount}",
            "member_id": r.member_id,
            "late": False,
            "created_at": now,
        }
        for r, _, _ in rows
    ]
    statement = (
        _insert(session, notices)
        .on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id", "stage"])
        .returning(notices.c.account_id)
    )
    inserted: set[uuid.UUID] = set()
    for start in range(0, len(notice_rows), CHUNK):
        inserted |= {x.account_id for x in (await session.execute(statement, notice_rows[start : start + CHUNK])).all()}
    base = outage_variables(outage)
    asks = [
        CareAsk(
            r.member_id,
            f"utility:{outage.id}:{r.account_id}:compensation:{r.amount}",
            base
            | {
                "stage": f"compensation:{r.amount}",
                "late": False,
                "account_number": numbers.get(r.account_id, ("", ""))[0],
                "premises_address": numbers.get(r.account_id, ("", ""))[1],
                "amount": str(r.amount),
                "paid_now": str(delta),
                "currency": r.currency,
                "hours": str((Decimal(r.minutes) / 60).quantize(Decimal("0.01"))),
                "method": r.method,
                "points": points,
                "category": r.category,
            },
        )
        for r, delta, points in rows
        if r.account_id in inserted
    ]
    for start in range(0, len(asks), CHUNK):
        await request_care_many(
            session,
            tenant_id=tenant.id,
            kind="utility.compensation",
            purpose="service",
            source="utility",
            asks=asks[start : start + CHUNK],
            now=now,
        )


# --- helpers for the routes ------------------------------------------------------------------------------------------

#: Compensations paid in the restoring request itself; the rest by the ``outages`` job (a big outage's points).
INLINE_PAYMENTS = 2000
#: Restoration notices told in the restoring request itself up to this many affected accounts; beyond, the
#: request computes the compensation (the slow part is the messages) and the worker's next run tells them.
INLINE_NOTICES = 5000


async def flush_unique(session: AsyncSession, field: str, detail: str) -> None:
    """Flush, answering a unique-key race (two requests creating the same thing at once) as a 409."""
    from sqlalchemy.exc import IntegrityError

    from core import Conflict

    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(detail, field=field) from None


async def insert_outage(session: AsyncSession, tenant_id: uuid.UUID, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert an outage; None when another has its reference (unique per tenant, so two at once make one)."""
    statement = (
        _insert(session, outages)
        .values(tenant_id=tenant_id, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "reference"])
        .returning(outages.c.id)
    )
    row = (await session.execute(statement)).first()
    return row.id if row is not None else None


async def get_outage(session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID) -> Any:
    query = select(outages).where(outages.c.tenant_id == tenant_id, outages.c.id == outage_id)
    return (await session.execute(query)).first()


async def update_outage(
    session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID, values: dict[str, Any]
) -> None:
    await session.execute(
        update(outages).where(outages.c.tenant_id == tenant_id, outages.c.id == outage_id).values(**values)
    )


async def stages_of(
    session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    if not account_ids:
        return {}
    n = notices
    rows = (
        await session.execute(
            select(n.c.account_id, n.c.stage)
            .where(n.c.tenant_id == tenant_id, n.c.outage_id == outage_id, n.c.account_id.in_(list(account_ids)))
            .order_by(n.c.created_at, n.c.stage)
        )
    ).all()
    found: dict[uuid.UUID, list[str]] = {}
    for account_id, stage in rows:
        found.setdefault(account_id, []).append(stage)
    return found


async def _affected_row(
    session: AsyncSession, tenant_id: uuid.UUID, outage_id: uuid.UUID, account_id: uuid.UUID
) -> Any:
    from core import NotFound

    row = (
        await session.execute(
            select(affected).where(
                affected.c.tenant_id == tenant_id,
                affected.c.outage_id == outage_id,
                affected.c.account_id == account_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound("The outage does not affect this account.", field="account_id")
    return row


async def reopen(session: AsyncSession, tenant: TenantView, outage: Any, account_id: uuid.UUID, now: datetime) -> Any:
    """Reopen a restored outage for one account ("still out"); an account still out is left as it is."""
    from core import Conflict

    row = await _affected_row(session, tenant.id, outage.id, account_id)
    if outage.kind != "unplanned" or outage.status != "restored":
        raise Conflict("Only a restored unplanned outage can be reopened for an account.", field="outage_id")
    if row.restored_at is not None:
        await session.execute(
            update(affected)
            .where(
                affected.c.tenant_id == tenant.id,
                affected.c.outage_id == outage.id,
                affected.c.account_id == account_id,
                affected.c.restored_at.is_not(None),
            )
            .values(restored_at=None, reopened_at=now)
        )
    return await _affected_row(session, tenant.id, outage.id, account_id)


async def restore_one(
    session: AsyncSession, tenant: TenantView, outage: Any, account_id: uuid.UUID, restored_at: datetime, now: datetime
) -> Any:
    """Restore one reopened account: told (stage ``restored:<n>``), its compensation recomputed."""
    from core import Conflict, ValidationFailed

    row = await _affected_row(session, tenant.id, outage.id, account_id)
    if row.restored_at is not None:
        return row
    if outage.status != "restored":
        raise Conflict("The outage is restored as a whole first.", field="outage_id")
    if restored_at <= row.out_from:
        raise ValidationFailed("Restoration comes after the start.", field="restored_at")
    await session.execute(
        update(affected)
        .where(
            affected.c.tenant_id == tenant.id,
            affected.c.outage_id == outage.id,
            affected.c.account_id == account_id,
            affected.c.restored_at.is_(None),
        )
        .values(restored_at=restored_at)
    )
    reopened = int(row.reopened_at.timestamp()) if row.reopened_at else 0
    await tell(
        session,
        tenant,
        outage,
        f"restored:{reopened}",
        now,
        where=[affected.c.account_id == account_id],
        extra={"restored_at": _iso(restored_at)},
    )
    await compute_compensation(session, tenant, outage, now, account_ids=[account_id])
    return await _affected_row(session, tenant.id, outage.id, account_id)


async def claim(
    session: AsyncSession,
    tenant: TenantView,
    outage: Any,
    account_id: uuid.UUID,
    out_from: datetime,
    restored_at: datetime,
    now: datetime,
) -> uuid.UUID:
    """Add a claiming account to a restored outage and compute what it is owed; 409 when it already was."""
    from core import Conflict

    c = compensations
    existing = (
        await session.execute(
            select(c.c.id).where(c.c.tenant_id == tenant.id, c.c.outage_id == outage.id, c.c.account_id == account_id)
        )
    ).first()
    if existing is not None:
        raise Conflict("This account was already compensated for this outage.", field="account_id")
    account = (
        await session.execute(select(accounts).where(accounts.c.tenant_id == tenant.id, accounts.c.id == account_id))
    ).one()
    settings = settings_of(tenant)
    await session.execute(
        _insert(session, affected)
        .values(
            tenant_id=tenant.id,
            outage_id=outage.id,
            account_id=account_id,
            member_id=account.member_id,
            customer_class=account.customer_class,
            priority=bool(account.psr or account.customer_class in settings.priority_classes),
            medical=account.medical,
            source="claim",
            out_from=out_from,
            restored_at=restored_at,
            reopened_at=None,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "outage_id", "account_id"])
    )
    await compute_compensation(session, tenant, outage, now, account_ids=[account_id], source="claim")
    row = (
        await session.execute(
            select(c.c.id).where(c.c.tenant_id == tenant.id, c.c.outage_id == outage.id, c.c.account_id == account_id)
        )
    ).one()
    return uuid.UUID(str(row.id))


async def compensation_of(session: AsyncSession, tenant_id: uuid.UUID, compensation_id: uuid.UUID) -> Any:
    c = compensations
    return (await session.execute(select(c).where(c.c.tenant_id == tenant_id, c.c.id == compensation_id))).one()
