"""Core's occasions, found by the worker: set-based, page by page, in each member's own time zone.

For each active rule of a core trigger, one indexed query per page of candidates (keyset pagination on a unique
column, one short transaction per page, so memory stays flat however many members a tenant has); the few candidates
a calendar window over-selects (a birthday today in UTC may be tomorrow in Auckland) are filtered in Python by the
member's local day. Every occasion has a stable key (``birthday:<member>:<year>``...), so running again (every few
minutes, or two workers at once) finds the same occasions and makes no second message.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, extract, func, or_, select

from core.care.calendar import holidays_in
from core.care.messages import (
    OccasionIn,
    Raised,
    RuleView,
    active_rules,
    load_program,
    load_queuing,
    raise_occasions,
)
from core.db.base import table_of
from core.db.engine import tenant_session
from core.events.models import Event
from core.ledger.models import Lot, PointBalance
from core.members.models import Member
from core.program.settings import ProgramSettings
from core.rewards.models import Redemption, Reward
from core.runtime import Runtime
from core.tiers.models import Tier, TierChange

members = table_of(Member)
balances = table_of(PointBalance)
lots = table_of(Lot)
redemptions = table_of(Redemption)
rewards = table_of(Reward)
tier_changes = table_of(TierChange)
tiers = table_of(Tier)
events = table_of(Event)

#: Candidates per page (one transaction each).
PAGE = 2000
#: How far back occasions of moments (an enrolment, a tier change) are looked for: a worker down for a day still
#: finds them, and a new rule does not greet every member enrolled years ago.
RECENT = timedelta(days=2)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def yearly(on: date, year: int) -> date:
    """``on``'s day in ``year`` (29 February is kept on the 28th in other years)."""
    try:
        return on.replace(year=year)
    except ValueError:
        return on.replace(year=year, day=28)


@dataclass(frozen=True)
class Scan:
    """What a trigger's page query needs."""

    tenant_id: uuid.UUID
    rule: RuleView
    program: ProgramSettings
    now: datetime

    @property
    def tz(self) -> ZoneInfo:
        return self.program.tz

    def zone(self, name: str | None) -> ZoneInfo:
        return ZoneInfo(name) if name else self.program.tz

    def days(self) -> int:
        return int(self.rule.params.get("days") or 0)


Page = tuple[list[OccasionIn], Any]
Scanner = Callable[[Any, Scan, Any], Awaitable[Page]]


def _page(query: Select[Any], key: Any, after: Any) -> Select[Any]:
    if after is not None:
        query = query.where(key > after)
    return query.order_by(key).limit(PAGE)


def _next(rows: list[Any], key: str) -> Any:
    return getattr(rows[-1], key) if len(rows) == PAGE else None


def _month_days(now: datetime, spread: int) -> Any:
    days = {(now + timedelta(days=d)).date() for d in range(-spread, spread + 1)}
    if any(d.month == 2 and d.day == 28 for d in days):
        days.add(date(2000, 2, 29))
    return days


async def _welcome(session: Any, scan: Scan, after: Any) -> Page:
    query = select(members.c.id, members.c.created_at).where(
        members.c.tenant_id == scan.tenant_id, members.c.status == "active", members.c.created_at >= scan.now - RECENT
    )
    rows = (await session.execute(_page(query, members.c.id, after))).all()
    return [OccasionIn("welcome", f"welcome:{r.id}", r.id, r.created_at) for r in rows], _next(rows, "id")


async def _birthday(session: Any, scan: Scan, after: Any) -> Page:
    candidates = _month_days(scan.now, 1)
    on_day = or_(
        *(
            and_(extract("month", members.c.birthday) == d.month, extract("day", members.c.birthday) == d.day)
            for d in candidates
        )
    )
    query = select(members.c.id, members.c.birthday, members.c.timezone, members.c.created_at).where(
        members.c.tenant_id == scan.tenant_id, members.c.status == "active", members.c.birthday.is_not(None), on_day
    )
    rows = (await session.execute(_page(query, members.c.id, after))).all()
    found = []
    min_days = int(scan.rule.params.get("min_member_days") or 0)
    for r in rows:
        zone = scan.zone(r.timezone)
        today = scan.now.astimezone(zone).date()
        if yearly(r.birthday, today.year) != today:
            continue
        start = local_midnight(today, zone)
        if min_days and r.created_at > start - timedelta(days=min_days):
            continue
        found.append(
            OccasionIn("birthday", f"birthday:{r.id}:{today.year}", r.id, start, {"age": today.year - r.birthday.year})
        )
    return found, _next(rows, "id")


