"""Peak-time events: announced the day before through care; after the event, each account in scope that used less
than its baseline earns a rebate per kWh saved, once per event and account.

Baseline (stated): the mean of the highest ``baseline_top`` (3) of the last ``baseline_days`` (10) similar days —
weekdays for a weekday event, weekend days for a weekend event — over the event's same local hours, from the
account's interval reads; an account with fewer than ``baseline_top`` such days with reads gets no rebate (no
baseline)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from msgspec import Meta
from sqlalchemy import and_, or_, select, update

from core import (
    AwareDatetime,
    CareAsk,
    Conflict,
    CurrentTenant,
    Db,
    NotFound,
    Page,
    TenantView,
    ValidationFailed,
    credit_points,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    new_id,
    page_of,
    request_care_many,
    table_of,
    utcnow,
)
from plugins.utility import rules
from plugins.utility.models import UtilityAccount, UtilityMeterRead, UtilityPeakEvent, UtilityPeakRebate
from plugins.utility.outages import CHUNK, _insert, settings_of

events = table_of(UtilityPeakEvent)
rebates = table_of(UtilityPeakRebate)
accounts = table_of(UtilityAccount)
reads = table_of(UtilityMeterRead)
Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")]
Limit = Annotated[int, Parameter(ge=1, le=500)]


class PeakEventIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=120)]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    #: The accounts in scope: on these feeders or areas (both empty: every active account).
    feeders: Annotated[list[Code], Meta(max_length=500)] = msgspec.field(default_factory=list)
    areas: Annotated[list[Code], Meta(max_length=500)] = msgspec.field(default_factory=list)
    #: Rebate per kWh saved, in the tenant's currency, paid as points (default: ``peak_rebate_per_kwh``), as a
    #: decimal string.
    rate_per_kwh: Annotated[str, Meta(pattern=r"^\d{1,4}(\.\d{1,4})?$")] | None = None


class PeakEventOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    feeders: list[str]
    areas: list[str]
    rate_per_kwh: Decimal
    status: str
    created_at: datetime
    settled_at: datetime | None
    #: Accounts told by this request (announcement), or paid (settlement).
    told: int = 0
    rebates: int = 0


class RebateOut(msgspec.Struct):
    account_id: uuid.UUID
    member_id: uuid.UUID
    baseline_kwh: Decimal | None
    event_kwh: Decimal
    saved_kwh: Decimal
    amount: Decimal
    points: int


def _out(e: Any, told: int = 0, paid: int = 0) -> PeakEventOut:
    return PeakEventOut(
        e.id,
        e.name,
        e.starts_at,
        e.ends_at,
        list(e.feeders or []),
        list(e.areas or []),
        Decimal(e.rate_per_kwh),
        e.status,
        e.created_at,
        e.settled_at,
        told,
        paid,
    )


def _scope(e: Any) -> list[Any]:
    place = []
    if e.feeders:
        place.append(accounts.c.feeder.in_(list(e.feeders)))
    if e.areas:
        place.append(accounts.c.area.in_(list(e.areas)))
    return [or_(*place)] if place else []


async def _event(db: Any, tenant_id: uuid.UUID, event_id: uuid.UUID, *, lock: bool = False) -> Any:
    query = select(events).where(events.c.tenant_id == tenant_id, events.c.id == event_id)
    if lock:
        query = query.with_for_update()
    row = (await db.execute(query)).first()
    if row is None:
        raise NotFound("No such peak event.", field="peak_event_id")
    return row


async def announce(session: Any, tenant: TenantView, event: Any, now: datetime) -> int:
    """``utility.peak_event`` to every active account in scope (once per event and account: the occasion key)."""
    a = accounts
    rows = (
        await session.execute(
            select(a.c.id, a.c.member_id, a.c.account_number).where(
                a.c.tenant_id == tenant.id, a.c.status == "active", *_scope(event)
            )
        )
    ).all()
    variables = {
        "peak_event_id": str(event.id),
        "name": event.name,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "rate_per_kwh": str(event.rate_per_kwh),
    }
    told = 0
    for start in range(0, len(rows), CHUNK):
        asks = [
            CareAsk(r.member_id, f"utility:peak:{event.id}:{r.id}", variables | {"account_number": r.account_number})
            for r in rows[start : start + CHUNK]
        ]
        told += len(
            await request_care_many(
                session,
                tenant_id=tenant.id,
                kind="utility.peak_event",
                purpose="service",
                source="utility",
                asks=asks,
                now=now,
            )
        )
    return told


async def announce_due(session: Any, tenant: TenantView, now: datetime) -> int:
    """Announce the scheduled events whose notice moment (``peak_notice_days`` before) has come."""
    settings = settings_of(tenant)
    zone = ZoneInfo(tenant.timezone)
    soon = (
        await session.execute(
            select(events).where(
                events.c.tenant_id == tenant.id,
                events.c.status == "scheduled",
                events.c.starts_at > now,
                events.c.starts_at <= now + timedelta(days=settings.peak_notice_days + 1),
            )
        )
    ).all()
    due = [e for e in soon if now >= rules.announce_at(e.starts_at, settings.peak_notice_days, zone)]
    return sum([await announce(session, tenant, e, now) for e in due])


async def settle(session: Any, tenant: TenantView, event: Any, now: datetime) -> int:
    """Each account's baseline and use during the event, its rebate (once: the key), paid as points."""
    settings = settings_of(tenant)
    zone = ZoneInfo(tenant.timezone)
    start_local = event.starts_at.astimezone(zone)
    days = rules.similar_days(start_local.date(), settings.baseline_days)
    length = event.ends_at - event.starts_at

    def window(day: Any) -> tuple[datetime, datetime]:
        begin = datetime.combine(day, start_local.timetz().replace(tzinfo=None), tzinfo=zone)
        return begin, begin + length

    windows = {day: window(day) for day in days}
    earliest = min(w[0] for w in windows.values())
    a = accounts
    in_scope = (
        await session.execute(
            select(a.c.id, a.c.member_id).where(a.c.tenant_id == tenant.id, a.c.status == "active", *_scope(event))
        )
    ).all()
    members = {r.id: r.member_id for r in in_scope}
    usage: dict[uuid.UUID, dict[Any, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    during: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    ids = list(members)
    for start in range(0, len(ids), CHUNK):
        found = (
            await session.execute(
                select(reads.c.account_id, reads.c.starts_at, reads.c.kwh).where(
                    reads.c.tenant_id == tenant.id,
                    reads.c.account_id.in_(ids[start : start + CHUNK]),
                    reads.c.starts_at >= earliest.astimezone(event.starts_at.tzinfo),
                    reads.c.starts_at < event.ends_at,
                )
            )
        ).all()
        for account_id, at, kwh in found:
            if event.starts_at <= at < event.ends_at:
                during[account_id] += Decimal(kwh)
                continue
            local = at.astimezone(zone)
            begin, finish = windows.get(local.date(), (None, None))
            if begin is not None and finish is not None and begin <= local < finish:
                usage[account_id][local.date()] += Decimal(kwh)
    rows = []
    for account_id, member_id in members.items():
        base = rules.baseline(dict(usage.get(account_id, {})), days, settings.baseline_top)
        saved, amount = rules.peak_rebate(
            base, during.get(account_id, Decimal(0)), Decimal(event.rate_per_kwh), tenant.currency
        )
        rows.append(
            {
                "tenant_id": tenant.id,
                "peak_event_id": event.id,
                "account_id": account_id,
                "member_id": member_id,
                "baseline_kwh": base,
                "event_kwh": during.get(account_id, Decimal(0)),
                "saved_kwh": saved,
                "amount": amount,
                "points": rules.points_for(amount, settings),
                "created_at": now,
            }
        )
    statement = (
        _insert(session, rebates)
        .on_conflict_do_nothing(index_elements=["tenant_id", "peak_event_id", "account_id"])
        .returning(rebates.c.account_id, rebates.c.member_id, rebates.c.points, rebates.c.amount)
    )
    paid = 0
    for start in range(0, len(rows), CHUNK):
        for r in (await session.execute(statement, rows[start : start + CHUNK])).all():
            if r.points > 0:
                await credit_points(
                    session,
                    tenant_id=tenant.id,
                    member_id=r.member_id,
                    points=r.points,
                    plugin="utility",
                    reason=f"Peak-time rebate: {event.name}",
                    reference=f"utility:peak:{event.id}:{r.account_id}",
                    details={"amount": str(r.amount), "peak_event_id": str(event.id)},
                    now=now,
                )
                paid += 1
    await session.execute(
        update(events)
        .where(events.c.tenant_id == tenant.id, events.c.id == event.id)
        .values(status="settled", settled_at=now)
    )
    return paid


class PeakEventsController(Controller):
    path = "/peak-events"

    @post(operation_id="utilityCreatePeakEvent", opt={"scope": "admin"})
    async def create(self, db: Db, tenant_view: CurrentTenant, data: JSONBody[PeakEventIn]) -> PeakEventOut:
        """A peak-time event (at most 12 hours, in the future), announced from the start of the local day
        ``peak_notice_days`` before its day (at once when that moment has passed)."""
        settings, now = settings_of(tenant_view), utcnow()
        if data.starts_at <= now:
            raise ValidationFailed("A peak event starts in the future.", field="starts_at")
        if data.ends_at <= data.starts_at or data.ends_at - data.starts_at > timedelta(hours=12):
            raise ValidationFailed("A peak event ends after it starts, within 12 hours.", field="ends_at")
        rate = Decimal(data.rate_per_kwh) if data.rate_per_kwh is not None else settings.peak_rebate_per_kwh
        event_id = new_id()
        await db.execute(
            _insert(db, events).values(
                tenant_id=tenant_view.id,
                id=event_id,
                name=data.name,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                feeders=sorted(set(data.feeders)),
                areas=sorted(set(data.areas)),
                rate_per_kwh=rate,
                status="scheduled",
                created_at=now,
                settled_at=None,
            )
        )
        event = await _event(db, tenant_view.id, event_id)
        told = 0
        if now >= rules.announce_at(data.starts_at, settings.peak_notice_days, ZoneInfo(tenant_view.timezone)):
            told = await announce(db, tenant_view, event, now)
        return _out(event, told)

    @get(operation_id="utilityListPeakEvents", opt={"scope": "members:read"})
    async def list_events(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        status: FromQuery[Literal["scheduled", "settled", "cancelled"] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[PeakEventOut]:
        query = select(events).where(events.c.tenant_id == tenant_view.id).order_by(events.c.id.desc()).limit(limit + 1)
        if status:
            query = query.where(events.c.status == status)
        if cursor:
            query = query.where(events.c.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([_out(r) for r in items], next_cursor)

    @get("/{peak_event_id:uuid}", operation_id="utilityGetPeakEvent", opt={"scope": "members:read"})
    async def get_event(self, db: Db, tenant_view: CurrentTenant, peak_event_id: FromPath[uuid.UUID]) -> PeakEventOut:
        return _out(await _event(db, tenant_view.id, peak_event_id))

    @post(
        "/{peak_event_id:uuid}/settle", operation_id="utilitySettlePeakEvent", opt={"scope": "admin"}, status_code=200
    )
    async def settle_event(
        self, db: Db, tenant_view: CurrentTenant, peak_event_id: FromPath[uuid.UUID]
    ) -> PeakEventOut:
        """After the event (and its reads), each account's rebate against its baseline, paid once as points."""
        now = utcnow()
        event = await _event(db, tenant_view.id, peak_event_id, lock=True)
        if event.status == "settled":
            return _out(event)
        if now < event.ends_at:
            raise Conflict("The event has not ended yet.", field="peak_event_id")
        paid = await settle(db, tenant_view, event, now)
        return _out(await _event(db, tenant_view.id, peak_event_id), 0, paid)

    @get("/{peak_event_id:uuid}/rebates", operation_id="utilityListPeakRebates", opt={"scope": "members:read"})
    async def list_rebates(
        self,
        db: Db,
        tenant_view: CurrentTenant,
        peak_event_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[RebateOut]:
        await _event(db, tenant_view.id, peak_event_id)
        r = rebates
        query = (
            select(r)
            .where(and_(r.c.tenant_id == tenant_view.id, r.c.peak_event_id == peak_event_id))
            .order_by(r.c.account_id)
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(r.c.account_id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda x: encode_cursor(x.account_id))
        return Page(
            [
                RebateOut(
                    x.account_id,
                    x.member_id,
                    Decimal(x.baseline_kwh) if x.baseline_kwh is not None else None,
                    Decimal(x.event_kwh),
                    Decimal(x.saved_kwh),
                    Decimal(x.amount),
                    x.points,
                )
                for x in items
            ],
            next_cursor,
        )


ROUTES: list[Any] = [PeakEventsController]
