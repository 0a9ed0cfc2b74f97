"""HTTP: a member's balance and ledger, and admin adjustments."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta
from sqlalchemy import select

from core.clock import utcnow
from core.errors import ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentProgram, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.ledger import queries, service
from core.ledger.models import LedgerEntry
from core.members.service import ensure_active, get_member
from core.outbox.service import emit

MAX_POINTS = 10**12


class Lifetime(msgspec.Struct):
    earned: int
    redeemed: int
    expired: int
    adjusted: int
    written_off: int


class Expiring(msgspec.Struct):
    #: The last day (program time zone) these points can be used.
    date: date
    points: int


class BalanceOut(msgspec.Struct):
    member_id: FromPath[uuid.UUID]
    points_name: str
    available: int
    pending: int
    lifetime: Lifetime
    expiring: list[Expiring]
    last_activity_at: datetime | None
    as_of: datetime


class EntryOut(msgspec.Struct):
    id: uuid.UUID
    member_id: FromPath[uuid.UUID]
    kind: str
    points: int
    status: str
    cause: dict[str, Any]
    reason: str | None
    reverses_entry_id: uuid.UUID | None
    created_at: datetime
    available_at: datetime | None
    expires_at: datetime | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: Any) -> EntryOut:
        return cls(
            id=e.id,
            member_id=e.member_id,
            kind=e.kind,
            points=e.points,
            status=e.status,
            cause={"type": e.cause_type, "id": e.cause_id, "actor": e.actor},
            reason=e.reason,
            reverses_entry_id=e.reverses_entry_id,
            created_at=e.created_at,
            available_at=e.available_at,
            expires_at=e.expires_at,
            details=e.details or {},
        )


class AdjustIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Positive credits, negative debits (a debit never overdraws the balance).
    points: Annotated[int, Meta(ge=-MAX_POINTS, le=MAX_POINTS)]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    #: A credit that becomes available later (pending until then).
    available_at: datetime | None = None
    #: Overrides the program's expiry policy for this credit.
    expires_at: datetime | None = None


class AdjustOut(msgspec.Struct):
    entry: EntryOut
    available: int
    pending: int


async def balance_out(
    db: Db, tenant_id: FromPath[uuid.UUID], member_id: FromPath[uuid.UUID], program: CurrentProgram, within_days: int
) -> BalanceOut:
    now = utcnow()
    row = await queries.balance_row(db, tenant_id, member_id)
    soon = await queries.expiring(db, tenant_id, member_id, row, program, now + timedelta(days=within_days))
    return BalanceOut(
        member_id=member_id,
        points_name=program.points_name,
        available=row.available,
        pending=row.pending,
        lifetime=Lifetime(
            row.lifetime_earned,
            row.lifetime_redeemed,
            row.lifetime_expired,
            row.lifetime_adjusted,
            row.lifetime_written_off,
        ),
        expiring=[Expiring(d, p) for d, p in soon],
        last_activity_at=row.last_activity_at,
        as_of=now,
    )


class LedgerController(Controller):
    path = "/v1/members/{member_id:uuid}"
    tags = ["ledger"]

    @get("/balance", operation_id="getBalance", opt={"scope": "members:read"})
    async def balance(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        member_id: FromPath[uuid.UUID],
        expiring_within_days: FromQuery[Annotated[int, Meta(ge=0, le=3660)]] = 90,
    ) -> BalanceOut:
        """Available and pending points, lifetime totals, and what expires within the window, by date."""
        assert principal.tenant_id is not None
        return await balance_out(db, principal.tenant_id, member_id, program, expiring_within_days)

    @get("/ledger", operation_id="getLedger", opt={"scope": "members:read"})
    async def ledger(
        self,
        db: Db,
        member_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        kind: FromQuery[Literal["earn", "redeem", "expire", "adjust", "reverse", "transfer"] | None] = None,
        created_after: FromQuery[datetime | None] = None,
        created_before: FromQuery[datetime | None] = None,
    ) -> Page[EntryOut]:
        """Entries with their cause, newest first."""
        check_limit(limit)
        await get_member(db, member_id)
        query = (
            select(LedgerEntry)
            .where(LedgerEntry.member_id == member_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(LedgerEntry.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        if kind:
            query = query.where(LedgerEntry.kind == kind)
        if created_after:
            query = query.where(LedgerEntry.created_at >= created_after)
        if created_before:
            query = query.where(LedgerEntry.created_at < created_before)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda e: encode_cursor(e.id))
        return Page([EntryOut.of(e) for e in items], next_cursor)

    @post("/points/adjust", operation_id="adjustPoints", opt={"scope": "admin"})
    async def adjust(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[AdjustIn],
    ) -> AdjustOut:
        """Credit (positive) or debit (negative) points by hand, with a reason. Debits never overdraw."""
        assert principal.tenant_id is not None
        if data.points == 0:
            raise ValidationFailed("points must not be zero: positive to credit, negative to debit.", field="points")
        now = utcnow()
        if data.expires_at is not None and data.expires_at <= now:
            raise ValidationFailed("expires_at must be in the future.", field="expires_at")
        if data.points < 0 and (data.available_at or data.expires_at):
            raise ValidationFailed("available_at and expires_at apply to credits only.", field="available_at")
        member = await get_member(db, member_id)
        ensure_active(member)
        cause = service.Cause("admin", reason=data.reason, actor=principal.actor)
        if data.points > 0:
            posted = await service.credit(
                db,
                tenant_id=principal.tenant_id,
                member_id=member_id,
                points=data.points,
                kind="adjust",
                cause=cause,
                policy=program.ledger_policy,
                now=now,
                available_at=data.available_at,
                expires_at=data.expires_at,
            )
        else:
            posted = await service.debit(
                db,
                tenant_id=principal.tenant_id,
                member_id=member_id,
                points=-data.points,
                kind="adjust",
                cause=cause,
                now=now,
            )
        entry = (await db.execute(select(LedgerEntry).where(LedgerEntry.id == posted.entry_id))).scalar_one()
        await emit(
            db,
            principal.tenant_id,
            "points.adjusted",
            {
                "member_id": str(member_id),
                "points": data.points,
                "reason": data.reason,
                "entry_id": str(entry.id),
                "available": posted.available,
            },
            member_id,
        )
        return AdjustOut(EntryOut.of(entry), posted.available, posted.pending)
