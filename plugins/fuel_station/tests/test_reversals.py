"""A fill-up or shop purchase reversed through core (``POST /v1/events/{id}/reverse``): the plugin follows. Its points
leave the monthly cap (in part for a partial reversal), a full reversal removes its visit, and it is no activity for
the retention report and win-back any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from core.runtime import Runtime
from core.worker import tick
from plugins.fuel_station.tests.conftest import Fuel, fill_up, shop

T = datetime(2031, 6, 30, 4, 0, tzinfo=UTC)


async def reverse(fuel: Fuel, outcome: dict, **body: Any) -> dict:
    response = await fuel.t.post(f"/v1/events/{outcome['id']}/reverse", json={"reason": "refunded"} | body)
    assert response.status_code == 200, response.text
    result: dict = response.json()
    return result


def sources(outcome: dict) -> list[str]:
    return [a["source"] for a in outcome["awards"]]


async def test_a_reversed_fill_up_frees_its_share_of_the_monthly_cap(fuel: Fuel) -> None:
    await fuel.settings(monthly_points_cap=100, max_fill_ups_per_day=10, repeat_fill_minutes=0)
    member = await fuel.member("card-1")
    first = await fuel.send(fill_up("card-1", "70", "500", site="S1"))
    assert first["points"] == 70
    await reverse(fuel, first)  # the whole fill-up refunded
    second = await fuel.send(fill_up("card-1", "70", "500", site="S2"))
    assert second["points"] == 70  # not 30: the refunded fill-up uses none of the cap
    await reverse(fuel, second, fraction="0.5")  # half of it refunded: 35 points back, 35 still count
    third = await fuel.send(fill_up("card-1", "70", "500", site="S3"))
    assert third["points"] == 65 and "monthly cap of 100 points reached (65 of 70)" in third["awards"][0]["reason"]
    assert await fuel.available(member["id"]) == 35 + 65
    # The rest of the second fill-up is refunded too: all of its points leave the cap.
    await reverse(fuel, second)
    fourth = await fuel.send(fill_up("card-1", "40", "300", site="S1"))
    assert fourth["points"] == 35  # 100 - 65
    assert (await fuel.t.get(f"/v1/events/{second['id']}")).json()["reversed_points"] == 70


async def test_a_return_event_frees_the_cap_as_a_reversal_does(fuel: Fuel) -> None:
    await fuel.settings(monthly_points_cap=100, max_fill_ups_per_day=10, repeat_fill_minutes=0)
    await fuel.member("card-1")
    first = await fuel.send(fill_up("card-1", "70", "500", site="S1", event_id="fill-1"))
    assert first["points"] == 70
    refund = {"type": "return", "event_id": "ret-fill-1", "member": {"external_id": "card-1"}, "amount": "500"}
    returned = await fuel.t.post(
        "/v1/events",
        json=refund | {"occurred_at": first["occurred_at"], "attributes": {"original_event_id": "fill-1"}},
    )
    assert returned.status_code == 201, returned.text
    assert (await fuel.send(fill_up("card-1", "70", "500", site="S2")))["points"] == 70


async def test_a_fully_reversed_visit_no_longer_counts_toward_the_visit_reward(fuel: Fuel) -> None:
    await fuel.settings(visit_reward_every=2, visit_reward_points=50)
    await fuel.member("card-1")
    first = await fuel.send(shop("card-1", "5"))
    assert first["credits"]["visits"] == "1"
    await reverse(fuel, first)
    again = await fuel.send(shop("card-1", "5"))
    assert sources(again) == ["fuel.shop"]  # visit 1 again, no reward
    third = await fuel.send(shop("card-1", "5"))
    assert sources(third) == ["fuel.shop", "fuel.visit_reward"]


async def test_a_partial_reversal_keeps_the_visit_while_what_is_left_still_is_one(fuel: Fuel) -> None:
    await fuel.settings(visit_reward_every=2, visit_reward_points=50)
    await fuel.member("card-1")
    await fuel.member("card-2")
    # 5 in the shop, half refunded: 2.50 is still a shop visit (at least 2).
    kept = await fuel.send(shop("card-1", "5"))
    await reverse(fuel, kept, fraction="0.5")
    assert sources(await fuel.send(shop("card-1", "5"))) == ["fuel.shop", "fuel.visit_reward"]
    # 3 in the shop, half refunded: 1.50 is no visit any more.
    lost = await fuel.send(shop("card-2", "3"))
    await reverse(fuel, lost, fraction="0.5")
    assert sources(await fuel.send(shop("card-2", "5"))) == ["fuel.shop"]


async def send_at(fuel: Fuel, days_before: float, event: dict) -> dict:
    when = T - timedelta(days=days_before)
    with time_machine.travel(when, tick=False):
        return await fuel.send(event | {"occurred_at": when.isoformat()})


async def reverse_at(fuel: Fuel, days_before: float, outcome: dict, **body: Any) -> dict:
    with time_machine.travel(T - timedelta(days=days_before), tick=False):
        return await reverse(fuel, outcome, **body)


async def test_reversed_activity_is_no_activity_in_the_retention_report(fuel: Fuel) -> None:
    for name in ("refunded", "lapsed", "back"):
        await fuel.member(name)
    gone = await send_at(fuel, 45, fill_up("refunded"))  # its only fill-up, refunded: not in the cohort
    await reverse_at(fuel, 44, gone)
    await send_at(fuel, 45, fill_up("lapsed"))
    recent = await send_at(fuel, 10, fill_up("lapsed"))  # the return was refunded in full: churned
    await reverse_at(fuel, 9, recent)
    await send_at(fuel, 45, fill_up("back"))
    part = await send_at(fuel, 10, fill_up("back"))  # half refunded: still came back
    await reverse_at(fuel, 9, part, fraction="0.5")

    response = await fuel.t.get("/v1/fuel/reports/retention", params={"days": 30, "as_of": T.isoformat()})
    assert response.status_code == 200, response.text
    network = response.json()["network"]
    assert (network["cohort"], network["returned"], network["churned"]) == (2, 1, 1)


async def test_win_back_counts_from_the_last_activity_that_was_not_refunded(fuel: Fuel, runtime: Runtime) -> None:
    await fuel.settings(win_back_after_days=60)
    member = await fuel.member("card-1")
    await send_at(fuel, 200, fill_up("card-1"))
    refunded = await send_at(fuel, 190, fill_up("card-1", site="S2"))
    await reverse_at(fuel, 189, refunded)
    with time_machine.travel(T - timedelta(days=135), tick=False):  # 65 days after the last fill-up that counts
        await tick(runtime, fuel.t.id)
    requests = (
        await fuel.t.get("/v1/care/requests", params={"member_id": member["id"], "kind": "fuel.win_back"})
    ).json()["items"]
    assert len(requests) == 1 and requests[0]["payload"]["days_inactive"] == 65