async def _anniversary(session: Any, scan: Scan, after: Any) -> Page:
    candidates = _month_days(scan.now, 2)
    on_day = or_(
        *(
            and_(extract("month", members.c.created_at) == d.month, extract("day", members.c.created_at) == d.day)
            for d in candidates
        )
    )
    query = select(members.c.id, members.c.timezone, members.c.created_at).where(
        members.c.tenant_id == scan.tenant_id,
        members.c.status == "active",
        members.c.created_at < scan.now - timedelta(days=300),
        on_day,
    )
    rows = (await session.execute(_page(query, members.c.id, after))).all()
    found = []
    for r in rows:
        zone = scan.zone(r.timezone)
        today = scan.now.astimezone(zone).date()
        enrolled = r.created_at.astimezone(zone).date()
        years = today.year - enrolled.year
        if years < 1 or yearly(enrolled, today.year) != today:
            continue
        key = f"anniversary:{r.id}:{today.year}"
        found.append(OccasionIn("anniversary", key, r.id, local_midnight(today, zone), {"years": years}))
    return found, _next(rows, "id")


async def _holiday(session: Any, scan: Scan, after: Any) -> Page:
    around = {(scan.now + timedelta(days=d)).date() for d in (-1, 0, 1)}
    days = {
        h.day: h.name
        for h in await holidays_in(session, scan.tenant_id, {d.year for d in around}, scan.program.country)
        if h.day in around
    }
    if not days:
        return [], None
    query = select(members.c.id, members.c.timezone).where(
        members.c.tenant_id == scan.tenant_id, members.c.status == "active"
    )
    rows = (await session.execute(_page(query, members.c.id, after))).all()
    found = []
    for r in rows:
        zone = scan.zone(r.timezone)
        today = scan.now.astimezone(zone).date()
        if today in days:
            variables = {"holiday_name": days[today], "holiday_date": today.isoformat()}
            key = f"holiday:{r.id}:{today.isoformat()}"
            found.append(OccasionIn("holiday", key, r.id, local_midnight(today, zone), variables))
    return found, _next(rows, "id")


async def _tier_changed(session: Any, scan: Scan, after: Any) -> Page:
    query = select(
        tier_changes.c.id,
        tier_changes.c.member_id,
        tier_changes.c.changed_at,
        tier_changes.c.from_tier_id,
        tier_changes.c.to_tier_id,
    ).where(
        tier_changes.c.tenant_id == scan.tenant_id,
        tier_changes.c.changed_at >= scan.now - RECENT,
        # A renewal is no change; the entry tier given at enrolment is the welcome's business.
        tier_changes.c.reason.not_like("%renewal"),
        tier_changes.c.reason.not_like("%enrolment"),
    )
    rows = (await session.execute(_page(query, tier_changes.c.id, after))).all()
    if not rows:
        return [], None
    # The tenant's tiers (a handful): code and rank by id.
    ranks = {
        t.id: (t.code, t.rank)
        for t in (
            await session.execute(
                select(tiers.c.id, tiers.c.code, tiers.c.rank).where(tiers.c.tenant_id == scan.tenant_id)
            )
        ).all()
    }
    wanted = scan.rule.params.get("direction", "any")
    found = []
    for r in rows:
        old_code, old_rank = ranks.get(r.from_tier_id, (None, None))
        new_code, new_rank = ranks.get(r.to_tier_id, (None, None))
        if old_code == new_code:
            continue
        up = new_rank is not None and (old_rank is None or new_rank > old_rank)
        direction = "up" if up else "down"
        if wanted not in ("any", direction):
            continue
        variables = {"old_tier": old_code, "new_tier": new_code, "direction": direction}
        found.append(OccasionIn("tier_changed", f"tier_changed:{r.id}", r.member_id, r.changed_at, variables))
    return found, _next(rows, "id")


async def _tier_at_risk(session: Any, scan: Scan, after: Any) -> Page:
    query = (
        select(members.c.id, members.c.tier_valid_until, tiers.c.code)
        .join(tiers, and_(tiers.c.tenant_id == members.c.tenant_id, tiers.c.id == members.c.tier_id))
        .where(
            members.c.tenant_id == scan.tenant_id,
            members.c.status == "active",
            members.c.tier_valid_until > scan.now,
            members.c.tier_valid_until <= scan.now + timedelta(days=scan.days()),
        )
    )
    rows = (await session.execute(_page(query, members.c.id, after))).all()
    found = []
    for r in rows:
        until: datetime = r.tier_valid_until
        variables = {"tier": r.code, "valid_until": until.isoformat(), "days_left": (until - scan.now).days}
        key = f"tier_at_risk:{r.id}:{until.date().isoformat()}"
        found.append(OccasionIn("tier_at_risk", key, r.id, scan.now, variables))
    return found, _next(rows, "id")


async def _points_expiring(session: Any, scan: Scan, after: Any) -> Page:
    first = func.min(lots.c.expires_at)
    query = (
        select(lots.c.member_id, func.sum(lots.c.remaining).label("points"), first.label("expires_at"))
        .where(
            lots.c.tenant_id == scan.tenant_id,
            lots.c.status == "posted",
            lots.c.remaining > 0,
            lots.c.expires_at > scan.now,
            lots.c.expires_at <= scan.now + timedelta(days=scan.days()),
        )
        .group_by(lots.c.member_id)
    )
    rows = (await session.execute(_page(query, lots.c.member_id, after))).all()
    found = []
    for r in rows:
        expires: datetime = r.expires_at
        variables = {"points": int(r.points), "expires_at": expires.isoformat()}
        key = f"points_expiring:{r.member_id}:{expires.date().isoformat()}"
        found.append(OccasionIn("points_expiring", key, r.member_id, scan.now, variables))
    return found, _next(rows, "member_id")


