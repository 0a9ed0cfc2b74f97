"""Credits planned from balances read without a lock (a batch writes its entries and lots before it locks its
members' balance rows, core/ledger/service.credit_planned): whatever the balance was assumed to be, what is stored is
exactly what planning under the lock stores. The oracle is a twin tenant, the same members in the same state,
credited the ordinary way (lock first)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.ledger import maths
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.ledger.policy import LedgerPolicy
from core.members.service import enrol
from core.tenancy.service import create_tenant
from core.testing import settings_for_tests

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2030, 3, 1, 12, tzinfo=UTC)
POLICY = LedgerPolicy(maths.ExpiryPolicy("days_after_earn", 365), "allow_negative", ZoneInfo("UTC"))
CAUSE = ledger.Cause("admin", reason="test")


async def _tenant_with_members(sessionmaker: Any) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """A tenant whose members stand at: ``debt`` -80 available (100 earned, 80 spent, the 100 reversed), ``zero`` 0,
    ``rich`` 50."""
    async with tenant_session(sessionmaker, None) as session:
        tenant, _ = await create_tenant(
            session, name="t", slug=f"t-{uuid.uuid4().hex[:10]}", timezone="UTC", currency="EUR"
        )
        members = {
            name: (
                await enrol(
                    session, tenant_id=tenant.id, external_id=name, fields={}, attributes={}, consents=[], now=T0
                )
            ).id
            for name in ("debt", "zero", "rich")
        }
    async with tenant_session(sessionmaker, tenant.id) as session:
        earned = await ledger.credit(
            session, tenant_id=tenant.id, member_id=members["debt"], points=100, kind="earn", cause=CAUSE,
            policy=POLICY, now=T0,
        )  # fmt: skip
        await ledger.credit(
            session, tenant_id=tenant.id, member_id=members["rich"], points=50, kind="earn", cause=CAUSE,
            policy=POLICY, now=T0,
        )  # fmt: skip
        await ledger.debit(
            session, tenant_id=tenant.id, member_id=members["debt"], points=80, kind="redeem", cause=CAUSE, now=T0
        )
        await ledger.reverse_credit(
            session, tenant_id=tenant.id, entry_id=earned.entry_id, points=None, cause=CAUSE, policy=POLICY, now=T0
        )
    return tenant.id, members


def _credits(members: dict[str, uuid.UUID]) -> list[ledger.CreditRequest]:
    """Credits that settle the debt in two steps, one pending credit, and plain ones."""
    at = T0 + timedelta(hours=1)
    return [
        ledger.CreditRequest(members["debt"], 30, "earn", CAUSE),
        ledger.CreditRequest(members["zero"], 10, "earn", CAUSE),
        ledger.CreditRequest(members["debt"], 70, "earn", CAUSE),
        ledger.CreditRequest(members["rich"], 5, "earn", CAUSE, available_at=at + timedelta(days=3)),
        ledger.CreditRequest(members["debt"], 20, "earn", CAUSE),
        ledger.CreditRequest(members["rich"], 7, "earn", CAUSE),
    ]


async def _stored(sessionmaker: Any, tenant_id: uuid.UUID, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    """What the tenant's ledger holds, member by name, rows in the order they were written."""
    async with tenant_session(sessionmaker, tenant_id, writes=False) as session:
        balances = (await session.execute(select(PointBalance))).scalars().all()
        lots = (await session.execute(select(Lot).order_by(Lot.earned_at, Lot.id))).scalars().all()
        consumed = dict(
            (
                await session.execute(
                    select(LotConsumption.lot_id, func.sum(LotConsumption.points)).group_by(LotConsumption.lot_id)
                )
            ).all()
        )
        posted_sum = dict(
            (
                await session.execute(
                    select(LedgerEntry.member_id, func.sum(LedgerEntry.points))
                    .where(LedgerEntry.status == "posted")
                    .group_by(LedgerEntry.member_id)
                )
            ).all()
        )
    for balance in balances:  # the ledger's own invariants, member by member
        mine = [lot for lot in lots if lot.member_id == balance.member_id]
        assert balance.available == posted_sum.get(balance.member_id, 0)
        assert max(balance.available, 0) == sum(lot.remaining for lot in mine if lot.status == "posted")
        assert balance.pending == sum(lot.remaining for lot in mine if lot.status == "pending")
        for lot in mine:
            assert lot.points - lot.remaining == consumed.get(lot.id, 0), lot.id
    return {
        "balances": {names[b.member_id]: (b.available, b.pending, b.lifetime_earned) for b in balances},
        "lots": [(names[lot.member_id], lot.points, lot.remaining, lot.status) for lot in lots],
        "consumed": sorted((names[lot.member_id], lot.points, consumed.get(lot.id, 0)) for lot in lots),
    }


async def _credit(
    sessionmaker: Any, tenant_id: uuid.UUID, members: dict[str, uuid.UUID], assumed: dict[str, int] | None
) -> None:
    """The credits as a batch posts them (planned from ``assumed``), or, with None, the ordinary way."""
    names = {v: k for k, v in members.items()}
    arguments: dict[str, Any] = {
        "tenant_id": tenant_id,
        "credits": _credits(members),
        "policy": POLICY,
        "now": T0 + timedelta(hours=1),
        "activity": {m: T0 for m in members.values()},
    }
    async with tenant_session(sessionmaker, tenant_id) as session:
        if assumed is None:
            posted = await ledger.credit_many(session, **arguments)
            # The debt of 80 settled by the first two credits (30, then 50 of the 70): the oracle is the real plan.
            assert [(p.available, p.settled) for p in posted if names[p.member_id] == "debt"] == [
                (-50, 30),
                (20, 50),
                (40, 0),
            ]
        else:
            assumed_available = {members[k]: v for k, v in assumed.items()}
            await ledger.credit_planned(session, **arguments, assumed_available=assumed_available)


@pytest.mark.parametrize(
    "assumed",
    [
        pytest.param({"debt": -80, "zero": 0, "rich": 50}, id="as-they-are"),
        pytest.param({"debt": 0, "zero": 0, "rich": 50}, id="a-debt-appeared-meanwhile"),
        pytest.param({"debt": -30, "zero": -500, "rich": -1}, id="debts-assumed-that-are-not-so"),
        pytest.param({}, id="nothing-known"),
    ],
)
async def test_credits_planned_from_assumed_balances_store_what_planning_under_the_lock_does(
    postgres_url: str, assumed: dict[str, int]
) -> None:
    engine = create_engine(settings_for_tests(postgres_url, database_pool_size=2))
    sessionmaker = create_sessionmaker(engine)
    try:
        twin, twin_members = await _tenant_with_members(sessionmaker)
        tenant, members = await _tenant_with_members(sessionmaker)
        await _credit(sessionmaker, twin, twin_members, None)
        await _credit(sessionmaker, tenant, members, assumed)
        stored = await _stored(sessionmaker, tenant, {v: k for k, v in members.items()})
        assert stored == await _stored(sessionmaker, twin, {v: k for k, v in twin_members.items()})
        assert stored["balances"]["debt"] == (40, 0, 120) and stored["balances"]["rich"] == (57, 5, 57)
    finally:
        await engine.dispose()
