"""Helpers shared by the rewards tests: catalogue entries, tiers, and reading what a redemption wrote."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from sqlalchemy import func, select, update

from core.db.engine import tenant_session
from core.ids import new_id
from core.ledger.models import LedgerEntry, PointBalance
from core.members.models import Member
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import TenantHandle
from core.tiers.models import Tier


async def make_reward(tenant: TenantHandle, **fields: Any) -> dict[str, Any]:
    body = {"code": f"R-{uuid.uuid4().hex[:10]}", "name": "Free coffee", "points_cost": 100} | fields
    response = await tenant.post("/v1/rewards", json=body)
    assert response.status_code == 201, response.text
    reward: dict[str, Any] = response.json()
    return reward


async def member_with(tenant: TenantHandle, points: int) -> dict[str, Any]:
    member = await tenant.enrol()
    if points:
        await tenant.credit(member["id"], points)
    return member


async def redeem(tenant: TenantHandle, member_id: str, reward_id: str, **kw: Any) -> Any:
    return await tenant.post("/v1/redemptions", json={"member_id": member_id, "reward_id": reward_id}, **kw)


async def set_tier(runtime: Runtime, tenant: TenantHandle, member_id: str, code: str, rank: int) -> None:
    """Tiers' own API is built elsewhere: insert the tier (if new) and put the member in it."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        tier = (await session.execute(select(Tier).where(Tier.code == code))).scalar_one_or_none()
        if tier is None:
            tier = Tier(tenant_id=tenant.id, id=new_id(), code=code, name=code.title(), rank=rank)
            session.add(tier)
            await session.flush()
        await session.execute(update(Member).where(Member.id == uuid.UUID(member_id)).values(tier_id=tier.id))


async def outbox_types(runtime: Runtime, tenant: TenantHandle) -> list[str]:
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        rows = await session.execute(select(OutboxEvent.type).order_by(OutboxEvent.id))
        return list(rows.scalars())


async def ledger(tenant: TenantHandle, member_id: str) -> list[dict[str, Any]]:
    response = await tenant.get(f"/v1/members/{member_id}/ledger?limit=500")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def redemptions(tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    response = await tenant.get("/v1/redemptions", params={"limit": 500} | params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def balances_and_debits(runtime: Runtime, tenant: TenantHandle) -> tuple[Counter[int], int]:
    """Every member's available points (as a count per amount) and the number of redemption debits, read in two
    queries (concurrency tests would otherwise spend their time on a hundred GETs)."""
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        available = (await session.execute(select(PointBalance.available))).scalars().all()
        debits = (
            await session.execute(
                select(func.count()).where(
                    LedgerEntry.tenant_id == tenant.id,
                    LedgerEntry.kind == "redeem",
                    LedgerEntry.cause_type == "redemption",
                )
            )
        ).scalar_one()
    return Counter(available), debits
