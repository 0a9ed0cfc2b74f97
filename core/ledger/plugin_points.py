"""Points services for plugins: credit or debit one member (or credit many at once), with the plugin named as the
cause.

A plugin never writes ledger rows itself: outside an event (a milestone choice, a transfer between members) it calls
these, in the caller's transaction, and the ledger's rules hold as for every other writer (the member's balance row
is locked first, a debit never overdraws, lots expire under the program's policy). Neither counts as activity for
inactivity expiry unless ``counts_as_activity`` says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.usage import record_activity
from core.clock import utcnow
from core.db.base import table_of
from core.errors import Conflict, ValidationFailed
from core.ledger import service as ledger
from core.ledger.policy import policy_of
from core.members.models import Member
from core.members.service import ensure_active, get_member
from core.outbox.service import emit, emit_many
from core.program.models import Program
from core.program.settings import ProgramSettings

programs = table_of(Program)
members = table_of(Member)


@dataclass(frozen=True)
class PointsMoved:
    """What a plugin's credit or debit wrote: the ledger entry and the member's balance right after it."""

    entry_id: uuid.UUID
    points: int
    available: int
    pending: int


async def _program(session: AsyncSession, tenant_id: uuid.UUID) -> ProgramSettings:
    row = (await session.execute(select(programs).where(programs.c.tenant_id == tenant_id))).one()
    return ProgramSettings.from_mapping(row._mapping)


def _check(points: int, plugin: str) -> None:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise ValidationFailed("Points must be a positive whole number.", field="points")
    if not plugin:
        raise ValueError("name the plugin that moves the points")


async def credit_points(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    points: int,
    plugin: str,
    reason: str,
    reference: str | None = None,
    available_at: datetime | None = None,
    counts_as_activity: bool = False,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> PointsMoved:
    """Credit ``points`` (an ``earn`` entry caused by ``plugin``; pending until ``available_at`` if later) and
    announce ``points.earned``."""
    _check(points, plugin)
    now = now or utcnow()
    ensure_active(await get_member(session, member_id))
    program = await _program(session, tenant_id)
    posted = await ledger.credit(
        session,
        tenant_id=tenant_id,
        member_id=member_id,
        points=points,
        kind="earn",
        cause=ledger.Cause("plugin", id=reference, reason=reason, actor=f"plugin:{plugin}"),
        policy=policy_of(program),
        now=now,
        available_at=available_at,
        counts_as_activity=counts_as_activity,
        details={"plugin": plugin, **(details or {})},
    )
    if counts_as_activity:  # the member did something (billing counts them active this month)
        await record_activity(session, tenant_id=tenant_id, member_ids=[member_id], now=now)
    await emit(
        session,
        tenant_id,
        "points.earned",
        {"member_id": str(member_id), "points": points, "source": plugin, "reason": reason, "reference": reference},
        member_id,
    )
    return PointsMoved(posted.entry_id, points, posted.available, posted.pending)


@dataclass(frozen=True)
class PluginCredit:
    """One member's credit in :func:`credit_points_many`."""

    member_id: uuid.UUID
    points: int
    reference: str | None = None
    details: dict[str, Any] | None = None


async def credit_points_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    credits: Sequence[PluginCredit],
    plugin: str,
    reason: str,
    now: datetime | None = None,
) -> list[PointsMoved]:
    """Credit many members at once (an ``earn`` entry each, caused by ``plugin``) and announce ``points.earned`` for
    each: the same entries as :func:`credit_points` one by one, with a constant number of statements whatever their
    number (the balances are locked in member order, so two batches never deadlock). An anonymized member refuses
    the whole batch (409 naming ``member_id``), an unknown one too (404): nothing of it is written."""
    if not credits:
        return []
    for credit in credits:
        _check(credit.points, plugin)
    now = now or utcnow()
    ids = list({c.member_id for c in credits})
    for start in range(0, len(ids), 5000):
        gone = (
            await session.execute(
                select(members.c.id)
                .where(
                    members.c.tenant_id == tenant_id,
                    members.c.id.in_(ids[start : start + 5000]),
                    members.c.status == "anonymized",
                )
                .limit(1)
            )
        ).first()
        if gone is not None:
            raise Conflict("This member has been anonymized; it can no longer change.", field="member_id")
    program = await _program(session, tenant_id)
    posted = await ledger.credit_many(
        session,
        tenant_id=tenant_id,
        credits=[
            ledger.CreditRequest(
                c.member_id,
                c.points,
                "earn",
                ledger.Cause("plugin", id=c.reference, reason=reason, actor=f"plugin:{plugin}"),
                details={"plugin": plugin, **(c.details or {})},
            )
            for c in credits
        ],
        policy=policy_of(program),
        now=now,
    )
    await emit_many(
        session,
        tenant_id,
        [
            (
                "points.earned",
                {
                    "member_id": str(c.member_id),
                    "points": c.points,
                    "source": plugin,
                    "reason": reason,
                    "reference": c.reference,
                },
                c.member_id,
            )
            for c in credits
        ],
        now,
    )
    return [PointsMoved(p.entry_id, c.points, p.available, p.pending) for p, c in zip(posted, credits, strict=True)]


async def debit_points(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    points: int,
    plugin: str,
    reason: str,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> PointsMoved:
    """Take ``points`` (oldest-expiring lots first; ``409 insufficient-points`` rather than overdraw) and announce
    ``points.adjusted``."""
    _check(points, plugin)
    now = now or utcnow()
    ensure_active(await get_member(session, member_id))
    posted = await ledger.debit(
        session,
        tenant_id=tenant_id,
        member_id=member_id,
        points=points,
        kind="adjust",
        cause=ledger.Cause("plugin", id=reference, reason=reason, actor=f"plugin:{plugin}"),
        now=now,
        details={"plugin": plugin, **(details or {})},
    )
    await emit(
        session,
        tenant_id,
        "points.adjusted",
        {"member_id": str(member_id), "points": -points, "source": plugin, "reason": reason, "reference": reference},
        member_id,
    )
    return PointsMoved(posted.entry_id, -points, posted.available, posted.pending)
