"""Redemptions over HTTP on both databases: redeem, use, cancel, look up; every refusal writes nothing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from core.clock import utcnow
from core.db.engine import tenant_session
from core.program.settings import load_program_settings
from core.rewards import service
from core.runtime import Runtime
from core.testing import TenantHandle
from tests.rewards.support import (
    ledger,
    make_reward,
    member_with,
    outbox_types,
    redeem,
    redemptions,
    set_tier,
)

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_redeem_use_and_cancel(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, code="COFFEE", points_cost=150, stock=5, voucher_valid_days=30)
    member = await member_with(tenant, 1000)

    response = await redeem(tenant, member["id"], reward["id"])
    assert response.status_code == 201, response.text
    first = response.json()
    assert CODE.match(first["voucher_code"])
    assert first["status"] == "issued" and first["points"] == 150 and first["member_id"] == member["id"]
    assert first["reward"] == {"id": reward["id"], "code": "COFFEE", "name": "Free coffee", "kind": "voucher"}
    issued_at = datetime.fromisoformat(first["issued_at"])
    assert datetime.fromisoformat(first["expires_at"]) - issued_at == timedelta(days=30)
    assert first["details"]["issued_by"].startswith("key:")
    assert (await tenant.balance(member["id"]))["available"] == 850
    assert (await tenant.balance(member["id"]))["lifetime"]["redeemed"] == 150
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 4
    debit = (await ledger(tenant, member["id"]))[0]
    assert (debit["id"], debit["kind"], debit["points"]) == (first["debit_entry_id"], "redeem", -150)
    assert debit["cause"]["type"] == "redemption" and debit["cause"]["id"] == first["id"]
    assert "reward.redeemed" in await outbox_types(runtime, tenant)

    second = (await redeem(tenant, member["id"], reward["id"])).json()
    assert second["voucher_code"] != first["voucher_code"]
    assert (await tenant.get(f"/v1/redemptions/{first['id']}")).json() == first

    # Use: once. A second use (or cancelling a used voucher) is a 409 naming the status.
    used = await tenant.post(f"/v1/redemptions/{first['id']}/use", json={"location": "Store 12", "reference": "R-9"})
    assert used.status_code == 200, used.text
    assert used.json()["status"] == "used" and used.json()["used_at"] is not None
    details = used.json()["details"]
    assert (details["location"], details["reference"]) == ("Store 12", "R-9") and details["used_by"].startswith("key:")
    for action in ("use", "cancel"):
        again = await tenant.post(f"/v1/redemptions/{first['id']}/{action}")
        assert again.status_code == 409, action
        assert again.json()["type"].endswith("/redemption-closed") and again.json()["voucher_status"] == "used"
    assert (await tenant.balance(member["id"]))["available"] == 700

    # Cancel: the points and the stock unit come back; a repeated cancel answers the same and gives nothing twice.
    cancelled = await tenant.post(f"/v1/redemptions/{second['id']}/cancel", json={"reason": "changed mind"})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancelled_at"] is not None
    assert body["details"]["cancel_reason"] == "changed mind"
    assert (await tenant.balance(member["id"]))["available"] == 850
    assert (await tenant.balance(member["id"]))["lifetime"]["redeemed"] == 150
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 4
    repeat = await tenant.post(f"/v1/redemptions/{second['id']}/cancel")
    assert repeat.status_code == 200 and repeat.json() == body
    assert (await tenant.balance(member["id"]))["available"] == 850
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 4
    restore = [e for e in await ledger(tenant, member["id"]) if e["kind"] == "reverse"]
    assert len(restore) == 1 and restore[0]["points"] == 150 and restore[0]["id"] == body["restore_entry_id"]
    assert restore[0]["reverses_entry_id"] == second["debit_entry_id"]
    assert (await tenant.post(f"/v1/redemptions/{second['id']}/use")).status_code == 409
    types = await outbox_types(runtime, tenant)
    assert types.count("reward.redeemed") == 2 and "redemption.used" in types
    assert types.count("redemption.cancelled") == 1


async def test_cancel_gives_points_back_to_the_lots_they_came_from(tenant: TenantHandle) -> None:
    reward = await make_reward(tenant, points_cost=150)
    member = await tenant.enrol()
    await tenant.credit(member["id"], 100, "soon", expires_at=_in(10))
    await tenant.credit(member["id"], 100, "late", expires_at=_in(60))
    made = (await redeem(tenant, member["id"], reward["id"])).json()
    expiring = (await tenant.get(f"/v1/members/{member['id']}/balance?expiring_within_days=90")).json()["expiring"]
    assert [e["points"] for e in expiring] == [50]  # the soonest-expiring points went first
    await tenant.post(f"/v1/redemptions/{made['id']}/cancel")
    expiring = (await tenant.get(f"/v1/members/{member['id']}/balance?expiring_within_days=90")).json()["expiring"]
    assert [e["points"] for e in expiring] == [100, 100]


async def test_lists_filter_and_find_a_voucher_as_typed(tenant: TenantHandle) -> None:
    coffee = await make_reward(tenant, code="COFFEE", points_cost=10)
    cake = await make_reward(tenant, code="CAKE", points_cost=20)
    ada, bob = await member_with(tenant, 500), await member_with(tenant, 500)
    made = [
        (await redeem(tenant, m["id"], r["id"])).json()
        for m, r in ((ada, coffee), (ada, cake), (bob, coffee), (bob, cake))
    ]
    await tenant.post(f"/v1/redemptions/{made[0]['id']}/use")
    await tenant.post(f"/v1/redemptions/{made[3]['id']}/cancel")
    assert [r["id"] for r in await redemptions(tenant)] == [m["id"] for m in reversed(made)]  # newest first
    assert [r["id"] for r in await redemptions(tenant, member_id=ada["id"])] == [made[1]["id"], made[0]["id"]]
    assert [r["id"] for r in await redemptions(tenant, reward_id=coffee["id"])] == [made[2]["id"], made[0]["id"]]
    assert [r["id"] for r in await redemptions(tenant, status="issued")] == [made[2]["id"], made[1]["id"]]
    assert [r["id"] for r in await redemptions(tenant, status="used")] == [made[0]["id"]]
    assert [r["id"] for r in await redemptions(tenant, status="cancelled")] == [made[3]["id"]]
    typed = made[2]["voucher_code"].lower().replace("-", " ")
    assert [r["id"] for r in await redemptions(tenant, voucher_code=typed)] == [made[2]["id"]]
    assert await redemptions(tenant, voucher_code="0000-0000-0000") == []
    bad = await tenant.get("/v1/redemptions", params={"voucher_code": "not a code"})
    assert bad.status_code == 422 and bad.json()["field"] == "voucher_code"
    page = (await tenant.get("/v1/redemptions", params={"limit": 3})).json()
    rest = (await tenant.get("/v1/redemptions", params={"cursor": page["next_cursor"]})).json()
    assert [r["id"] for r in page["items"] + rest["items"]] == [m["id"] for m in reversed(made)]
    issued = datetime.fromisoformat(made[2]["issued_at"])
    later = await redemptions(tenant, issued_after=issued.isoformat())
    assert [r["id"] for r in later] == [made[3]["id"], made[2]["id"]]
    earlier = await redemptions(tenant, issued_before=issued.isoformat())
    assert [r["id"] for r in earlier] == [made[1]["id"], made[0]["id"]]


# --- refusals: a clear problem, and nothing written ----------------------------------------------------------------


async def _state(tenant: TenantHandle, runtime: Runtime, member_id: str, reward_id: str) -> dict[str, Any]:
    return {
        "balance": {k: v for k, v in (await tenant.balance(member_id)).items() if k != "as_of"},
        "ledger": await ledger(tenant, member_id),
        "reward": (await tenant.get(f"/v1/rewards/{reward_id}")).json(),
        "redemptions": await redemptions(tenant),
        "outbox": await outbox_types(runtime, tenant),
    }


async def _refused(
    tenant: TenantHandle, runtime: Runtime, member_id: str, reward_id: str, status: int, slug: str, field: str
) -> dict[str, Any]:
    before = await _state(tenant, runtime, member_id, reward_id)
    response = await redeem(tenant, member_id, reward_id)
    assert response.status_code == status, response.text
    problem: dict[str, Any] = response.json()
    assert problem["type"].endswith(f"/{slug}") and problem["field"] == field
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _state(tenant, runtime, member_id, reward_id) == before
    return problem


async def test_refused_for_insufficient_points(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=500, stock=3)
    member = await member_with(tenant, 499)
    problem = await _refused(tenant, runtime, member["id"], reward["id"], 409, "insufficient-points", "points")
    assert (problem["available"], problem["requested"]) == (499, 500)


async def test_refused_out_of_stock(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=10, stock=1)
    member = await member_with(tenant, 100)
    assert (await redeem(tenant, member["id"], reward["id"])).status_code == 201
    await _refused(tenant, runtime, member["id"], reward["id"], 409, "out-of-stock", "reward_id")
    empty = await make_reward(tenant, stock=0)
    await _refused(tenant, runtime, member["id"], empty["id"], 409, "out-of-stock", "reward_id")


async def test_refused_beyond_the_per_member_limit(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=10, per_member_limit=2)
    member = await member_with(tenant, 100)
    made = [(await redeem(tenant, member["id"], reward["id"])).json() for _ in range(2)]
    problem = await _refused(tenant, runtime, member["id"], reward["id"], 409, "redemption-limit-reached", "reward_id")
    assert problem["limit"] == 2
    # A cancelled redemption no longer counts; a used one does. Another member has their own allowance.
    await tenant.post(f"/v1/redemptions/{made[0]['id']}/use")
    await tenant.post(f"/v1/redemptions/{made[1]['id']}/cancel")
    assert (await redeem(tenant, member["id"], reward["id"])).status_code == 201
    other = await member_with(tenant, 100)
    assert (await redeem(tenant, other["id"], reward["id"])).status_code == 201


async def test_refused_by_tier(tenant: TenantHandle, runtime: Runtime) -> None:
    by_rank = await make_reward(tenant, points_cost=10, min_tier_rank=2)
    by_code = await make_reward(tenant, points_cost=10, tier_codes=["gold"])
    member = await member_with(tenant, 100)
    problem = await _refused(tenant, runtime, member["id"], by_rank["id"], 409, "not-eligible", "member_id")
    assert problem["min_tier_rank"] == 2 and problem["tier"] is None
    await set_tier(runtime, tenant, member["id"], "silver", 1)
    await _refused(tenant, runtime, member["id"], by_rank["id"], 409, "not-eligible", "member_id")
    problem = await _refused(tenant, runtime, member["id"], by_code["id"], 409, "not-eligible", "member_id")
    assert problem["tier"] == "silver" and problem["tier_codes"] == ["gold"]
    await set_tier(runtime, tenant, member["id"], "gold", 2)
    assert (await redeem(tenant, member["id"], by_rank["id"])).status_code == 201
    assert (await redeem(tenant, member["id"], by_code["id"])).status_code == 201


async def test_refused_outside_validity_or_when_inactive(tenant: TenantHandle, runtime: Runtime) -> None:
    member = await member_with(tenant, 100)
    cases = [
        (await make_reward(tenant, valid_from=_in(1)), "not_yet_valid"),
        (await make_reward(tenant, valid_from=_in(-10), valid_until=_in(-1)), "ended"),
        (await make_reward(tenant, active=False), "inactive"),
    ]
    withdrawn = await make_reward(tenant)
    await tenant.delete(f"/v1/rewards/{withdrawn['id']}")
    cases.append((withdrawn, "inactive"))
    for reward, reason in cases:
        problem = await _refused(tenant, runtime, member["id"], reward["id"], 409, "reward-unavailable", "reward_id")
        assert problem["reason"] == reason


async def test_refused_for_an_anonymized_member(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=10)
    member = await member_with(tenant, 100)
    await tenant.post(f"/v1/members/{member['id']}/anonymize")
    await _refused(tenant, runtime, member["id"], reward["id"], 409, "conflict", "member_id")
    url = f"/v1/members/{member['id']}/rewards"
    assert (await tenant.get(url)).json()["items"] == []
    listed = (await tenant.get(url, params={"only_redeemable": "false"})).json()["items"]
    assert [(i["redeemable"], i["reason"].rsplit("/", 1)[-1]) for i in listed] == [(False, "conflict")]


async def test_unknown_member_reward_or_redemption_is_404(tenant: TenantHandle) -> None:
    reward = await make_reward(tenant)
    member = await member_with(tenant, 1000)
    nobody = await redeem(tenant, str(uuid.uuid4()), reward["id"])
    assert nobody.status_code == 404 and nobody.json()["field"] == "member_id"
    nothing = await redeem(tenant, member["id"], str(uuid.uuid4()))
    assert nothing.status_code == 404 and nothing.json()["field"] == "reward_id"
    for path in ("", "/use", "/cancel"):
        method = "GET" if not path else "POST"
        response = await tenant.client.request(method, f"/v1/redemptions/{uuid.uuid4()}{path}", headers=tenant.headers)
        assert response.status_code == 404 and response.json()["field"] == "redemption_id"
    assert (await tenant.get(f"/v1/members/{uuid.uuid4()}/rewards")).status_code == 404
    assert (await tenant.balance(member["id"]))["available"] == 1000


BAD_BODIES = [
    ({"reward_id": "R"}, "member_id"),
    ({"member_id": "not-a-uuid", "reward_id": "R"}, "member_id"),
    ({"member_id": "M"}, "reward_id"),
    ({"member_id": "M", "reward_id": 42}, "reward_id"),
    ({"member_id": "M", "reward_id": "R", "quantity": 2}, "quantity"),
]


async def test_bad_redemption_bodies_are_422_naming_the_field(tenant: TenantHandle) -> None:
    reward = await make_reward(tenant)
    member = await member_with(tenant, 1000)
    for template, field in BAD_BODIES:
        body = {
            k: {"M": member["id"], "R": reward["id"]}.get(v, v) if isinstance(v, str) else v
            for k, v in template.items()
        }
        response = await tenant.post("/v1/redemptions", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    bad_use = await tenant.post(f"/v1/redemptions/{uuid.uuid4()}/use", json={"where": "x"})
    assert bad_use.status_code == 422 and bad_use.json()["field"] == "where"
    assert await redemptions(tenant) == []
    assert (await tenant.balance(member["id"]))["available"] == 1000


async def test_an_idempotency_key_redeems_once(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=100, stock=10)
    member = await member_with(tenant, 1000)
    headers = {"Idempotency-Key": f"redeem-{uuid.uuid4()}"}
    first = await redeem(tenant, member["id"], reward["id"], headers=headers)
    second = await redeem(tenant, member["id"], reward["id"], headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content and second.headers["idempotent-replayed"] == "true"
    assert len(await redemptions(tenant)) == 1
    assert (await tenant.balance(member["id"]))["available"] == 900
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 9
    assert (await outbox_types(runtime, tenant)).count("reward.redeemed") == 1
    # Without the key the same request is a second redemption.
    assert (await redeem(tenant, member["id"], reward["id"])).status_code == 201
    assert len(await redemptions(tenant)) == 2


async def test_a_voucher_code_taken_already_is_drawn_again(tenant: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(tenant, points_cost=10)
    member = await member_with(tenant, 100)
    taken = (await redeem(tenant, member["id"], reward["id"])).json()["voucher_code"]
    codes = iter([taken, taken, "ABCD-EFGH-JKMN"])
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        outcome = await service.redeem(
            session,
            tenant_id=tenant.id,
            member_id=uuid.UUID(member["id"]),
            reward_id=uuid.UUID(reward["id"]),
            program=await load_program_settings(session, tenant.id),
            plugins=runtime.plugins,
            actor="test",
            now=utcnow(),
            new_code=lambda: next(codes),
        )
    assert outcome.redemption.voucher_code == "ABCD-EFGH-JKMN"
    assert sorted(r["voucher_code"] for r in await redemptions(tenant)) == sorted([taken, "ABCD-EFGH-JKMN"])
    assert (await tenant.balance(member["id"]))["available"] == 80


async def test_what_a_member_can_redeem_now(tenant: TenantHandle, runtime: Runtime) -> None:
    member = await member_with(tenant, 300)
    cheap = await make_reward(tenant, code="CHEAP", points_cost=100, per_member_limit=1)
    await make_reward(tenant, code="FAIR", points_cost=300, stock=2)
    await make_reward(tenant, code="DEAR", points_cost=301)
    await make_reward(tenant, code="GONE", points_cost=10, stock=0)
    await make_reward(tenant, code="GOLD", points_cost=10, tier_codes=["gold"])
    await make_reward(tenant, code="SOON", points_cost=10, valid_from=_in(3))
    await make_reward(tenant, code="ENDED", points_cost=10, valid_from=_in(-3), valid_until=_in(-1))
    await make_reward(tenant, code="OFF", points_cost=10, active=False)
    url = f"/v1/members/{member['id']}/rewards"
    now = (await tenant.get(url)).json()
    assert now["available"] == 300
    assert [i["reward"]["code"] for i in now["items"]] == ["CHEAP", "FAIR"]  # cheapest first
    assert all(i["redeemable"] and i["reason"] is None for i in now["items"])
    everything = (await tenant.get(url, params={"only_redeemable": "false"})).json()["items"]
    reasons = {i["reward"]["code"]: (i["reason"] or "").rsplit("/", 1)[-1] for i in everything}
    assert reasons == {
        "CHEAP": "",
        "FAIR": "",
        "DEAR": "insufficient-points",
        "GONE": "out-of-stock",
        "GOLD": "not-eligible",
        "SOON": "reward-unavailable",
    }
    assert (await redeem(tenant, member["id"], cheap["id"])).status_code == 201
    assert [i["reward"]["code"] for i in (await tenant.get(url)).json()["items"]] == []  # limit reached, 200 left
    await tenant.credit(member["id"], 1000)
    await set_tier(runtime, tenant, member["id"], "gold", 1)
    codes = [i["reward"]["code"] for i in (await tenant.get(url)).json()["items"]]
    assert codes == ["GOLD", "FAIR", "DEAR"]
