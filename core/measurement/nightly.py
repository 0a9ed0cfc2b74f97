"""The nightly loyalty run of one tenant: member metrics, RFM, BG/NBD and Gamma-Gamma, loyalty types and index.

Set-based: members are read in pages of ``PAGE`` by primary key, and each page's metrics come from two aggregate
queries over the daily metric buckets (``events`` and ``spend``, plus the days a campaign or multiplier rule gave
points); nothing is read per member. The tenant-wide steps (RFM quintiles, the model fits) run on numpy arrays; the
results are written back in pages with one multi-row upsert each. Re-running is harmless: every row is recomputed,
and rows of members no longer active are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np
import structlog
from sqlalchemy import Integer, and_, case, cast, delete, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cases.models import Case
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.db.engine import tenant_session
from core.earning.models import EarningRule
from core.ledger.models import PointBalance
from core.measurement import ahp, clv, loyalty, reports, service
from core.measurement import settings as measurement_settings
from core.measurement.models import MeasurementModel, MeasurementSettings, MemberLoyalty
from core.measurement.spec import loyalty_index_scorer
from core.members.models import Member
from core.program.settings import load_program_settings
from core.qualification.models import MemberMetric
from core.qualification.service import local_day

log = structlog.get_logger("fealty.measurement")
PAGE = 5000
#: ``work_mem`` of the run's reading transactions (PostgreSQL): a page's sorts and hashes stay in memory.
READ_WORK_MEM = "64MB"
#: Members gathered or scored between two yields to the event loop (the read-ahead and upsert tasks' turns).
YIELD_EVERY = 250
#: Fewest members with a purchase before a tenant's BG/NBD is fitted (below that the estimates mean little).
MIN_FIT_MEMBERS = 30
buckets = table_of(MemberMetric)
members = table_of(Member)
loyalty_rows = table_of(MemberLoyalty)
settings_table = table_of(MeasurementSettings)
LOYALTY_COLUMNS = tuple(c.name for c in loyalty_rows.columns)


@dataclass
class Gathered:
    """Per member (aligned arrays): what the aggregate queries found."""

    ids: list[uuid.UUID] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    enrolled: list[int] = field(default_factory=list)
    first: list[int] = field(default_factory=list)  # day ordinal, -1 when never active
    last: list[int] = field(default_factory=list)
    active_days: list[int] = field(default_factory=list)
    frequency: list[int] = field(default_factory=list)
    eligible: list[int] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    spend_window: list[Decimal] = field(default_factory=list)
    spend_repeat: list[float] = field(default_factory=list)
    promo_days: list[int] = field(default_factory=list)


def _days_between(earlier: Any, later: Any, postgres: bool) -> Any:
    if postgres:
        return cast(later - earlier, Integer)
    return func.julianday(later) - func.julianday(earlier)


@dataclass
class Fetched:
    """One page as read: its members and, by member, what the two aggregate queries found."""

    members: Sequence[Any]
    activity: dict[uuid.UUID, Any]
    money: dict[uuid.UUID, Any]


async def _fetch(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    after: uuid.UUID | None,
    *,
    start: date,
    eligible_end: date,
    within: int,
    promo: list[str],
) -> Fetched | None:
    """The page of members after ``after`` (by key) and their figures; None past the last member."""
    query = (
        select(members.c.id, members.c.created_at, members.c.attributes)
        .where(members.c.tenant_id == tenant_id, members.c.status == "active")
        .order_by(members.c.id)
        .limit(PAGE)
    )
    if after is not None:
        query = query.where(members.c.id > after)
    page = (await db.execute(query)).all()
    if not page:
        return None
    lo, hi = page[0].id, page[-1].id
    postgres = bulk.is_postgres(db)
    if postgres:  # the page's window and hash sorts in memory, not spilled to disk at the server's default 4 MB
        await db.execute(text(f"SET LOCAL work_mem = '{READ_WORK_MEM}'"))
    in_page = and_(buckets.c.tenant_id == tenant_id, buckets.c.member_id >= lo, buckets.c.member_id <= hi)
    days = (
        select(
            buckets.c.member_id,
            buckets.c.day,
            func.lead(buckets.c.day).over(partition_by=buckets.c.member_id, order_by=buckets.c.day).label("next_day"),
        )
        .where(in_page, buckets.c.metric == "events", buckets.c.value > 0)
        .subquery()
    )
    in_window = days.c.day >= start
    old_enough = and_(in_window, days.c.day <= eligible_end)
    came_back = and_(
        old_enough, days.c.next_day.is_not(None), _days_between(days.c.day, days.c.next_day, postgres) <= within
    )
    activity = {
        r.member_id: r
        for r in await db.execute(
            select(
                days.c.member_id,
                func.min(days.c.day).label("first"),
                func.max(days.c.day).label("last"),
                func.count().label("active_days"),
                func.sum(case((in_window, 1), else_=0)).label("frequency"),
                func.sum(case((old_enough, 1), else_=0)).label("eligible"),
                func.sum(case((came_back, 1), else_=0)).label("returned"),
            ).group_by(days.c.member_id)
        )
    }
    # One scan of the page's money buckets; each row carries its member's first active day (a window, no join).
    metric_filter = (
        or_(buckets.c.metric.in_(["spend", "events"]), buckets.c.metric.in_(promo))
        if promo
        else (buckets.c.metric.in_(["spend", "events"]))
    )
    first_day = func.min(case((and_(buckets.c.metric == "events", buckets.c.value > 0), buckets.c.day), else_=None))
    rows = (
        select(
            buckets.c.member_id,
            buckets.c.metric,
            buckets.c.day,
            buckets.c.value,
            first_day.over(partition_by=buckets.c.member_id).label("first_day"),
        )
        .where(in_page, metric_filter)
        .subquery()
    )
    money_columns = [
        func.sum(case((and_(rows.c.metric == "spend", rows.c.day >= start), rows.c.value), else_=0)).label(
            "spend_window"
        ),
        func.sum(case((and_(rows.c.metric == "spend", rows.c.day > rows.c.first_day), rows.c.value), else_=0)).label(
            "spend_repeat"
        ),
    ]
    if promo:
        promo_day = and_(rows.c.metric.in_(promo), rows.c.day >= start, rows.c.value > 0)
        money_columns.append(func.count(func.distinct(case((promo_day, rows.c.day), else_=None))).label("promo"))
    money = {
        r.member_id: r for r in await db.execute(select(rows.c.member_id, *money_columns).group_by(rows.c.member_id))
    }
    return Fetched(page, activity, money)


async def _gather(fetched: Fetched, *, promo: bool, wanted_attributes: set[str], tz: Any, out: Gathered) -> None:
    """Append a fetched page's members to ``out``; lets other tasks run (the next page's queries) as it goes."""
    activity, money = fetched.activity, fetched.money
    for i, m in enumerate(fetched.members):
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        out.ids.append(m.id)
        attrs = m.attributes or {}
        out.attributes.append({k: attrs[k] for k in wanted_attributes if k in attrs})
        out.enrolled.append(local_day(m.created_at, tz).toordinal())
        a = activity.get(m.id)
        if a is None:
            out.first.append(-1)
            out.last.append(-1)
            out.active_days.append(0)
            out.frequency.append(0)
            out.eligible.append(0)
            out.returned.append(0)
        else:
            out.first.append(_ordinal(a.first))
            out.last.append(_ordinal(a.last))
            out.active_days.append(int(a.active_days))
            out.frequency.append(int(a.frequency or 0))
            out.eligible.append(int(a.eligible or 0))
            out.returned.append(int(a.returned or 0))
        s = money.get(m.id)
        out.spend_window.append(Decimal(s.spend_window or 0) if s else Decimal(0))
        out.spend_repeat.append(float(s.spend_repeat or 0) if s else 0.0)
        out.promo_days.append(int(s.promo or 0) if s and promo else 0)


def _ordinal(day: date | str) -> int:
    return (date.fromisoformat(day) if isinstance(day, str) else day).toordinal()


@cache
def _upsert(postgres: bool) -> Any:
    statement = bulk.insert(postgres, loyalty_rows, LOYALTY_COLUMNS)
    keep = {c: statement.excluded[c] for c in LOYALTY_COLUMNS if c not in ("tenant_id", "member_id")}
    return statement.on_conflict_do_update(index_elements=["tenant_id", "member_id"], set_=keep)


def _numbers(values: np.ndarray) -> list[float | None]:
    """Each value as a float, None where it is not finite (NaN: not fitted)."""
    return [v if ok else None for v, ok in zip(values.tolist(), np.isfinite(values).tolist(), strict=True)]


async def _settle(task: asyncio.Task[Any]) -> None:
    """A read-ahead or upsert task left when the run ends or fails: awaited, or cancelled when the run failed first."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def incident_tolerance(db: AsyncSession, tenant_id: uuid.UUID, since: datetime) -> dict[uuid.UUID, float]:
    """Tolerance of service incidents: of each member's complaints received since ``since``, the share after which
    the member was active again (their last activity is later than the complaint). One aggregate query; members
    without a complaint are absent (their tolerance is unknown, not zero)."""
    cases = table_of(Case)
    balances = table_of(PointBalance)
    back = func.sum(case((balances.c.last_activity_at > cases.c.opened_at, 1), else_=0))
    rows = await db.execute(
        select(cases.c.member_id, func.count().label("complaints"), back.label("back"))
        .select_from(
            cases.join(
                balances, and_(balances.c.tenant_id == cases.c.tenant_id, balances.c.member_id == cases.c.member_id)
            )
        )
        .where(
            cases.c.tenant_id == tenant_id,
            cases.c.kind == "complaint",
            cases.c.member_id.isnot(None),
            cases.c.opened_at >= since,
        )
        .group_by(cases.c.member_id)
    )
    return {r.member_id: int(r.back or 0) / int(r.complaints) for r in rows}


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    now: datetime,
    *,
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Recompute every active member's loyalty row; returns the run's summary (also stored as ``last_run``)."""
    started = time.monotonic()
    async with tenant_session(sessionmaker, tenant_id, writes=False) as db:
        program = await load_program_settings(db, tenant_id)
        config, _ = await measurement_settings.load(db, tenant_id)
        model = (
            await db.execute(
                select(MeasurementModel).where(MeasurementModel.kind == "loyalty", MeasurementModel.active.is_(True))
            )
        ).scalar_one_or_none()
        rules = (await db.execute(select(EarningRule.id, EarningRule.definition, EarningRule.campaign_id))).all()
    promo = sorted(
        f"rule:{r.id}" for r in rules if r.campaign_id is not None or (r.definition or {}).get("kind") == "multiplier"
    )
    thresholds = config.types
    wanted = {"relationship", "share_of_need", thresholds.monopoly_attribute}
    leaves: dict[str, Any] = {}
    root: ahp.Node | None = None
    if model is not None:
        root, leaves = service.tree(model)  # weighed once: scoring a member only reads it
        wanted |= {
            f.mapping.source.removeprefix("member.attributes.")
            for f in leaves.values()
            if f.mapping is not None and f.mapping.source.startswith("member.attributes.")
        }
    today = local_day(now, program.tz)
    today_n = today.toordinal()
    start = date.fromordinal(today_n - config.window_days + 1)
    eligible_end = date.fromordinal(today_n - config.return_within_days)
    async with tenant_session(sessionmaker, tenant_id, writes=False) as db:
        tolerance = await incident_tolerance(db, tenant_id, now - timedelta(days=config.window_days))
    gathered = Gathered()

    async def fetch(after: uuid.UUID | None) -> Fetched | None:
        async with tenant_session(sessionmaker, tenant_id, writes=False) as db:
            return await _fetch(
                db,
                tenant_id,
                after,
                start=start,
                eligible_end=eligible_end,
                within=config.return_within_days,
                promo=promo,
            )

    # Read ahead: the next page's queries run in the database while this page's rows are gathered here.
    reading: asyncio.Task[Fetched | None] = asyncio.create_task(fetch(None))
    try:
        while (fetched := await reading) is not None:
            reading = asyncio.create_task(fetch(fetched.members[-1].id))
            await _gather(fetched, promo=bool(promo), wanted_attributes=wanted, tz=program.tz, out=gathered)
            if between_pages is not None:
                await between_pages()
    finally:
        await _settle(reading)
    read_s = time.monotonic() - started

    g = gathered
    n = len(g.ids)
    first = np.array(g.first, dtype=np.int64)
    last = np.array(g.last, dtype=np.int64)
    active = np.array(g.active_days, dtype=np.int64)
    frequency = np.array(g.frequency, dtype=np.int64)
    ever = first >= 0
    recency = np.where(ever, today_n - last, -1)
    tenure = today_n - np.array(g.enrolled, dtype=np.int64)
    monetary = np.array([float(v) for v in g.spend_window], dtype=float)
    in_window = frequency > 0
    r_score = loyalty.quintile_scores(np.where(in_window, recency, np.nan).astype(float), higher_is_better=False)
    f_score = loyalty.quintile_scores(np.where(in_window, frequency, np.nan).astype(float))
    m_score = loyalty.quintile_scores(np.where(in_window, monetary, np.nan).astype(float))
    churned = np.where(ever, recency >= config.churn_after_days, tenure >= config.churn_after_days)
    # repeat purchases in the window: active days there after the member's first ever
    repeat = np.where(first >= start.toordinal(), np.maximum(frequency - 1, 0), frequency)

    summary: dict[str, Any] = {"computed_at": now.isoformat(), "members": n, "active_in_window": int(in_window.sum())}
    p_alive = expected = spend = np.full(n, np.nan)
    x = np.maximum(active - 1, 0).astype(float)
    t_x = np.where(ever, (last - first) / 7.0, 0.0)
    big_t = np.where(ever, (today_n - first) / 7.0, 0.0)
    if int(ever.sum()) >= MIN_FIT_MEMBERS and int((x[ever] > 0).sum()) > 0:
        try:
            bg = clv.fit_bgnbd(x[ever], t_x[ever], big_t[ever])
            p_alive = np.where(ever, bg.p_alive(x, t_x, big_t), np.nan)
            expected = np.where(ever, bg.expected_purchases(config.horizon_days / 7.0, x, t_x, big_t), np.nan)
            summary["bgnbd"] = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "log_likelihood": bg.log_likelihood}
        except ValueError as exc:
            summary["bgnbd"] = {"error": str(exc)}
        mean_repeat = np.where(x > 0, np.array(g.spend_repeat) / np.maximum(x, 1), 0.0)
        try:
            gg = clv.fit_gamma_gamma(x, mean_repeat)
            spend = np.where(ever, gg.expected_spend(x, mean_repeat), np.nan)
            summary["gamma_gamma"] = {"p": gg.p, "q": gg.q, "gamma": gg.gamma, "log_likelihood": gg.log_likelihood}
        except ValueError as exc:
            summary["gamma_gamma"] = {"error": str(exc)}
    else:
        summary["bgnbd"] = {"error": f"fewer than {MIN_FIT_MEMBERS} members with a purchase: not fitted"}
    value = expected * spend
    # The value reports' figures, stored with the summary: the values as the rows will hold them (a member's expected
    # value, none counted as 0, when any was fitted; else spend in the window).
    fitted = np.isfinite(value)
    summary["value_concentration"] = (
        reports.concentration(np.where(fitted, value, 0.0), "expected_value", config.key_member_share)
        if fitted.any()
        else reports.concentration(monetary, "monetary", config.key_member_share)
    )
    fits_s = time.monotonic() - started - read_s

    rows: list[dict[str, Any]] = []
    written = 0
    writing: asyncio.Task[None] | None = None

    async def write(batch: list[dict[str, Any]]) -> None:
        async with tenant_session(sessionmaker, tenant_id) as db:
            await db.execute(_upsert(bulk.is_postgres(db)), bulk.params(db, loyalty_rows, LOYALTY_COLUMNS, batch))

    async def flush() -> None:
        """Wait for the previous page's upsert, then start this page's: it runs while the next page is scored."""
        nonlocal written, writing
        if writing is not None:
            await writing
            writing = None
            if between_pages is not None:
                await between_pages()
        if not rows:
            return
        writing = asyncio.create_task(write(rows.copy()))
        written += len(rows)
        rows.clear()

    index_of = loyalty_index_scorer(root, leaves) if root is not None else None
    try:
        for i in range(n):
            j = i % PAGE
            if j == 0:  # Python values, a page at a time (a numpy scalar costs more than the figure it holds)
                part = slice(i, i + PAGE)
                ever_l, recency_l, tenure_l = ever[part].tolist(), recency[part].tolist(), tenure[part].tolist()
                repeat_l, frequency_l, churned_l = (
                    repeat[part].tolist(),
                    frequency[part].tolist(),
                    churned[part].tolist(),
                )
                r_l, f_l, m_l = r_score[part].tolist(), f_score[part].tolist(), m_score[part].tolist()
                p_alive_l = p_alive[part].tolist()
                p_alive_n, expected_n, spend_n, value_n = (_numbers(a[part]) for a in (p_alive, expected, spend, value))
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # lets the upsert under way go on
            attrs = g.attributes[i]
            freq = int(frequency_l[j])
            sensitivity = g.promo_days[i] / freq if freq else None
            need = loyalty.share_of_need(attrs.get("share_of_need"))
            r, f, m = int(r_l[j]), int(f_l[j]), int(m_l[j])
            tolerant = tolerance.get(g.ids[i])
            is_churned = bool(churned_l[j])
            facts = loyalty.MemberFacts(freq, r, f, m, sensitivity, need, tolerant, is_churned, attrs)
            kind, reasons = loyalty.loyalty_type(facts, thresholds)
            alive = p_alive_l[j]
            churn = None if alive != alive else 1.0 - alive  # NaN: not fitted
            row = {
                "tenant_id": tenant_id,
                "member_id": g.ids[i],
                "computed_at": now,
                "window_days": config.window_days,
                "recency_days": int(recency_l[j]) if ever_l[j] else None,
                "frequency": freq,
                "monetary": g.spend_window[i],
                "repeat_purchases": int(repeat_l[j]),
                "return_rate": g.returned[i] / g.eligible[i] if g.eligible[i] else None,
                "churned": is_churned,
                "tenure_days": int(tenure_l[j]),
                "price_sensitivity": sensitivity,
                "incident_tolerance": tolerant,
                "share_of_need": need,
                "r_score": r,
                "f_score": f,
                "m_score": m,
                "rfm_segment": loyalty.rfm_segment(r, f),
                "loyalty_type": kind,
                "type_reasons": reasons,
                "loyalty_index": None,
                "p_alive": p_alive_n[j],
                "churn_probability": churn,
                "expected_purchases": expected_n[j],
                "expected_spend": spend_n[j],
                "expected_value": value_n[j],
            }
            if index_of is not None:
                member_facts = {f"member.attributes.{k}": v for k, v in attrs.items()}
                member_facts.update({f"loyalty.{k}": row.get(k) for k in loyalty.FACT_COLUMNS})
                member_facts["loyalty.rfm_score"] = r + f + m
                row["loyalty_index"] = round(index_of(member_facts), 4)
            rows.append(row)
            if len(rows) >= PAGE:
                await flush()
        await flush()
        await flush()  # waits for the last page's upsert (no rows left to start another)
    finally:
        if writing is not None:
            await _settle(writing)
    async with tenant_session(sessionmaker, tenant_id) as db:
        await db.execute(
            delete(loyalty_rows).where(loyalty_rows.c.tenant_id == tenant_id, loyalty_rows.c.computed_at < now)
        )
        summary["seconds"] = {
            "read": round(read_s, 3),
            "fits": round(fits_s, 3),
            "total": round(time.monotonic() - started, 3),
        }
        summary["written"] = written
        await _store_summary(db, tenant_id, summary)
    log.info("loyalty_run", tenant_id=str(tenant_id), members=n, seconds=summary["seconds"]["total"])
    return summary


async def _store_summary(db: AsyncSession, tenant_id: uuid.UUID, summary: dict[str, Any]) -> None:
    dialect = postgresql if bulk.is_postgres(db) else sqlite
    statement = dialect.insert(settings_table).values(
        tenant_id=tenant_id, settings={}, last_run=summary, updated_at=utcnow()
    )
    await db.execute(
        statement.on_conflict_do_update(index_elements=["tenant_id"], set_={"last_run": statement.excluded.last_run})
    )
