"""Vouchers expire through the worker: marked expired in batches, points (and stock) back when the reward says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.clock import utcnow
from core.db.engine import tenant_session
from core.rewards import service
from core.runtime import Runtime
from core.testing import TenantHandle
from core.worker import tick
from tests.rewards.support import ledger, make_reward, member_with, outbox_types, redeem, redemptions


async def due_now(runtime: Runtime, tenant: TenantHandle) -> int:
    """One pass of the job's work for this tenant alone (a full ``tick`` runs every job of every tenant)."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        return await service.expire_due(session, tenant_id=tenant.id, now=utcnow())


async def test_vouchers_expire_and_forfeit_their_points(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=100, stock=5, voucher_valid_days=30)
    member = await member_with(tenant, 500)
    kept = (await redeem(tenant, member["id"], reward["id"])).json()
    lapsing = (await redeem(tenant, member["id"], reward["id"])).json()
    await tenant.post(f"/v1/redemptions/{kept['id']}/use")
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(days=29), tick=True):
        assert await due_now(runtime, tenant) == 0
        assert (await tenant.get(f"/v1/redemptions/{lapsing['id']}")).json()["status"] == "issued"
    with time_machine.travel(start + timedelta(days=30, minutes=1), tick=True):
        # Past expires_at before the job ran: already expired to every client, and unusable.
        assert (await tenant.get(f"/v1/redemptions/{lapsing['id']}")).json()["status"] == "expired"
        assert [r["id"] for r in await redemptions(tenant, status="expired")] == [lapsing["id"]]
        assert await redemptions(tenant, status="issued") == []
        for action in ("use", "cancel"):
            refused = await tenant.post(f"/v1/redemptions/{lapsing['id']}/{action}")
            assert refused.status_code == 409 and refused.json()["voucher_status"] == "expired"
        report = await tick(runtime, tenant.id)
        assert report.kinds["rewards.expire"] >= 1
        assert await due_now(runtime, tenant) == 0  # a second pass finds nothing due
        expired = (await tenant.get(f"/v1/redemptions/{lapsing['id']}")).json()
    assert expired["status"] == "expired" and expired["expired_at"] is not None
    assert expired["restore_entry_id"] is None
    assert (await tenant.get(f"/v1/redemptions/{kept['id']}")).json()["status"] == "used"
    assert (await tenant.balance(member["id"]))["available"] == 300  # forfeited
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 3
    assert [e["kind"] for e in await ledger(tenant, member["id"])] == ["redeem", "redeem", "adjust"]
    assert (await outbox_types(runtime, tenant)).count("redemption.expired") == 1


async def test_refund_on_expiry_gives_points_and_stock_back_once(tenant: TenantHandle, runtime: Runtime) -> None:
    refunded = await make_reward(tenant, points_cost=100, stock=2, voucher_valid_days=7, refund_on_expiry=True)
    forfeited = await make_reward(tenant, points_cost=50, voucher_valid_days=7)
    forever = await make_reward(tenant, points_cost=10)
    ada, bob = await member_with(tenant, 1000), await member_with(tenant, 1000)
    made = [(await redeem(tenant, m["id"], r["id"])).json() for m in (ada, bob) for r in (refunded, forfeited, forever)]
    assert made[2]["expires_at"] is None
    with time_machine.travel(datetime.now(UTC) + timedelta(days=8), tick=True):
        await tick(runtime, tenant.id)
        assert await due_now(runtime, tenant) == 0
        after = {r["id"]: r for r in await redemptions(tenant)}
    assert [after[m["id"]]["status"] for m in made] == ["expired", "expired", "issued"] * 2
    for member in (ada, bob):
        assert (await tenant.balance(member["id"]))["available"] == 1000 - 50 - 10
        entries = await ledger(tenant, member["id"])
        restores = [e for e in entries if e["kind"] == "reverse"]
        assert len(restores) == 1 and restores[0]["points"] == 100 and restores[0]["cause"]["type"] == "redemption"
    assert {after[made[i]["id"]]["restore_entry_id"] is not None for i in (0, 3)} == {True}
    assert (await tenant.get(f"/v1/rewards/{refunded['id']}")).json()["stock"] == 2
    assert (await outbox_types(runtime, tenant)).count("redemption.expired") == 4