async def _voucher_expiring(session: Any, scan: Scan, after: Any) -> Page:
    query = (
        select(
            redemptions.c.id,
            redemptions.c.member_id,
            redemptions.c.voucher_code,
            redemptions.c.expires_at,
            rewards.c.name,
        )
        .join(rewards, and_(rewards.c.tenant_id == redemptions.c.tenant_id, rewards.c.id == redemptions.c.reward_id))
        .where(
            redemptions.c.tenant_id == scan.tenant_id,
            redemptions.c.status == "issued",
            redemptions.c.expires_at > scan.now,
            redemptions.c.expires_at <= scan.now + timedelta(days=scan.days()),
        )
    )
    rows = (await session.execute(_page(query, redemptions.c.id, after))).all()
    found = [
        OccasionIn(
            "voucher_expiring",
            f"voucher_expiring:{r.id}",
            r.member_id,
            scan.now,
            {"voucher_code": r.voucher_code, "reward_name": r.name, "expires_at": r.expires_at.isoformat()},
        )
        for r in rows
    ]
    return found, _next(rows, "id")


async def _lapsing(session: Any, scan: Scan, after: Any) -> Page:
    lapse_start = scan.now - timedelta(days=scan.days())
    query = (
        select(balances.c.member_id, balances.c.last_activity_at)
        .join(members, and_(members.c.tenant_id == balances.c.tenant_id, members.c.id == balances.c.member_id))
        .where(
            balances.c.tenant_id == scan.tenant_id,
            members.c.status == "active",
            balances.c.last_activity_at <= lapse_start,
            balances.c.last_activity_at > lapse_start - timedelta(days=7),
        )
    )
    rows = (await session.execute(_page(query, balances.c.member_id, after))).all()
    found = []
    for r in rows:
        last: datetime = r.last_activity_at
        variables = {"days_inactive": (scan.now - last).days, "last_activity_at": last.isoformat()}
        key = f"lapsing:{r.member_id}:{last.date().isoformat()}"
        found.append(OccasionIn("lapsing", key, r.member_id, scan.now, variables))
    return found, _next(rows, "member_id")


async def _event_follow_up(session: Any, scan: Scan, after: Any) -> Page:
    due = scan.now - timedelta(days=scan.days())
    event_type = str(scan.rule.params.get("event_type"))
    query = select(events.c.id, events.c.event_id, events.c.member_id, events.c.occurred_at, events.c.amount).where(
        events.c.tenant_id == scan.tenant_id,
        events.c.type == event_type,
        events.c.status == "awarded",
        events.c.occurred_at <= due,
        events.c.occurred_at > due - RECENT,
    )
    rows = (await session.execute(_page(query, events.c.id, after))).all()
    found = [
        OccasionIn(
            "event_follow_up",
            f"event_follow_up:{r.id}:{scan.days()}",
            r.member_id,
            r.occurred_at,
            {
                "event_type": event_type,
                "event_id": r.event_id,
                "occurred_at": r.occurred_at.isoformat(),
                "amount": str(r.amount) if r.amount is not None else None,
            },
        )
        for r in rows
    ]
    return found, _next(rows, "id")


SCANNERS: dict[str, Scanner] = {
    "welcome": _welcome,
    "birthday": _birthday,
    "anniversary": _anniversary,
    "holiday": _holiday,
    "tier_changed": _tier_changed,
    "tier_at_risk": _tier_at_risk,
    "points_expiring": _points_expiring,
    "voucher_expiring": _voucher_expiring,
    "lapsing": _lapsing,
    "event_follow_up": _event_follow_up,
}


async def evaluate(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    now: datetime,
    *,
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> Raised:
    """Find every core occasion due now for the tenant's active rules and queue their messages."""
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        rules = await active_rules(session, tenant_id, list(SCANNERS))
        if not rules:
            return Raised()
        program = await load_program(session, tenant_id)
        queuing = await load_queuing(session, tenant_id, program, now)
    total = Raised()
    for rule in rules:
        scan = Scan(tenant_id, rule, program, now)
        after: Any = None
        while True:
            async with tenant_session(runtime.sessionmaker, tenant_id) as session:
                found, after = await SCANNERS[rule.trigger](session, scan, after)
                raised = await raise_occasions(
                    session, tenant_id, found, program=program, rules=[rule], now=now, queuing=queuing
                )
            total.occasions += raised.occasions
            total.messages += raised.messages
            if after is None:
                break
            if between_pages is not None:
                await between_pages()
    return total
