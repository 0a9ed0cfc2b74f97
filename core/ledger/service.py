"""Ledger use cases on the database: credit, debit, reverse, restore, release and expire.

Every function runs inside the caller's transaction and follows the lock protocol of :mod:`core.ledger.models`:
the member's ``point_balances`` row is locked first (an UPDATE on it, or SELECT ... FOR UPDATE), then the decision is
made by the pure functions of :mod:`core.ledger.maths`, then the change is written with a fixed, small number of
statements (set-based for the worker's batches). The database re-checks the arithmetic with CHECK constraints.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    MetaData,
    Row,
    Table,
    Uuid,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import bulk
from core.db.base import UTCDateTime, table_of
from core.db.lookup import row_or_404
from core.errors import Conflict, InsufficientPoints, NotFound, ValidationFailed
from core.ids import new_id
from core.ledger import maths
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.ledger.policy import LedgerPolicy
from core.outbox.service import emit_many

balances = table_of(PointBalance)
entries = table_of(LedgerEntry)
lots = table_of(Lot)
#: What a credit writes (every row of a batch carries each of them).
ENTRY_COLUMNS = (
    "tenant_id", "id", "member_id", "kind", "points", "status", "cause_type", "cause_id", "reason", "actor",
    "reverses_entry_id", "created_at", "available_at", "expires_at", "details",
)  # fmt: skip
LOT_COLUMNS = (
    "tenant_id", "id", "member_id", "points", "remaining", "reversed", "status", "kind", "earned_at", "available_at",
    "expires_at",
)  # fmt: skip
consumptions = table_of(LotConsumption)

BALANCE_FIELDS = {
    "available": "available",
    "pending": "pending",
    "earned": "lifetime_earned",
    "redeemed": "lifetime_redeemed",
    "expired": "lifetime_expired",
    "adjusted": "lifetime_adjusted",
    "written_off": "lifetime_written_off",
}


@dataclass(frozen=True, slots=True)
class Cause:
    """Why points moved: an event, a redemption, an admin, a plugin or the system; and who asked."""

    type: Literal["event", "redemption", "admin", "plugin", "system"]
    id: str | None = None
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """One entry the ledger wrote, and the member's balance right after it."""

    entry_id: uuid.UUID
    member_id: uuid.UUID
    kind: str
    points: int
    status: str
    created_at: datetime
    available: int
    pending: int
    available_at: datetime | None = None
    expires_at: datetime | None = None
    settled: int = 0
    written_off: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _balance_from_row(row: Row[Any]) -> maths.Balance:
    m = row._mapping
    return maths.Balance(
        available=m["available"],
        pending=m["pending"],
        earned=m["lifetime_earned"],
        redeemed=m["lifetime_redeemed"],
        expired=m["lifetime_expired"],
        adjusted=m["lifetime_adjusted"],
        written_off=m["lifetime_written_off"],
    )


def _lot_from_row(row: Row[Any]) -> maths.LotState:
    m = row._mapping
    return maths.LotState(
        id=m["id"],
        points=m["points"],
        remaining=m["remaining"],
        status=m["status"],
        kind=m["kind"],
        earned_at=m["earned_at"],
        expires_at=m["expires_at"],
    )


def _delta_values(delta: maths.Balance) -> dict[str, Any]:
    return {
        column: balances.c[column] + getattr(delta, name)
        for name, column in BALANCE_FIELDS.items()
        if getattr(delta, name)
    }


_BALANCE_MANY = (
    update(balances)
    .where(balances.c.tenant_id == bindparam("b_tenant"), balances.c.member_id == bindparam("b_member"))
    .values(
        {column: balances.c[column] + bindparam(f"d_{name}") for name, column in BALANCE_FIELDS.items()}
        | {"updated_at": bindparam("b_now")}
    )
)

#: Activity moves ``last_activity_at`` forward to the activity's own time, never back (an older event arriving late).
_BALANCE_MANY_ACTIVE = _BALANCE_MANY.values(
    last_activity_at=case(
        (
            or_(
                balances.c.last_activity_at.is_(None),
                balances.c.last_activity_at < bindparam("b_at", type_=UTCDateTime()),
            ),
            bindparam("b_at", type_=UTCDateTime()),
        ),
        else_=balances.c.last_activity_at,
    )
)

#: The shape of a batch of balance changes, for :func:`core.db.bulk.array_source` (never created in the database).
_DELTAS = Table(
    "balance_deltas",
    MetaData(),
    Column("member_id", Uuid),
    Column("active", Boolean),
    Column("active_at", UTCDateTime()),
    *(Column(name, BigInteger) for name in BALANCE_FIELDS),
)
_DELTA_COLUMNS = tuple(_DELTAS.c.keys())
_BALANCE_FROM_ARRAYS = text(
    "UPDATE point_balances AS b SET "  # noqa: S608 (constants only)
    + ", ".join(f"{column} = b.{column} + u.{name}" for name, column in BALANCE_FIELDS.items())
    + ", updated_at = :now, last_activity_at = CASE WHEN u.active THEN GREATEST(b.last_activity_at, u.active_at)"
    + " ELSE b.last_activity_at END"
    + f" FROM {bulk.array_source(_DELTAS, _DELTA_COLUMNS).text}"
    + " WHERE b.tenant_id = :tenant AND b.member_id = u.member_id"
)

