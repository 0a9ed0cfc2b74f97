"""Fraud rules hold fill-ups (nothing awarded) in the review queue; approval awards exactly once (also under
concurrent approvals on PostgreSQL over real HTTP), rejection awards nothing, and who decided and why is kept."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.testing import TenantHandle, create_tenant
from plugins.fuel_station.tests.conftest import Fuel, at, fill_up, shop


def codes(outcome: dict) -> str:
    return outcome["reason"] or ""


async def test_more_than_three_fill_ups_a_day_is_held(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.site("S4")
    statuses = []
    for i, site in enumerate(("S1", "S2", "S3", "S4")):
        outcome = await fuel.send(fill_up("card-1", "20", "150", site=site, occurred_at=at(60 * (4 - i))))
        statuses.append(outcome["status"])
    assert statuses == ["awarded", "awarded", "awarded", "held"]
    assert "fuel.daily_fill_ups" in codes(outcome) and "4 fill-ups today, more than 3" in codes(outcome)
    assert outcome["points"] == 0 and outcome["awards"] == []
    assert await fuel.available(member["id"]) == 60


async def test_a_repeat_fill_at_the_same_site_within_thirty_minutes_is_held(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    assert (await fuel.send(fill_up("card-1", "20", "150", occurred_at=at(25))))["status"] == "awarded"
    elsewhere = await fuel.send(fill_up("card-1", "20", "150", site="S2", occurred_at=at(20)))
    assert elsewhere["status"] == "awarded"
    repeat = await fuel.send(fill_up("card-1", "20", "150", occurred_at=at(0)))
    assert repeat["status"] == "held" and "fuel.repeat_fill" in codes(repeat)
    assert await fuel.available(member["id"]) == 40


async def test_volume_above_the_tank_size_is_held_unless_the_site_allows_it(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.site("TRUCKS", tank_size_litres="600", daily_max_litres="1000")
    held = await fuel.send(fill_up("card-1", "120", "900"))
    assert held["status"] == "held" and "120 L is more than the tank size of 100 L" in codes(held)
    truck = await fuel.send(fill_up("card-1", "500", "3500", site="TRUCKS", grade="diesel"))
    assert truck["status"] == "awarded" and truck["points"] == 75  # the litre cap still counts 75
    assert await fuel.available(member["id"]) == 75


async def test_per_site_daily_anomaly_limits_hold(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.site("STRICT", daily_max_fill_ups=1)
    assert (await fuel.send(fill_up("card-1", "20", "150", site="STRICT", occurred_at=at(120))))["status"] == "awarded"
    second = await fuel.send(fill_up("card-1", "20", "150", site="STRICT", occurred_at=at(0)))
    assert second["status"] == "held" and "fuel.site_daily_fill_ups" in codes(second)
    # litres: 150 L per card per site and day by default
    assert (await fuel.send(fill_up("card-1", "80", "600", site="S2", occurred_at=at(120))))["status"] == "awarded"
    litres = await fuel.send(fill_up("card-1", "80", "600", site="S2", occurred_at=at(1)))
    assert litres["status"] == "held" and "160 L at S2 today, more than 150 L" in codes(litres)
    assert await fuel.available(member["id"]) == 20 + 75


async def test_the_review_queue_lists_approves_once_and_rejects_with_who_and_why(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.send(fill_up("card-1", "20", "150", occurred_at=at(10)))
    first = await fuel.send(fill_up("card-1", "30", "220", grade="premium", occurred_at=at(5)))
    second = await fuel.send(fill_up("card-1", "110", "800", site="S2"))
    assert first["status"] == second["status"] == "held"
    queue = (await fuel.t.get("/v1/fuel/reviews")).json()["items"]
    assert [r["id"] for r in queue] == [second["id"], first["id"]]  # newest first
    assert [f["code"] for f in queue[1]["flags"]] == ["fuel.repeat_fill"]
    assert queue[0]["site"] == "S2" and queue[0]["litres"] == "110.0000" and queue[0]["decision"] is None

    approved = await fuel.t.post(f"/v1/fuel/reviews/{first['id']}/approve", json={"reason": "two cars, CCTV checked"})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "awarded" and body["points"] == 60
    decision = body["decision"]
    assert decision["decision"] == "approved" and decision["reason"] == "two cars, CCTV checked"
    assert decision["decided_by"] == f"key:{fuel.t.data['api_key']['id']}" and decision["points"] == 60
    assert await fuel.available(member["id"]) == 20 + 60
    again = await fuel.t.post(f"/v1/fuel/reviews/{first['id']}/approve", json={"reason": "again"})
    assert again.status_code == 409
    too_late = await fuel.t.post(f"/v1/fuel/reviews/{first['id']}/reject", json={"reason": "changed my mind"})
    assert too_late.status_code == 409
    assert await fuel.available(member["id"]) == 80

    rejected = await fuel.t.post(f"/v1/fuel/reviews/{second['id']}/reject", json={"reason": "staff card"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["decision"]["reason"] == "staff card" and rejected.json()["decision"]["points"] == 0
    assert await fuel.available(member["id"]) == 80
    event = (await fuel.t.get(f"/v1/events/{second['id']}")).json()
    assert event["status"] == "rejected" and event["reason"] == "rejected: staff card"

    assert (await fuel.t.get("/v1/fuel/reviews")).json()["items"] == []
    done = {
        r["id"]: r["status"] for r in (await fuel.t.get("/v1/fuel/reviews", params={"status": "all"})).json()["items"]
    }
    assert done == {first["id"]: "awarded", second["id"]: "rejected"}
    assert [r["id"] for r in (await fuel.t.get("/v1/fuel/reviews", params={"status": "approved"})).json()["items"]] == [
        first["id"]
    ]
    one = await fuel.t.get(f"/v1/fuel/reviews/{second['id']}")
    assert one.status_code == 200 and one.json()["decision"]["decision"] == "rejected"
    # an event that was never held is not in this queue
    plain = await fuel.send(shop("card-1", "20", site="S3"))
    assert plain["status"] == "awarded"
    assert (await fuel.t.post(f"/v1/fuel/reviews/{plain['id']}/approve", json={"reason": "x"})).status_code == 404
    assert (await fuel.t.get(f"/v1/fuel/reviews/{plain['id']}")).status_code == 404
    missing = await fuel.t.post(f"/v1/fuel/reviews/{first['id']}/approve", json={})
    assert missing.status_code == 422 and missing.json()["field"] == "reason"


async def test_decisions_through_cores_routes_keep_the_queue_true(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    one = await fuel.send(fill_up("card-1", "120", "900"))
    two = await fuel.send(fill_up("card-1", "130", "950", site="S2"))
    assert (await fuel.t.post(f"/v1/events/{one['id']}/approve", json={"reason": "ok"})).status_code == 200
    assert (await fuel.t.post(f"/v1/events/{two['id']}/reject", json={"reason": "no"})).status_code == 200
    reviews = {r["id"]: r for r in (await fuel.t.get("/v1/fuel/reviews", params={"status": "all"})).json()["items"]}
    assert {i: r["status"] for i, r in reviews.items()} == {one["id"]: "awarded", two["id"]: "rejected"}
    assert (await fuel.t.get("/v1/fuel/reviews")).json()["items"] == []
    assert await fuel.available(member["id"]) == 75
    # Who decided and why is kept as for this queue's own routes.
    actor = f"key:{fuel.t.data['api_key']['id']}"
    approved, rejected = reviews[one["id"]]["decision"], reviews[two["id"]]["decision"]
    assert (approved["decision"], approved["reason"], approved["decided_by"], approved["points"]) == (
        "approved",
        "ok",
        actor,
        75,
    )
    assert (rejected["decision"], rejected["reason"], rejected["decided_by"], rejected["points"]) == (
        "rejected",
        "no",
        actor,
        0,
    )
    assert approved["decided_at"] is not None and rejected["decided_at"] is not None
    single = (await fuel.t.get(f"/v1/fuel/reviews/{two['id']}")).json()
    assert single["decision"] == rejected
    only_approved = (await fuel.t.get("/v1/fuel/reviews", params={"status": "approved"})).json()["items"]
    assert [(r["id"], r["decision"]["reason"]) for r in only_approved] == [(one["id"], "ok")]
    # Decided once: this queue's routes answer 409 like core's.
    assert (await fuel.t.post(f"/v1/fuel/reviews/{one['id']}/reject", json={"reason": "late"})).status_code == 409


async def test_an_approval_respects_the_monthly_cap_at_the_time(fuel: Fuel) -> None:
    await fuel.settings(monthly_points_cap=100)
    member = await fuel.member("card-1")
    held = await fuel.send(fill_up("card-1", "101", "700"))
    await fuel.send(fill_up("card-1", "70", "500", site="S2"))
    approved = (await fuel.t.post(f"/v1/fuel/reviews/{held['id']}/approve", json={"reason": "ok"})).json()
    assert approved["points"] == 30  # 75 counted litres, 30 left under the cap
    assert await fuel.available(member["id"]) == 100


@pytest.mark.postgres_only
async def test_concurrent_approvals_award_exactly_once(live_client: httpx.AsyncClient) -> None:
    tenant: TenantHandle = await create_tenant(live_client, timezone="Asia/Shanghai", currency="CNY")
    fuel = Fuel(tenant)
    await fuel.settings()
    await fuel.site("S1")
    member = await fuel.member("card-1")
    held = await fuel.send(fill_up("card-1", "120", "900", grade="premium"))
    assert held["status"] == "held"
    responses = await asyncio.gather(
        *(tenant.post(f"/v1/fuel/reviews/{held['id']}/approve", json={"reason": f"reviewer {i}"}) for i in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert winner["points"] == 150 and winner["decision"]["reason"].startswith("reviewer ")
    assert await fuel.available(member["id"]) == 150
    ledger = (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    earns = [e for e in ledger if e["kind"] == "earn" and e["cause"].get("id") == held["id"]]
    assert len(earns) == 1 and earns[0]["points"] == 150
    reviews = (await tenant.get("/v1/fuel/reviews", params={"status": "all"})).json()["items"]
    assert len(reviews) == 1 and reviews[0]["decision"]["reason"] == winner["decision"]["reason"]
