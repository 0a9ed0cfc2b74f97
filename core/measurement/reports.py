"""The measurement reports: each one a summary and a list of rows, read set-based from the last loyalty run (and the
ledger, for the liability). The API answers them as JSON or CSV; charts are drawn from the same rows."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.measurement import liability as liability_report
from core.measurement.loyalty import LOYALTY_TYPES, RFM_SEGMENTS
from core.measurement.models import MemberLoyalty
from core.measurement.settings import MeasurementConfig
from core.members.models import Member
from core.program.settings import ProgramSettings
from core.tiers.models import Tier

rows_table = table_of(MemberLoyalty)
members = table_of(Member)
tiers = table_of(Tier)


@dataclass
class Report:
    name: str
    summary: dict[str, Any]
    columns: list[str]
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    tenant_id: uuid.UUID
    program: ProgramSettings
    config: MeasurementConfig
    now: datetime
    as_of: datetime | None = None
    months: int = 12
    limit: int = 100
    #: The last nightly run's summary (``measurement_settings.last_run``): its stored value concentration.
    last_run: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[AsyncSession, Request], Awaitable[Report]]


def _mine(req: Request) -> Any:
    return rows_table.c.tenant_id == req.tenant_id


def _f(value: Any, places: int = 4) -> float | None:
    return None if value is None else round(float(value), places)


async def loyalty_summary(db: AsyncSession, req: Request) -> Report:
    """Program-wide loyalty metrics: members measured, active in the window, churn rate, repeat purchase rate,
    average return rate and price sensitivity, share of each loyalty type."""
    r = rows_table.c
    row = (
        await db.execute(
            select(
                func.count().label("members"),
                func.sum(case((r.frequency > 0, 1), else_=0)).label("active"),
                func.sum(case((r.churned, 1), else_=0)).label("churned"),
                func.sum(case((r.repeat_purchases > 0, 1), else_=0)).label("repeaters"),
                func.avg(r.return_rate).label("return_rate"),
                func.avg(r.price_sensitivity).label("price_sensitivity"),
                func.avg(r.loyalty_index).label("loyalty_index"),
                func.avg(r.churn_probability).label("churn_probability"),
                func.max(r.computed_at).label("computed_at"),
            ).where(_mine(req))
        )
    ).one()
    n = int(row.members or 0)
    active = int(row.active or 0)
    summary = {
        "computed_at": row.computed_at.isoformat() if row.computed_at else None,
        "members": n,
        "active_in_window": active,
        "churn_rate": _f(int(row.churned or 0) / n) if n else None,
        "repeat_purchase_rate": _f(int(row.repeaters or 0) / active) if active else None,
        "average_return_rate": _f(row.return_rate),
        "average_price_sensitivity": _f(row.price_sensitivity),
        "average_loyalty_index": _f(row.loyalty_index, 2),
        "average_churn_probability": _f(row.churn_probability),
        "window_days": req.config.window_days,
    }
    types = await loyalty_types(db, req)
    return Report("loyalty", summary, types.columns, types.items)


async def loyalty_types(db: AsyncSession, req: Request) -> Report:
    """Members by loyalty type (benefit, trust, monopoly, kinship, inertia, latent; none)."""
    r = rows_table.c
    found = {
        row.loyalty_type: row
        for row in await db.execute(
            select(r.loyalty_type, func.count().label("members"), func.avg(r.monetary).label("monetary"))
            .where(_mine(req))
            .group_by(r.loyalty_type)
        )
    }
    total = sum(int(v.members) for v in found.values())
    items = []
    for kind in (*LOYALTY_TYPES, None):
        row = found.get(kind)
        count = int(row.members) if row else 0
        items.append(
            {
                "loyalty_type": kind or "none",
                "members": count,
                "share": _f(count / total) if total else 0.0,
                "average_monetary": _f(row.monetary, 2) if row else None,
            }
        )
    return Report("loyalty-types", {"members": total}, ["loyalty_type", "members", "share", "average_monetary"], items)


def loyalty_types_of(loyalty: Report) -> Report:
    """The loyalty-types report read off the loyalty report, whose rows are the types (one query fewer)."""
    total = sum(int(item["members"]) for item in loyalty.items)
    return Report("loyalty-types", {"members": total}, loyalty.columns, loyalty.items)


async def rfm(db: AsyncSession, req: Request) -> Report:
    """The RFM grid: members per (R, F) cell with their segment and average spend; and the segments' sizes."""
    r = rows_table.c
    grid = (
        await db.execute(
            select(
                r.r_score,
                r.f_score,
                r.rfm_segment,
                func.count().label("members"),
                func.avg(r.monetary).label("monetary"),
            )
            .where(_mine(req))
            .group_by(r.r_score, r.f_score, r.rfm_segment)
            .order_by(r.r_score.desc(), r.f_score.desc())
        )
    ).all()
    segments = dict.fromkeys(RFM_SEGMENTS, 0)
    items = []
    for row in grid:
        segments[row.rfm_segment] = segments.get(row.rfm_segment, 0) + int(row.members)
        items.append(
            {
                "r": int(row.r_score),
                "f": int(row.f_score),
                "segment": row.rfm_segment,
                "members": int(row.members),
                "average_monetary": _f(row.monetary, 2),
            }
        )
    return Report("rfm", {"segments": segments}, ["r", "f", "segment", "members", "average_monetary"], items)


