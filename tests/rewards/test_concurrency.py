"""Redemptions racing each other: over real HTTP on PostgreSQL (and in-process on SQLite, where writes queue)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.rewards.support import balances_and_debits, ledger, make_reward, member_with, redeem, redemptions


async def _members(tenant: TenantHandle, count: int, points: int) -> list[dict]:
    """Set-up a few at a time: only the race itself needs every connection at once."""
    gate = asyncio.Semaphore(8)

    async def one() -> dict:
        async with gate:
            return await member_with(tenant, points)

    return await asyncio.gather(*(one() for _ in range(count)))


async def _last_ten_race(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=100, stock=10)
    members = await _members(tenant, 50, 250)
    responses = await asyncio.gather(*(redeem(tenant, m["id"], reward["id"]) for m in members))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 409: 40}, statuses
    assert {r.json()["type"].rsplit("/", 1)[-1] for r in responses if r.status_code == 409} == {"out-of-stock"}
    made = await redemptions(tenant, reward_id=reward["id"])
    assert len(made) == 10
    assert len({r["voucher_code"] for r in made}) == 10 and len({r["member_id"] for r in made}) == 10
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {r["id"] for r in made}
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 0
    assert await balances_and_debits(runtime, tenant) == ({150: 10, 250: 40}, 10)


async def test_50_redemptions_of_the_last_10_items_over_http_on_postgres(
    live_tenant: TenantHandle, pg_client: AppClient
) -> None:
    # The live server and the in-process PostgreSQL app share the session's database: read it through the latter.
    await _last_ten_race(live_tenant, pg_client.app.state["runtime"])


async def test_50_redemptions_of_the_last_10_items_on_sqlite(
    client: AppClient, backend: str, tenant: TenantHandle, runtime: Runtime
) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL runs this over real HTTP above")
    await _last_ten_race(tenant, runtime)


async def test_20_concurrent_redemptions_by_one_member_respect_the_limit(live_tenant: TenantHandle) -> None:
    reward = await make_reward(live_tenant, points_cost=100, per_member_limit=3)
    member = await member_with(live_tenant, 10_000)
    responses = await asyncio.gather(*(redeem(live_tenant, member["id"], reward["id"]) for _ in range(20)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: 17}, statuses
    assert {r.json()["type"].rsplit("/", 1)[-1] for r in responses if r.status_code == 409} == {
        "redemption-limit-reached"
    }
    assert len(await redemptions(live_tenant, member_id=member["id"])) == 3
    assert (await live_tenant.balance(member["id"]))["available"] == 10_000 - 300


async def test_one_voucher_used_concurrently_is_used_once(live_tenant: TenantHandle) -> None:
    reward = await make_reward(live_tenant, points_cost=100)
    member = await member_with(live_tenant, 100)
    made = (await redeem(live_tenant, member["id"], reward["id"])).json()
    url = f"/v1/redemptions/{made['id']}/use"
    responses = await asyncio.gather(*(live_tenant.post(url, json={"location": f"till {i}"}) for i in range(10)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 9}, statuses
    winner = next(r.json() for r in responses if r.status_code == 200)
    stored = (await live_tenant.get(f"/v1/redemptions/{made['id']}")).json()
    assert stored["status"] == "used" and stored["details"]["location"] == winner["details"]["location"]


async def test_concurrent_cancels_give_the_points_back_once(live_tenant: TenantHandle) -> None:
    reward = await make_reward(live_tenant, points_cost=100, stock=1)
    member = await member_with(live_tenant, 100)
    made = (await redeem(live_tenant, member["id"], reward["id"])).json()
    url = f"/v1/redemptions/{made['id']}/cancel"
    responses = await asyncio.gather(*(live_tenant.post(url) for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1  # every caller sees the one cancellation
    assert (await live_tenant.balance(member["id"]))["available"] == 100
    assert (await live_tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 1
    assert [e["kind"] for e in await ledger(live_tenant, member["id"])] == ["reverse", "redeem", "adjust"]


async def test_concurrent_retries_with_one_idempotency_key_redeem_once(live_tenant: TenantHandle) -> None:
    reward = await make_reward(live_tenant, points_cost=100, stock=5)
    member = await member_with(live_tenant, 1000)
    headers = {"Idempotency-Key": f"redeem-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(redeem(live_tenant, member["id"], reward["id"], headers=headers) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert len(await redemptions(live_tenant, member_id=member["id"])) == 1
    assert (await live_tenant.balance(member["id"]))["available"] == 900
    assert (await live_tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 4
