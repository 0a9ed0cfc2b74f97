"""The ledger service on real databases, driven by hypothesis: any sequence of earn, redeem, expire, adjust,
release, reverse and restore leaves the stored rows consistent with each other."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.ledger import maths
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry, Lot, LotConsumption, PointBalance
from core.ledger.policy import LedgerPolicy
from core.members.service import enrol
from core.tenancy.service import create_tenant
from core.testing import settings_for_tests

T0 = datetime(2030, 1, 1, tzinfo=UTC)

op = st.one_of(
    st.tuples(
        st.just("credit"),
        st.sampled_from(["earn", "adjust"]),
        st.integers(1, 400),
        st.booleans(),
        st.one_of(st.none(), st.integers(1, 30)),
    ),
    st.tuples(st.just("debit"), st.sampled_from(["redeem", "adjust"]), st.integers(1, 600)),
    st.tuples(st.just("spend_most"), st.floats(0.5, 1.0)),
    st.tuples(st.just("release")),
    st.tuples(st.just("expire")),
    st.tuples(st.just("reverse"), st.integers(0, 50), st.floats(0.05, 1.0)),
    st.tuples(st.just("restore"), st.integers(0, 50)),
    st.tuples(st.just("wait"), st.integers(1, 20)),
)


async def _run(url: str, policy_name: str, ops: list[tuple[Any, ...]]) -> None:
    engine = create_engine(settings_for_tests(url, database_pool_size=2))
    sessionmaker = create_sessionmaker(engine)
    policy = LedgerPolicy(maths.ExpiryPolicy("days_after_earn", 15), policy_name, ZoneInfo("UTC"))  # type: ignore[arg-type]
    try:
        async with tenant_session(sessionmaker, None) as session:
            tenant, _ = await create_tenant(
                session, name="p", slug=f"p-{uuid.uuid4().hex[:10]}", timezone="UTC", currency="EUR"
            )
            member = await enrol(
                session, tenant_id=tenant.id, external_id="m", fields={}, attributes={}, consents=[], now=T0
            )
        tid, mid = tenant.id, member.id
        now = T0
        credits: list[uuid.UUID] = []
        debits: list[uuid.UUID] = []
        cause = ledger.Cause("admin", reason="property")
        for step in ops:
            now += timedelta(days=1)
            kind = step[0]
            async with tenant_session(sessionmaker, tid) as session:
                if kind == "credit":
                    _, credit_kind, points, pending, expires = step
                    posted = await ledger.credit(
                        session,
                        tenant_id=tid,
                        member_id=mid,
                        points=points,
                        kind=credit_kind,
                        cause=cause,
                        policy=policy,
                        now=now,
                        available_at=now + timedelta(days=3) if pending else None,
                        expires_at=now + timedelta(days=expires) if expires else None,
                    )
                    credits.append(posted.entry_id)
                elif kind in ("debit", "spend_most"):
                    available = (
                        await session.execute(select(PointBalance.available).where(PointBalance.member_id == mid))
                    ).scalar_one()
                    points = step[2] if kind == "debit" else int(max(available, 0) * step[1])
                    if points <= 0:
                        continue
                    try:
                        posted = await ledger.debit(
                            session,
                            tenant_id=tid,
                            member_id=mid,
                            points=points,
                            kind=step[1] if kind == "debit" else "redeem",
                            cause=cause,
                            now=now,
                        )
                        debits.append(posted.entry_id)
                    except Exception as exc:
                        assert type(exc).__name__ == "InsufficientPoints"
                        assert available < points
                elif kind == "release":
                    await ledger.release_due(session, tenant_id=tid, now=now)
                elif kind == "expire":
                    await ledger.expire_due(session, tenant_id=tid, policy=policy, now=now)
                elif kind == "reverse" and credits:
                    entry_id = credits[step[1] % len(credits)]
                    lot = (await session.execute(select(Lot).where(Lot.id == entry_id))).scalar_one()
                    left = lot.points - lot.reversed if lot.status == "posted" else lot.remaining
                    if lot.status != "cancelled" and left > 0:
                        await ledger.reverse_credit(
                            session,
                            tenant_id=tid,
                            entry_id=entry_id,
                            points=max(1, int(left * step[2])),
                            cause=cause,
                            policy=policy,
                            now=now,
                        )
                elif kind == "restore" and debits:
                    await ledger.restore_debit(
                        session, tenant_id=tid, entry_id=debits[step[1] % len(debits)], cause=cause, now=now
                    )
                elif kind == "wait":
                    now += timedelta(days=step[1])
            await _check(sessionmaker, tid, mid, policy_name)
    finally:
        await engine.dispose()


async def _check(sessionmaker: Any, tid: uuid.UUID, mid: uuid.UUID, policy_name: str) -> None:
    async with tenant_session(sessionmaker, tid, writes=False) as session:
        balance = (await session.execute(select(PointBalance).where(PointBalance.member_id == mid))).scalar_one()
        posted_entries = (
            await session.execute(
                select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(LedgerEntry.status == "posted")
            )
        ).scalar()
        lots = (await session.execute(select(Lot))).scalars().all()
        consumed = dict(
            (
                await session.execute(
                    select(LotConsumption.lot_id, func.sum(LotConsumption.points)).group_by(LotConsumption.lot_id)
                )
            ).all()
        )
    assert balance.available == posted_entries
    assert max(balance.available, 0) == sum(lot.remaining for lot in lots if lot.status == "posted")
    assert balance.pending == sum(lot.remaining for lot in lots if lot.status == "pending")
    for lot in lots:
        assert lot.points - lot.remaining == consumed.get(lot.id, 0), f"lot {lot.id} does not explain its points"
    if policy_name == "claw_back":
        assert balance.available >= 0


def _drive(url: str, policy: str, ops: list[tuple[Any, ...]]) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_run(url, policy, ops))
    finally:
        loop.close()


@pytest.mark.parametrize("policy", ["claw_back", "allow_negative"])
def test_ledger_rows_stay_consistent(database_url: str, policy: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(op, min_size=5, max_size=25))
    def run(ops: list[tuple[Any, ...]]) -> None:
        _drive(database_url, policy, ops)

    run()