_MEMBER_COLUMNS = [
    "member_id",
    "external_id",
    "rfm_segment",
    "loyalty_type",
    "churn_probability",
    "recency_days",
    "frequency",
    "monetary",
    "expected_value",
]


def _member_item(row: Any) -> dict[str, Any]:
    return {
        "member_id": str(row.member_id),
        "external_id": row.external_id,
        "rfm_segment": row.rfm_segment,
        "loyalty_type": row.loyalty_type,
        "churn_probability": _f(row.churn_probability),
        "recency_days": row.recency_days,
        "frequency": row.frequency,
        "monetary": str(row.monetary),
        "expected_value": _f(row.expected_value, 2),
    }


def _member_query(req: Request) -> Any:
    r = rows_table.c
    return select(
        r.member_id,
        members.c.external_id,
        r.rfm_segment,
        r.loyalty_type,
        r.churn_probability,
        r.recency_days,
        r.frequency,
        r.monetary,
        r.expected_value,
    ).select_from(rows_table.join(members, and_(members.c.tenant_id == r.tenant_id, members.c.id == r.member_id)))


async def churn_risk(db: AsyncSession, req: Request) -> Report:
    """The early-warning list: valuable members (by spend in the window) whose churn probability is at least the
    tenant's threshold, most valuable first."""
    r = rows_table.c
    threshold = req.config.churn_risk_min_probability
    at_risk = and_(r.churn_probability >= threshold, r.monetary > 0)
    steps = [i / 10 for i in range(11)]
    # One pass over the tenant's rows for the head figures and the curve alike.
    head = (
        await db.execute(
            select(
                func.sum(case((at_risk, 1), else_=0)).label("members"),
                func.sum(case((at_risk, r.monetary), else_=0)).label("value"),
                *(func.sum(case((r.churn_probability >= p, 1), else_=0)) for p in steps),
            ).where(_mine(req))
        )
    ).one()
    counts = head[2:]
    rows = await db.execute(
        _member_query(req)
        .where(_mine(req), at_risk)
        .order_by(r.monetary.desc(), r.churn_probability.desc())
        .limit(req.limit)
    )
    summary = {
        "min_churn_probability": threshold,
        "curve": [{"churn_probability": p, "members": int(c or 0)} for p, c in zip(steps, counts, strict=True)],
        "members_at_risk": int(head.members or 0),
        "value_at_risk": str(Decimal(head.value or 0).quantize(Decimal("0.01"))),
        "currency": req.program.currency,
    }
    return Report("churn-risk", summary, _MEMBER_COLUMNS, [_member_item(row) for row in rows])


SHARES = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def concentration(values: np.ndarray, basis: str, key_member_share: float) -> dict[str, Any]:
    """The value-concentration figures of every measured member's value: the cumulative share at each of ``SHARES``,
    the total, and the key members (the top ``key_member_share``) with their share of value. The nightly run stores
    them (it holds the values already); the reports compute them when what is stored is not fresh."""
    ordered = np.sort(values)[::-1]
    total = float(ordered.sum())
    cumulative = np.cumsum(ordered)
    n = len(ordered)
    items = []
    for share in SHARES:
        k = int(np.ceil(n * share)) if n else 0
        items.append(
            {
                "top_share_of_members": share,
                "members": k,
                "share_of_value": _f(float(cumulative[k - 1]) / total) if k and total else None,
            }
        )
    count = int(np.ceil(n * key_member_share)) if n else 0
    top = float(ordered[:count].sum()) if count else 0.0
    return {
        "basis": basis,
        "members": n,
        "total_value": total,
        "items": items,
        "key_member_share": key_member_share,
        "key_members": count,
        "key_share_of_value": _f(top / total) if total else None,
    }


async def _stored(db: AsyncSession, req: Request) -> dict[str, Any] | None:
    """The last run's stored figures when they still describe the rows: every row is of that run (none newer, from a
    run under way; none removed since) and the key-member share is the one asked for. Else None."""
    stored = req.last_run.get("value_concentration")
    if not isinstance(stored, dict) or stored.get("key_member_share") != req.config.key_member_share:
        return None
    r = rows_table.c
    found = (
        await db.execute(
            select(func.count().label("members"), func.min(r.computed_at), func.max(r.computed_at)).where(_mine(req))
        )
    ).one()
    computed_at = req.last_run.get("computed_at")
    if found.members != stored.get("members") or not isinstance(computed_at, str):
        return None
    run_at = datetime.fromisoformat(computed_at)
    return stored if all(at == run_at for at in found[1:]) or found.members == 0 else None


