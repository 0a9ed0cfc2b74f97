"""HTTP: a member's balance and ledger, and admin adjustments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta
from sqlalchemy import select

from core.billing.usage import record_activity
from core.clock import utcnow
from core.errors import FealtyError, NotFound, ValidationFailed
from core.http.auth import Principal
from core.http.deps import CurrentPrincipal, CurrentProgram, Db
from core.http.group_commit import Answer
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.ledger import queries, service
from core.ledger.models import LedgerEntry
from core.ledger.policy import expiry_of, policy_of
from core.members.service import ensure_active, get_member
from core.outbox.service import emit
from core.program.settings import ProgramSettings
from core.runtime import Runtime
from core.validation import AwareDatetime

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
    available_at: AwareDatetime | None = None
    #: Overrides the program's expiry policy for this credit.
    expires_at: AwareDatetime | None = None


class AdjustOut(msgspec.Struct):
    entry: EntryOut
    available: int
    pending: int


async def balances_out(
    db: Db, tenant_id: uuid.UUID, program: ProgramSettings, wanted: Sequence[tuple[uuid.UUID, int]]
) -> list[BalanceOut | FealtyError]:
    """The balances of ``(member_id, expiring_within_days)`` pairs (one request's, or a group's): two queries
    whatever their number."""
    now = utcnow()
    ids = sorted({member_id for member_id, _ in wanted})
    rows = await queries.balances_of(db, tenant_id, ids)
    lots: dict[uuid.UUID, list[tuple[datetime, int]]] = {}
    if rows and expiry_of(program).kind != "inactivity":
        horizon = now + timedelta(days=max(days for _, days in wanted))
        lots = await queries.expiring_lots(db, tenant_id, sorted(rows), horizon)
    out: list[BalanceOut | FealtyError] = []
    for member_id, days in wanted:
        row = rows.get(member_id)
        if row is None:
            out.append(NotFound("No such member.", field="member_id"))
            continue
        soon = queries.expiring_by_day(program, row, lots.get(member_id, []), now + timedelta(days=days))
        out.append(
            BalanceOut(
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
        )
    return out


DEFAULT_EXPIRING_WITHIN_DAYS = 90
MAX_EXPIRING_WITHIN_DAYS = 3660


class _BalanceReads:
    """Balance reads of one API key arriving together are answered from one transaction and two queries (see
    core.http.group_commit): the busiest read of a loyalty API, asked at every till and app screen."""

    writes = False

    def decode(self, scope: Any, body: bytes) -> tuple[uuid.UUID, int] | None:
        member_id = scope.get("path_params", {}).get("member_id")
        if not isinstance(member_id, uuid.UUID):
            return None
        query = scope.get("query_string", b"")
        if not query:
            return member_id, DEFAULT_EXPIRING_WITHIN_DAYS
        name, _, value = query.partition(b"=")
        if name != b"expiring_within_days" or not value.isdigit() or int(value) > MAX_EXPIRING_WITHIN_DAYS:
            return None  # anything else (and every error) is the ordinary path's to answer
        return member_id, int(value)

    async def process(
        self, session: Any, principal: Principal, runtime: Runtime, payloads: Sequence[tuple[uuid.UUID, int]]
    ) -> list[Answer | FealtyError]:
        assert principal.tenant_id is not None
        results = await balances_out(session, principal.tenant_id, principal.require_program(), payloads)
        return [r if isinstance(r, FealtyError) else Answer(200, msgspec.json.encode(r)) for r in results]


class LedgerController(Controller):
    path = "/v1/members/{member_id:uuid}"
    tags = ["ledger"]

    @get("/balance", operation_id="getBalance", opt={"scope": "members:read", "group_commit": _BalanceReads()})
    async def balance(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        member_id: FromPath[uuid.UUID],
        expiring_within_days: Annotated[
            int, QueryParameter(ge=0, le=MAX_EXPIRING_WITHIN_DAYS, description="Days ahead to list expiring points.")
        ] = DEFAULT_EXPIRING_WITHIN_DAYS,
    ) -> BalanceOut:
        """Available and pending points, lifetime totals, and what expires within the window, by date."""
        assert principal.tenant_id is not None
        result = (await balances_out(db, principal.tenant_id, program, [(member_id, expiring_within_days)]))[0]
        if isinstance(result, FealtyError):
            raise result
        return result

    @get("/ledger", operation_id="getLedger", opt={"scope": "members:read"})
    async def ledger(
        self,
        db: Db,
        member_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        kind: FromQuery[Literal["earn", "redeem", "expire", "adjust", "reverse", "transfer"] | None] = None,
        created_after: FromQuery[AwareDatetime | None] = None,
        created_before: FromQuery[AwareDatetime | None] = None,
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
                policy=policy_of(program),
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
        await record_activity(db, tenant_id=principal.tenant_id, member_ids=[member_id], now=now)  # billing usage
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