_TAKE_MANY = (
    update(lots)
    .where(lots.c.tenant_id == bindparam("l_tenant"), lots.c.id == bindparam("l_id"))
    .values(remaining=lots.c.remaining - bindparam("l_take"))
)


async def open_balance(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    now: datetime,
    *,
    active_since: datetime | None = None,
) -> None:
    """The member's balance row, created with the member (its existence is what writers lock on). Enrolment starts
    the inactivity clock: at ``active_since`` when an activity of that time enrols the member, else now."""
    active_at = now if active_since is None else min(active_since, now)
    await session.execute(
        insert(balances).values(tenant_id=tenant_id, member_id=member_id, last_activity_at=active_at, updated_at=now)
    )


async def _lock_balance(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID) -> maths.Balance:
    row = (
        await session.execute(
            select(balances)
            .where(balances.c.tenant_id == tenant_id, balances.c.member_id == member_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("No such member.", field="member_id")
    return _balance_from_row(row)


async def lock_member_balance(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID) -> maths.Balance:
    """Take the member's balance row lock (the ledger's lock protocol) for a use case that must decide under it
    before it calls :func:`debit` or :func:`restore_debit` (which lock it again, harmlessly, in the same
    transaction). Raises ``not-found`` for an unknown member."""
    return await _lock_balance(session, tenant_id, member_id)


async def _open_lots(session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID) -> list[maths.LotState]:
    rows = await session.execute(
        select(lots).where(
            lots.c.tenant_id == tenant_id,
            lots.c.member_id == member_id,
            lots.c.remaining > 0,
            lots.c.status == "posted",
        )
    )
    return [_lot_from_row(r) for r in rows]


async def _write_entry(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    kind: str,
    points: int,
    status: str,
    cause: Cause,
    now: datetime,
    reverses: uuid.UUID | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> uuid.UUID:
    entry_id = new_id()
    row = _entry_row(tenant_id, entry_id, member_id, kind, points, cause, now, status=status, reverses=reverses)
    row.update(available_at=available_at, expires_at=expires_at, details=details or {})
    await session.execute(insert(entries).values(row))
    return entry_id


def _entry_row(
    tenant_id: uuid.UUID,
    entry_id: uuid.UUID,
    member_id: uuid.UUID,
    kind: str,
    points: int,
    cause: Cause,
    now: datetime,
    *,
    status: str = "posted",
    reverses: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": entry_id,
        "member_id": member_id,
        "kind": kind,
        "points": points,
        "status": status,
        "cause_type": cause.type,
        "cause_id": cause.id,
        "reason": cause.reason,
        "actor": cause.actor,
        "reverses_entry_id": reverses,
        "created_at": now,
        "available_at": None,
        "expires_at": None,
        "details": {},
    }


async def _write_takes(
    session: AsyncSession, tenant_id: uuid.UUID, entry_id: uuid.UUID, takes: Sequence[tuple[uuid.UUID, int]]
) -> None:
    """Lots give (positive) or get back (negative) points, each movement recorded as a consumption of ``entry_id``."""
    await _write_takes_many(session, tenant_id, [(entry_id, lot_id, points) for lot_id, points in takes])


async def _write_takes_many(
    session: AsyncSession, tenant_id: uuid.UUID, takes: Sequence[tuple[uuid.UUID, uuid.UUID, int]]
) -> None:
    """``(entry, lot, points)`` movements for many entries at once: two statements whatever their number."""
    takes = [t for t in takes if t[2]]
    if not takes:
        return
    await session.execute(_TAKE_MANY, [{"l_tenant": tenant_id, "l_id": lot_id, "l_take": p} for _, lot_id, p in takes])
    await _record_consumptions(session, tenant_id, takes)


async def _record_consumptions(
    session: AsyncSession, tenant_id: uuid.UUID, takes: Sequence[tuple[uuid.UUID, uuid.UUID, int]]
) -> None:
    await session.execute(
        insert(consumptions),
        [
            {"tenant_id": tenant_id, "id": new_id(), "entry_id": entry_id, "lot_id": lot_id, "points": p}
            for entry_id, lot_id, p in takes
        ],
    )


async def _apply_balance(
    session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID, delta: maths.Balance, now: datetime
) -> tuple[int, int]:
    values = _delta_values(delta) | {"updated_at": now}
    row = (
        await session.execute(
            update(balances)
            .where(balances.c.tenant_id == tenant_id, balances.c.member_id == member_id)
            .values(values)
            .returning(balances.c.available, balances.c.pending)
        )
    ).one()
    return row.available, row.pending


# --- credit ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """One credit to post: earn (from an event) or admin credit; pending until ``available_at`` if in the future."""

    member_id: uuid.UUID
    points: int
    kind: maths.CreditKind
    cause: Cause
    available_at: datetime | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] | None = None


async def credit(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    points: int,
    kind: maths.CreditKind,
    cause: Cause,
    policy: LedgerPolicy,
    now: datetime,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    counts_as_activity: bool = False,
    details: dict[str, Any] | None = None,
) -> Posted:
    """Add points to one member: posted now, or pending until ``available_at``."""
    if points <= 0:
        raise ValidationFailed("Points must be a positive whole number.", field="points")
    request = CreditRequest(member_id, points, kind, cause, available_at, expires_at, details)
    posted = await credit_many(
        session,
        tenant_id=tenant_id,
        credits=[request],
        policy=policy,
        now=now,
        activity=[member_id] if counts_as_activity else [],
    )
    return posted[0]


async def credit_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    credits: Sequence[CreditRequest],
    policy: LedgerPolicy,
    now: datetime,
    activity: Mapping[uuid.UUID, datetime] | Iterable[uuid.UUID] = (),
) -> list[Posted]:
    """Post many credits (and record activity) with a constant number of statements, whatever their number.

    ``activity`` names the members who acted: with the time each acted (the newest of their events' times), or
    alone (acting now). A member's ``last_activity_at`` moves to that time, never later than now and never back.

    One member (the hot path of a single event): the balance UPDATE ... RETURNING takes the row lock and tells the
    balance before, so three statements do it all. Several members: their rows are locked first in member order (two
    batches never deadlock), then one executemany UPDATE. Credits of one member settle a negative balance in order.
    """
    active = activity_times(activity, now)
    members = sorted({c.member_id for c in credits} | set(active))
    if not members:
        return []
    pending_flags, deltas = _pending_and_deltas(credits, now)
    if len(credits) == 1 and bulk.is_postgres(session):
        return [await _credit_one_postgres(session, tenant_id, credits[0], pending_flags[0], policy, now, active)]
    if len(members) == 1:
        member_id = members[0]
        values = _delta_values(deltas[member_id]) | {"updated_at": now}
        if member_id in active:
            at = active[member_id]
            values["last_activity_at"] = case(
                (or_(balances.c.last_activity_at.is_(None), balances.c.last_activity_at < at), at),
                else_=balances.c.last_activity_at,
            )
        row = (
            await session.execute(
                update(balances)
                .where(balances.c.tenant_id == tenant_id, balances.c.member_id == member_id)
                .values(values)
                .returning(*balances.c)
            )
        ).first()
        if row is None:
            raise NotFound("No such member.", field="member_id")
        before = {member_id: _balance_from_row(row).plus(_negate(deltas[member_id]))}
    else:
        before = await _locked_balances(session, tenant_id, members)
    plan = _plan_credits(tenant_id, credits, pending_flags, before, policy, now)
    await _insert_entries_and_lots(session, plan)
    if plan.settlements:
        await _record_consumptions(session, tenant_id, plan.settlements)
    if len(members) > 1:
        await _write_balance_deltas(session, tenant_id, {m: deltas[m] for m in members}, now, active=active)
    return plan.posted


async def credit_planned(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    credits: Sequence[CreditRequest],
    policy: LedgerPolicy,
    now: datetime,
    activity: Mapping[uuid.UUID, datetime],
    assumed_available: Mapping[uuid.UUID, int],
) -> None:
    """:func:`credit_many` for a batch, which holds its members' balance rows as briefly as it can: the entries and
    lots are planned from ``assumed_available`` (each member's available balance as the batch read it with its
    members, unlocked; 0 where absent) and written *before* the balance rows are locked, so that another writer of
    the same members waits only for the balance update and what follows it. Under the lock, a member whose balance
    moved in a way that changes the plan (a debt appeared, changed or went: only a negative balance is settled by a
    credit) has their credits planned again, and the lots that come out otherwise are corrected in one statement.
    What each entry left is not returned (a batch does not answer it)."""
    members = sorted({c.member_id for c in credits} | set(activity))
    if len(members) < 2 or not bulk.is_postgres(session):
        await credit_many(session, tenant_id=tenant_id, credits=credits, policy=policy, now=now, activity=activity)
        return
    active = activity_times(activity, now)
    pending_flags, deltas = _pending_and_deltas(credits, now)
    assumed = {m: maths.Balance(available=assumed_available.get(m, 0)) for m in members}
    plan = _plan_credits(tenant_id, credits, pending_flags, assumed, policy, now, posted=False)
    await _insert_entries_and_lots(session, plan)
    before = await _locked_balances(session, tenant_id, members)
    settlements = plan.settlements
    moved = {
        m
        for m in members
        if before[m].available != assumed[m].available and min(before[m].available, assumed[m].available) < 0
    }
    if moved:
        mine = [i for i, c in enumerate(credits) if c.member_id in moved]
        written = _CreditPlan([plan.entry_rows[i] for i in mine], [plan.lot_rows[i] for i in mine])
        again = _plan_credits(
            tenant_id,
            [credits[i] for i in mine],
            [pending_flags[i] for i in mine],
            before,
            policy,
            now,
            written,
            posted=False,
        )
        await _correct_lots(session, tenant_id, written, again)
        replanned = {row[1] for row in written.entry_rows}
        settlements = [s for s in settlements if s[0] not in replanned] + again.settlements
    if settlements:
        await _record_consumptions(session, tenant_id, settlements)
    await _write_balance_deltas(session, tenant_id, {m: deltas[m] for m in members}, now, active=active)


def _pending_and_deltas(
    credits: Sequence[CreditRequest], now: datetime
) -> tuple[list[bool], dict[uuid.UUID, maths.Balance]]:
    """Whether each credit waits (pending), and what the credits add to each member's balance."""
    deltas: dict[uuid.UUID, maths.Balance] = defaultdict(maths.Balance)
    pending_flags = [c.available_at is not None and c.available_at > now for c in credits]
    for c, pending in zip(credits, pending_flags, strict=True):
        deltas[c.member_id] = deltas[c.member_id].plus(
            maths.credit(maths.Balance(), c.points, kind=c.kind, pending=pending).balance
        )
    return pending_flags, deltas


async def _locked_balances(
    session: AsyncSession, tenant_id: uuid.UUID, members: Sequence[uuid.UUID]
) -> dict[uuid.UUID, maths.Balance]:
    before = await _lock_balances(session, tenant_id, members)
    if set(members) - set(before):
        raise NotFound("No such member.", field="member_id")
    return before


@dataclass(slots=True)
class _CreditPlan:
    """What posting credits writes, from the balances before them: entry and lot rows as tuples in
    ENTRY_COLUMNS' and LOT_COLUMNS' order (turned into column arrays at once on PostgreSQL), the settlements of a
    negative balance (entry, its own lot, points), and what each entry leaves."""

    entry_rows: list[tuple[Any, ...]] = field(default_factory=list)
    lot_rows: list[tuple[Any, ...]] = field(default_factory=list)
    settlements: list[tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)


def _plan_credits(
    tenant_id: uuid.UUID,
    credits: Sequence[CreditRequest],
    pending_flags: Sequence[bool],
    before: Mapping[uuid.UUID, maths.Balance],
    policy: LedgerPolicy,
    now: datetime,
    again: _CreditPlan | None = None,
    *,
    posted: bool = True,
) -> _CreditPlan:
    """The credits planned from ``before``, in order (a member's credits settle a negative balance first). ``again``:
    a plan already written, whose entry ids (and rows) are kept; only the lots' remaining points and what follows
    from the balance are new. ``posted``: whether to say what each entry leaves."""
    plan = _CreditPlan()
    running = dict(before)
    default_expiry: datetime | None = None
    for index, (c, pending) in enumerate(zip(credits, pending_flags, strict=True)):
        change = maths.credit(running[c.member_id], c.points, kind=c.kind, pending=pending)
        assert change.new_lot is not None
        running[c.member_id] = balance = running[c.member_id].plus(change.balance)
        available_at = c.available_at if pending else None
        status = "pending" if pending else "posted"
        lot = change.new_lot
        if again is None:
            entry_id = new_id()
            if c.expires_at is None and default_expiry is None:
                default_expiry = policy.expiry.lot_expiry(now, policy.timezone)
            expires_at = c.expires_at or default_expiry
            cause = c.cause
            plan.entry_rows.append(
                (
                    tenant_id, entry_id, c.member_id, c.kind, c.points, status, cause.type, cause.id, cause.reason,
                    cause.actor, None, now, available_at, expires_at, c.details or {},
                )
            )  # fmt: skip
            plan.lot_rows.append(
                (
                    tenant_id, entry_id, c.member_id, lot.points, lot.remaining, 0, lot.status, lot.kind, now,
                    available_at, expires_at,
                )
            )  # fmt: skip
        else:
            entry_id, expires_at = again.entry_rows[index][1], again.entry_rows[index][13]
            plan.lot_rows.append((*again.lot_rows[index][:4], lot.remaining, *again.lot_rows[index][5:]))
        if change.settled:
            # Part of the credit paid off a negative balance: recorded as this entry consuming its own lot.
            plan.settlements.append((entry_id, entry_id, change.settled))
        if posted:
            plan.posted.append(
                Posted(
                    entry_id,
                    c.member_id,
                    c.kind,
                    c.points,
                    status,
                    now,
                    balance.available,
                    balance.pending,
                    available_at,
                    expires_at,
                    change.settled,
                )
            )
    return plan


async def _insert_entries_and_lots(session: AsyncSession, plan: _CreditPlan) -> None:
    if not plan.entry_rows:
        return
    postgres = bulk.is_postgres(session)
    for table, columns, rows in ((entries, ENTRY_COLUMNS, plan.entry_rows), (lots, LOT_COLUMNS, plan.lot_rows)):
        parameters = bulk.params_of_tuples(session, table, columns, rows)
        await session.execute(bulk.insert(postgres, table, columns), parameters)


_REMAINING = LOT_COLUMNS.index("remaining")


async def _correct_lots(session: AsyncSession, tenant_id: uuid.UUID, written: _CreditPlan, plan: _CreditPlan) -> None:
    """The lots ``written`` (from assumed balances) whose remaining points ``plan`` (from the locked ones) puts
    otherwise, set to the plan's."""
    changed = [
        {"l_id": new[1], "l_remaining": new[_REMAINING]}
        for old, new in zip(written.lot_rows, plan.lot_rows, strict=True)
        if old[_REMAINING] != new[_REMAINING]
    ]
    if changed:
        await session.execute(
            update(lots)
            .where(lots.c.tenant_id == tenant_id, lots.c.id == bindparam("l_id"))
            .values(remaining=bindparam("l_remaining")),
            changed,
        )


_CREDIT_ONE_SQL = text(
    """
    WITH b AS (
        UPDATE point_balances
        SET available = available + :d_available, pending = pending + :d_pending,
            lifetime_earned = lifetime_earned + :d_earned, lifetime_adjusted = lifetime_adjusted + :d_adjusted,
            updated_at = :now,
            last_activity_at = CASE WHEN :active THEN GREATEST(last_activity_at, :active_at) ELSE last_activity_at END
        WHERE tenant_id = :tenant AND member_id = :member
        RETURNING available, pending
    ), e AS (
        INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id, reason,
                                    actor, reverses_entry_id, created_at, available_at, expires_at, details)
        SELECT :tenant, :entry, :member, :kind, :points, :status, :cause_type, :cause_id, :reason, :actor, NULL,
               :now, :available_at, :expires_at, CAST(:details AS jsonb)
        FROM b
        RETURNING id
    ), l AS (
        INSERT INTO lots (tenant_id, id, member_id, points, remaining, reversed, status, kind, earned_at,
                          available_at, expires_at)
        SELECT :tenant, e.id, :member, :points,
               CASE WHEN :pending THEN :points ELSE LEAST(:points, GREATEST(b.available, 0)) END,
               0, :status, :kind, :now, :available_at, :expires_at
        FROM b, e
        RETURNING id, points - remaining AS settled
    ), c AS (
        INSERT INTO lot_consumptions (tenant_id, id, entry_id, lot_id, points)
        SELECT :tenant, :consumption, l.id, l.id, l.settled FROM l WHERE l.settled > 0
    )
    SELECT b.available, b.pending, l.settled FROM b, l
    """
)


def activity_times(
    activity: Mapping[uuid.UUID, datetime] | Iterable[uuid.UUID], now: datetime
) -> dict[uuid.UUID, datetime]:
    """Who acted and when: each member's activity time, never later than ``now`` (no activity from the future)."""
    if isinstance(activity, Mapping):
        return {member_id: min(at, now) for member_id, at in activity.items()}
    return dict.fromkeys(activity, now)


async def _credit_one_postgres(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    c: CreditRequest,
    pending: bool,
    policy: LedgerPolicy,
    now: datetime,
    active: dict[uuid.UUID, datetime],
) -> Posted:
    """The single-credit hot path on PostgreSQL: the balance update (which takes the member's row lock), the entry,
    the lot and any settlement of a negative balance in ONE statement (a data-modifying CTE), with exactly the
    arithmetic of :func:`core.ledger.maths.credit` (``settle``)."""
    delta = maths.credit(maths.Balance(), c.points, kind=c.kind, pending=pending).balance
    expires_at = c.expires_at or policy.expiry.lot_expiry(now, policy.timezone)
    available_at = c.available_at if pending else None
    entry_id = new_id()
    row = (
        await session.execute(
            _CREDIT_ONE_SQL,
            {
                "tenant": tenant_id,
                "member": c.member_id,
                "entry": entry_id,
                "consumption": new_id(),
                "d_available": delta.available,
                "d_pending": delta.pending,
                "d_earned": delta.earned,
                "d_adjusted": delta.adjusted,
                "now": now,
                "active": c.member_id in active,
                "active_at": active.get(c.member_id, now),
                "kind": c.kind,
                "points": c.points,
                "status": "pending" if pending else "posted",
                "pending": pending,
                "cause_type": c.cause.type,
                "cause_id": c.cause.id,
                "reason": c.cause.reason,
                "actor": c.cause.actor,
                "available_at": available_at,
                "expires_at": expires_at,
                "details": msgspec.json.encode(c.details or {}).decode(),
            },
        )
    ).first()
    if row is None:
        raise NotFound("No such member.", field="member_id")
    return Posted(
        entry_id,
        c.member_id,
        c.kind,
        c.points,
        "pending" if pending else "posted",
        now,
        row.available,
        row.pending,
        available_at,
        expires_at,
        int(row.settled),
    )


def _negate(balance: maths.Balance) -> maths.Balance:
    return maths.Balance().plus(maths.Balance(*(-getattr(balance, f) for f in BALANCE_FIELDS)))


# --- debit ----------------------------------------------------------------------------------------------------------


async def debit(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    points: int,
    kind: maths.DebitKind,
    cause: Cause,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> Posted:
    """Take points, oldest-expiring lots first. Never overdraws: refuses with ``insufficient-points``."""
    if points <= 0:
        raise ValidationFailed("Points must be a positive whole number.", field="points")
    balance = await _lock_balance(session, tenant_id, member_id)
    if balance.available < points:
        raise InsufficientPoints(
            f"The member has {max(balance.available, 0)} points available; {points} were requested.",
            field="points",
            available=max(balance.available, 0),
            requested=points,
        )
    open_lots = await _open_lots(session, tenant_id, member_id)
    try:
        change = maths.debit(balance, open_lots, points, kind=kind)
    except maths.InsufficientPointsError as exc:
        raise InsufficientPoints(str(exc), field="points", available=exc.available, requested=points) from exc
    entry_id = await _write_entry(
        session,
        tenant_id=tenant_id,
        member_id=member_id,
        kind=kind,
        points=change.entry_points,
        status="posted",
        cause=cause,
        now=now,
        details=details,
    )
    await _write_takes(session, tenant_id, entry_id, change.lot_takes)
    available, pending = await _apply_balance(session, tenant_id, member_id, change.balance, now)
    return Posted(entry_id, member_id, kind, change.entry_points, "posted", now, available, pending)


# --- reversal and restore -------------------------------------------------------------------------------------------


async def _entry_for_update(session: AsyncSession, tenant_id: uuid.UUID, entry_id: uuid.UUID) -> Row[Any]:
    row = await row_or_404(
        session,
        select(entries).where(entries.c.tenant_id == tenant_id, entries.c.id == entry_id),
        "No such ledger entry.",
        field="entry_id",
    )
    return row


async def reverse_credit(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    entry_id: uuid.UUID,
    points: int | None,
    cause: Cause,
    policy: LedgerPolicy,
    now: datetime,
) -> Posted | None:
    """Take back ``points`` (default: all not yet reversed) of what credit ``entry_id`` added.

    Returns None when nothing is left to reverse (a repeated full reversal is a no-op, never a double removal).
    """
    entry = await _entry_for_update(session, tenant_id, entry_id)
    if entry.kind not in ("earn", "adjust") or entry.points <= 0:
        raise Conflict("Only a credit (earn or admin credit) can be reversed this way.", field="entry_id")
    balance = await _lock_balance(session, tenant_id, entry.member_id)
    lot_row = (await session.execute(select(lots).where(lots.c.tenant_id == tenant_id, lots.c.id == entry_id))).one()
    left = lot_row.points - lot_row.reversed
    if lot_row.status == "pending":
        left = min(left, lot_row.remaining)
    amount = left if points is None else points
    if amount <= 0 or lot_row.status == "cancelled":
        return None
    if amount > left:
        raise Conflict(f"Only {left} points of this credit are left to reverse.", field="points", left=left)
    own = _lot_from_row(lot_row)
    others = await _open_lots(session, tenant_id, entry.member_id) if own.status == "posted" else []
    change = maths.reverse_credit(balance, own, others, amount, policy.reversal)
    status = "pending" if own.status == "pending" else "posted"
    if any(s == "cancelled" for _, s in change.lot_status):
        status = "cancelled"
    details = {"amount": amount, "written_off": change.written_off} | change.details
    reverse_id = await _write_entry(
        session,
        tenant_id=tenant_id,
        member_id=entry.member_id,
        kind="reverse",
        points=change.entry_points,
        status=status,
        cause=cause,
        now=now,
        reverses=entry_id,
        details=details,
    )
    await _write_takes(session, tenant_id, reverse_id, change.lot_takes)
    await session.execute(
        update(lots)
        .where(lots.c.tenant_id == tenant_id, lots.c.id == entry_id)
        .values(reversed=lots.c.reversed + amount, **({"status": "cancelled"} if status == "cancelled" else {}))
    )
    if status == "cancelled":
        # Nothing of the pending credit is left: it and its earlier partial reversals will never post.
        await session.execute(
            update(entries)
            .where(
                entries.c.tenant_id == tenant_id,
                or_(entries.c.id == entry_id, entries.c.reverses_entry_id == entry_id),
                entries.c.status == "pending",
            )
            .values(status="cancelled")
        )
    available, pending = await _apply_balance(session, tenant_id, entry.member_id, change.balance, now)
    return Posted(
        reverse_id,
        entry.member_id,
        "reverse",
        change.entry_points,
        status,
        now,
        available,
        pending,
        written_off=change.written_off,
        details=details,
    )


async def restore_debit(
    session: AsyncSession, *, tenant_id: uuid.UUID, entry_id: uuid.UUID, cause: Cause, now: datetime
) -> Posted | None:
    """Give back what debit ``entry_id`` took (a cancelled redemption), to the lots it came from. Once only."""
    entry = await _entry_for_update(session, tenant_id, entry_id)
    if entry.kind not in ("redeem", "adjust") or entry.points >= 0:
        raise Conflict("Only a debit (redemption or admin debit) can be restored.", field="entry_id")
    balance = await _lock_balance(session, tenant_id, entry.member_id)
    already = (
        await session.execute(
            select(func.count()).where(
                entries.c.tenant_id == tenant_id, entries.c.reverses_entry_id == entry_id, entries.c.kind == "reverse"
            )
        )
    ).scalar_one()
    if already:
        return None
    taken = (
        await session.execute(
            select(consumptions.c.lot_id, consumptions.c.points)
            .where(consumptions.c.tenant_id == tenant_id, consumptions.c.entry_id == entry_id)
            .order_by(consumptions.c.id)
        )
    ).all()
    change = maths.restore(balance, [(r.lot_id, r.points) for r in taken], kind=entry.kind)
    restore_id = await _write_entry(
        session,
        tenant_id=tenant_id,
        member_id=entry.member_id,
        kind="reverse",
        points=change.entry_points,
        status="posted",
        cause=cause,
        now=now,
        reverses=entry_id,
        details={"settled": change.settled} if change.settled else None,
    )
    await _write_takes(session, tenant_id, restore_id, change.lot_takes)
    available, pending = await _apply_balance(session, tenant_id, entry.member_id, change.balance, now)
    return Posted(restore_id, entry.member_id, "reverse", change.entry_points, "posted", now, available, pending)


# --- the worker's batches: release and expiry -----------------------------------------------------------------------


async def _lock_balances(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, maths.Balance]:
    """Lock several balance rows in one statement, in member order (so two batches never deadlock)."""
    ids = sorted(set(member_ids))
    rows = await session.execute(_lock_many(bulk.is_postgres(session)), {"l_tenant": tenant_id, "l_members": ids})
    return {r.member_id: _balance_from_row(r) for r in rows}


@functools.cache
def _lock_many(postgres: bool) -> Any:
    return (
        select(balances)
        .where(balances.c.tenant_id == bindparam("l_tenant"), bulk.one_of(balances.c.member_id, "l_members", postgres))
        .order_by(balances.c.member_id)
        .with_for_update()
    )


async def _write_balance_deltas(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    deltas: dict[uuid.UUID, maths.Balance],
    now: datetime,
    *,
    active: dict[uuid.UUID, datetime] | None = None,
) -> None:
    if not deltas:
        return
    active = active or {}
    if bulk.is_postgres(session):
        # One UPDATE ... FROM arrays (the rows are locked already, in member order), the arrays built directly.
        members = list(deltas)
        arrays: dict[str, Any] = {
            "u_member_id": members,
            "u_active": [m in active for m in members],
            "u_active_at": [active.get(m, now) for m in members],
        }
        for name in BALANCE_FIELDS:
            arrays[f"u_{name}"] = [getattr(deltas[m], name) for m in members]
        await session.execute(_BALANCE_FROM_ARRAYS, {"tenant": tenant_id, "now": now} | arrays)
        return
    plain = [
        {"b_tenant": tenant_id, "b_member": member_id, "b_now": now}
        | {f"d_{name}": getattr(delta, name) for name in BALANCE_FIELDS}
        for member_id, delta in deltas.items()
        if member_id not in active
    ]
    with_activity = [
        {"b_tenant": tenant_id, "b_member": member_id, "b_now": now, "b_at": active[member_id]}
        | {f"d_{name}": getattr(delta, name) for name in BALANCE_FIELDS}
        for member_id, delta in deltas.items()
        if member_id in active
    ]
    if plain:
        await session.execute(_BALANCE_MANY, plain)
    if with_activity:
        await session.execute(_BALANCE_MANY_ACTIVE, with_activity)


async def release_due(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime, limit: int = 1000) -> int:
    """Post up to ``limit`` pending lots whose time has come. Returns how many were released.

    Safe to run concurrently and repeatedly: lots are re-read under their members' balance locks, and a lot already
    posted by another worker is skipped.
    """
    due = (
        (
            await session.execute(
                select(lots.c.member_id)
                .where(lots.c.tenant_id == tenant_id, lots.c.status == "pending", lots.c.available_at <= now)
                .order_by(lots.c.available_at)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return 0
    locked = await _lock_balances(session, tenant_id, due)
    rows = await session.execute(
        select(lots)
        .where(
            lots.c.tenant_id == tenant_id,
            lots.c.member_id.in_(list(locked)),
            lots.c.status == "pending",
            lots.c.available_at <= now,
        )
        .order_by(lots.c.member_id, lots.c.available_at, lots.c.id)
        .limit(limit)
    )
    running = dict(locked)
    deltas: dict[uuid.UUID, maths.Balance] = defaultdict(maths.Balance)
    released: list[uuid.UUID] = []
    settle_takes: list[tuple[uuid.UUID, int]] = []
    for row in rows:
        lot = _lot_from_row(row)
        member_id = row.member_id
        if lot.remaining == 0:
            continue
        change = maths.release(running[member_id], lot)
        running[member_id] = running[member_id].plus(change.balance)
        deltas[member_id] = deltas[member_id].plus(change.balance)
        released.append(lot.id)
        settle_takes.extend(change.lot_takes)
    if not released:
        return 0
    await session.execute(
        update(lots).where(lots.c.tenant_id == tenant_id, lots.c.id.in_(released)).values(status="posted")
    )
    await session.execute(
        update(entries)
        .where(
            entries.c.tenant_id == tenant_id,
            or_(entries.c.id.in_(released), entries.c.reverses_entry_id.in_(released)),
            entries.c.status == "pending",
        )
        .values(status="posted")
    )
    # Released points that paid off a negative balance: the lot's own credit entry consumed them.
    await _write_takes_many(session, tenant_id, [(lot_id, lot_id, take) for lot_id, take in settle_takes])
    await _write_balance_deltas(session, tenant_id, deltas, now)
    return len(released)


async def expire_due(
    session: AsyncSession, *, tenant_id: uuid.UUID, policy: LedgerPolicy, now: datetime, limit: int = 1000
) -> int:
    """Expire what is due, for up to ``limit`` members: lots past their ``expires_at``, or (inactivity policy) every
    lot of a member whose last qualifying activity is older than the policy allows. One ``expire`` entry per member,
    a constant number of statements per batch. Returns the points expired; safe to repeat (nothing is due twice)."""
    inactivity = policy.expiry.kind == "inactivity"
    if inactivity:
        assert policy.expiry.value is not None
        cutoff = maths.add_months(now, -policy.expiry.value)
        candidates = select(balances.c.member_id).where(
            balances.c.tenant_id == tenant_id, balances.c.available > 0, balances.c.last_activity_at <= cutoff
        )
    else:
        candidates = select(lots.c.member_id).where(
            lots.c.tenant_id == tenant_id,
            lots.c.status == "posted",
            lots.c.remaining > 0,
            lots.c.expires_at.is_not(None),
            lots.c.expires_at <= now,
        )
    members = (await session.execute(candidates.distinct().limit(limit))).scalars().all()
    if not members:
        return 0
    locked = await _lock_balances(session, tenant_id, members)
    lot_query = select(lots).where(
        lots.c.tenant_id == tenant_id,
        lots.c.member_id.in_(list(locked)),
        lots.c.status == "posted",
        lots.c.remaining > 0,
    )
    if inactivity:
        # Re-checked under the lock: activity may have arrived since the first look.
        lot_query = lot_query.where(
            lots.c.member_id.in_(
                select(balances.c.member_id).where(
                    balances.c.tenant_id == tenant_id,
                    balances.c.member_id.in_(list(locked)),
                    balances.c.last_activity_at <= cutoff,
                )
            )
        )
    else:
        lot_query = lot_query.where(lots.c.expires_at.is_not(None), lots.c.expires_at <= now)
    by_member: dict[uuid.UUID, list[maths.LotState]] = defaultdict(list)
    for row in await session.execute(lot_query):
        by_member[row.member_id].append(_lot_from_row(row))
    cause = Cause("system", reason=f"expiry ({policy.expiry.kind})", actor="worker")
    entry_rows: list[dict[str, Any]] = []
    takes: list[tuple[uuid.UUID, uuid.UUID, int]] = []
    deltas: dict[uuid.UUID, maths.Balance] = {}
    for member_id, member_lots in by_member.items():
        change = maths.expire(member_lots)
        if not change.entry_points:
            continue
        entry_id = new_id()
        entry_rows.append(_entry_row(tenant_id, entry_id, member_id, "expire", change.entry_points, cause, now))
        takes.extend((entry_id, lot_id, points) for lot_id, points in change.lot_takes)
        deltas[member_id] = change.balance
    if entry_rows:
        await session.execute(insert(entries), entry_rows)
        await _write_takes_many(session, tenant_id, takes)
        await _write_balance_deltas(session, tenant_id, deltas, now)
    if entry_rows:
        await emit_many(
            session,
            tenant_id,
            [
                (
                    "points.expired",
                    {"member_id": str(row["member_id"]), "points": -int(row["points"]), "entry_id": str(row["id"])},
                    row["member_id"],
                )
                for row in entry_rows
            ],
            now,
        )
    return -sum(int(row["points"]) for row in entry_rows)