async def _figures(db: AsyncSession, req: Request) -> dict[str, Any]:
    """The value-concentration figures: stored by the last run if fresh, else computed from every member's value
    (expected value when the models were fitted, else spend in the window)."""
    stored = await _stored(db, req)
    if stored is not None:
        return stored
    r = rows_table.c
    fitted = (await db.execute(select(func.count()).where(_mine(req), r.expected_value.is_not(None)))).scalar_one()
    column, basis = (r.expected_value, "expected_value") if fitted else (r.monetary, "monetary")
    values = [float(v or 0) for v in (await db.execute(select(column).where(_mine(req)))).scalars()]
    return concentration(np.array(values, dtype=float), basis, req.config.key_member_share)


async def key_members(db: AsyncSession, req: Request) -> Report:
    """Key members for one-to-one service: the top ``key_member_share`` (20 %) of members by value."""
    r = rows_table.c
    figures = await _figures(db, req)
    count = int(figures["key_members"])
    column = r.expected_value if figures["basis"] == "expected_value" else r.monetary
    wanted = min(count, req.limit)
    # Most valuable first, members without a value last (by id): the valued ones read backwards by the value index.
    rows = list(
        await db.execute(
            _member_query(req).where(_mine(req), column.is_not(None)).order_by(column.desc(), r.member_id).limit(wanted)
        )
    )
    if len(rows) < wanted:
        rows += await db.execute(
            _member_query(req).where(_mine(req), column.is_(None)).order_by(r.member_id).limit(wanted - len(rows))
        )
    summary = {
        "basis": figures["basis"],
        "share_of_members": req.config.key_member_share,
        "key_members": count,
        "share_of_value": figures["key_share_of_value"],
    }
    return Report("key-members", summary, _MEMBER_COLUMNS, [_member_item(row) for row in rows])


async def value_concentration(db: AsyncSession, req: Request) -> Report:
    """What share of value the top members bring (the 80/20 rule): the cumulative share at each tenth of members."""
    figures = await _figures(db, req)
    items = [dict(i) for i in figures["items"]]
    top20 = next(i["share_of_value"] for i in items if i["top_share_of_members"] == 0.2)
    summary = {
        "basis": figures["basis"],
        "members": figures["members"],
        "total_value": round(figures["total_value"], 2),
        "top_20_percent_share": top20,
    }
    return Report("value-concentration", summary, ["top_share_of_members", "members", "share_of_value"], items)


async def tiers_report(db: AsyncSession, req: Request) -> Report:
    """Active members per tier (lowest rank first; ``none`` for members without a tier)."""
    query = (
        select(tiers.c.code, tiers.c.rank, func.count(members.c.id).label("members"))
        .select_from(
            members.outerjoin(tiers, and_(tiers.c.tenant_id == members.c.tenant_id, tiers.c.id == members.c.tier_id))
        )
        .where(members.c.tenant_id == req.tenant_id, members.c.status == "active")
        .group_by(tiers.c.code, tiers.c.rank)
    )
    found = (await db.execute(query)).all()
    total = sum(int(row.members) for row in found)
    items = [
        {"tier": row.code or "none", "rank": row.rank, "members": int(row.members), "share": _f(row.members / total)}
        for row in sorted(found, key=lambda row: (row.rank is not None, row.rank or 0))
    ]
    return Report("tiers", {"members": total}, ["tier", "rank", "members", "share"], items)


async def liability(db: AsyncSession, req: Request) -> Report:
    """Outstanding points (posted and pending) and their value, expected breakage, the liability net of it, and the
    month-by-month movement of posted points by kind (opening + movement = closing) as of ``as_of``."""
    as_of = req.as_of or req.now
    found = await liability_report.liability(
        db,
        req.tenant_id,
        as_of=as_of,
        months=req.months,
        tz=req.program.tz,
        currency=req.program.currency,
        point_value=req.config.point_value,
        breakage_rate=req.config.breakage_rate,
    )
    outstanding = found.outstanding
    breakage = found.expected_breakage_points
    summary = {
        "as_of": as_of.isoformat(),
        "currency": found.currency,
        "point_value": str(found.point_value),
        "posted_points": found.posted,
        "pending_points": found.pending,
        "outstanding_points": outstanding,
        "outstanding_value": str(found.value(outstanding)),
        "breakage_rate": _f(found.breakage_rate),
        "breakage_source": found.breakage_source,
        "expected_breakage_points": breakage,
        "net_liability_points": outstanding - breakage,
        "net_liability_value": str(found.value(outstanding - breakage)),
        "cohorts": [c.__dict__ for c in found.cohorts],
    }
    columns = ["month", "opening", *liability_report.KINDS, "closing", "closing_value"]
    items = [
        {
            "month": m.month,
            "opening": m.opening,
            **m.by_kind,
            "closing": m.closing,
            "closing_value": str(found.value(m.closing)),
        }
        for m in found.movement
    ]
    return Report("liability", summary, columns, items)


REPORTS: dict[str, Builder] = {
    "loyalty": loyalty_summary,
    "loyalty-types": loyalty_types,
    "rfm": rfm,
    "churn-risk": churn_risk,
    "key-members": key_members,
    "value-concentration": value_concentration,
    "tiers": tiers_report,
    "liability": liability,
}
