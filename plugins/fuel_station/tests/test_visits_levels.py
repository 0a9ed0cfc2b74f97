"""Visits and the reward every 10th; levels on the plugin's credits over a rolling 90 days with downgrades by the
worker; new members starting on a higher level for N months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.runtime import Runtime
from core.worker import tick
from plugins.fuel_station.tests.conftest import Fuel, fill_up, shop

START = datetime(2031, 3, 1, 4, 0, tzinfo=UTC)  # noon in Shanghai


async def member_tier(fuel: Fuel, member_id: str) -> dict:
    response = await fuel.t.get(f"/v1/members/{member_id}/tier")
    assert response.status_code == 200, response.text
    state: dict = response.json()
    return state


async def test_visits_and_a_reward_every_tenth(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    for _ in range(6):
        outcome = await fuel.send(shop("card-1", "2"))
        assert outcome["credits"]["visits"] == "1"
    small = await fuel.send(shop("card-1", "1.99"))  # below the 2 of a shop visit
    assert "visits" not in small["credits"]
    low_fuel = await fuel.send(fill_up("card-1", "1", "9.99", site="S2"))  # below the 10 of a fuel visit
    assert "visits" not in low_fuel["credits"]
    batch = [shop("card-1", "3"), fill_up("card-1", "20", "150", site="S3"), shop("card-1", "3"), shop("card-1", "2")]
    response = await fuel.t.post("/v1/events/batch", json={"events": batch})
    outcomes = [r["outcome"] for r in response.json()["results"]]
    rewards = [[a for a in o["awards"] if a["source"] == "fuel.visit_reward"] for o in outcomes]
    assert [len(r) for r in rewards] == [0, 0, 0, 1]  # visits 6..9, then the 10th
    assert rewards[3][0]["points"] == 100 and rewards[3][0]["reason"] == "visit 10: a reward every 10 visits"
    eleventh = await fuel.send(shop("card-1", "2"))
    assert [a["source"] for a in eleventh["awards"]] == ["fuel.shop"]
    # shop points (2 per unit) and fuel points, plus the one visit reward
    expected = 6 * 4 + 3 + 1 + (6 + 20 + 6 + 4) + 4 + 100
    assert await fuel.available(member["id"]) == expected


async def test_a_held_fill_up_is_no_visit_until_approved(fuel: Fuel) -> None:
    await fuel.settings(visit_reward_every=2, visit_reward_points=50)
    await fuel.member("card-1")
    held = await fuel.send(fill_up("card-1", "120", "900"))
    assert held["status"] == "held"
    second = await fuel.send(shop("card-1", "5"))
    assert [a["source"] for a in second["awards"]] == ["fuel.shop"]  # the held fill-up was not visit 1
    approved = (await fuel.t.post(f"/v1/fuel/reviews/{held['id']}/approve", json={"reason": "ok"})).json()
    assert approved["points"] == 75 and approved["decision"]["points"] == 75 + 50  # now visit 2, with its reward


async def ladder(fuel: Fuel) -> None:
    """Circle K-like levels on 90-day fuel spend, with Shell's fill-up count as the other way to keep Gold."""
    for body in (
        {"code": "member", "name": "Member", "rank": 0},
        {
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "qualification": {
                "window": {"kind": "rolling_days", "days": 90},
                "criteria": [{"metric": "fuel_spend", "min": "150"}],
            },
            "validity": {"kind": "days", "days": 30},
            "downgrade": "to_qualified",
        },
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "qualification": {
                "window": {"kind": "rolling_days", "days": 90},
                "mode": "any",
                "criteria": [{"metric": "fuel_spend", "min": "300"}, {"metric": "fill_ups", "min": "6"}],
            },
            "validity": {"kind": "days", "days": 30},
            "downgrade": "to_qualified",
        },
    ):
        response = await fuel.t.post("/v1/tiers", json=body)
        assert response.status_code == 201, response.text


async def test_levels_by_rolling_90_day_spend_and_fill_ups_with_downgrades(fuel: Fuel, runtime: Runtime) -> None:
    await ladder(fuel)
    member = await fuel.member("card-1")
    with time_machine.travel(START, tick=False):
        first = await fuel.send(fill_up("card-1", "20", "160", occurred_at=START.isoformat()))
    assert first["tier"]["to"] == "silver"
    with time_machine.travel(START + timedelta(days=20), tick=False):
        second = await fuel.send(fill_up("card-1", "20", "160", occurred_at=(START + timedelta(days=20)).isoformat()))
    assert second["tier"] == {
        "from": "silver",
        "to": "gold",
        "reason": "upgrade",
        "valid_until": second["tier"]["valid_until"],
    }
    # Gold lasts 30 days; at day 51 the 90 days still hold 320 of spend: renewed
    with time_machine.travel(START + timedelta(days=51), tick=False):
        await tick(runtime, fuel.t.id)
        assert (await member_tier(fuel, member["id"]))["tier"]["code"] == "gold"
    # day 105: only the second fill-up (160) is within 90 days -> down to Silver
    with time_machine.travel(START + timedelta(days=105), tick=False):
        await tick(runtime, fuel.t.id)
        state = await member_tier(fuel, member["id"])
    assert state["tier"]["code"] == "silver" and state["history"][0]["reason"] == "downgrade"
    # six small fill-ups (Shell's count) bring Gold back whatever the spend
    for i in range(6):
        day = START + timedelta(days=116 + 2 * i)
        with time_machine.travel(day, tick=False):
            outcome = await fuel.send(fill_up("card-1", "2", "15", occurred_at=day.isoformat()))
    assert outcome["tier"]["to"] == "gold"
    # long after, nothing in the window: down to what still qualifies
    with time_machine.travel(START + timedelta(days=260), tick=False):
        await tick(runtime, fuel.t.id)
        assert (await member_tier(fuel, member["id"]))["tier"]["code"] == "member"


async def test_new_members_start_on_a_higher_level_for_n_months(fuel: Fuel, runtime: Runtime) -> None:
    await ladder(fuel)
    await fuel.settings(new_member_level="gold", new_member_months=6)
    with time_machine.travel(START, tick=False):
        member = await fuel.member("card-new")
        state = await member_tier(fuel, member["id"])
    assert state["tier"]["code"] == "gold" and state["floor"]["code"] == "gold"
    assert state["floor_until"].startswith("2031-09-01")
    # a lapsed Gold is kept while the welcome months last ...
    with time_machine.travel(START + timedelta(days=150), tick=False):
        await tick(runtime, fuel.t.id)
        assert (await member_tier(fuel, member["id"]))["tier"]["code"] == "gold"
    # ... and ends with them
    with time_machine.travel(START + timedelta(days=186), tick=False):
        await tick(runtime, fuel.t.id)
        assert (await member_tier(fuel, member["id"]))["tier"]["code"] == "member"
    # a program without that tier enrols normally
    await fuel.settings(new_member_level="platinum")
    other = await fuel.member("card-other")
    assert (await member_tier(fuel, other["id"]))["tier"]["code"] == "member"
