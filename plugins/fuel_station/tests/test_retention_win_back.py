"""The retention report on a known data set, and win-back care requests once per member and lapse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.runtime import Runtime
from core.worker import tick
from plugins.fuel_station.tests.conftest import Fuel, fill_up, shop

T = datetime(2031, 6, 30, 4, 0, tzinfo=UTC)


async def send_at(fuel: Fuel, days_before: float, event: dict) -> dict:
    when = T - timedelta(days=days_before)
    with time_machine.travel(when, tick=False):
        return await fuel.send(event | {"occurred_at": when.isoformat()})


async def test_return_and_churn_rates_per_site_and_network(fuel: Fuel) -> None:
    for name in "ABCDEFG":
        await fuel.member(name)
    await send_at(fuel, 45, fill_up("A", site="S1"))
    await send_at(fuel, 10, fill_up("A", site="S1"))  # A came back to S1
    await send_at(fuel, 50, fill_up("B", site="S1"))
    await send_at(fuel, 5, fill_up("B", site="S2"))  # B came back, to another site
    await send_at(fuel, 40, fill_up("C", site="S1"))
    await send_at(fuel, 35, shop("C", site="S2"))  # C never came back: churned
    await send_at(fuel, 55, shop("D", site="S2"))
    await send_at(fuel, 20, fill_up("D", site="S2"))  # D came back to S2
    await send_at(fuel, 5, fill_up("E", site="S1"))  # new: not in the cohort
    await send_at(fuel, 70, fill_up("F", site="S1"))  # before the cohort's window
    held = await send_at(fuel, 45, fill_up("G", "120", "900", site="S3"))  # held: no activity until approved
    assert held["status"] == "held"

    response = await fuel.t.get("/v1/fuel/reports/retention", params={"days": 30, "as_of": T.isoformat()})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["network"] == {
        "cohort": 4,
        "returned": 3,
        "churned": 1,
        "return_rate": "0.7500",
        "churn_rate": "0.2500",
    }
    sites = {
        s["code"]: (s["cohort"], s["returned"], s["churned"], s["return_rate"], s["churn_rate"])
        for s in report["sites"]
    }
    assert sites == {
        "S1": (3, 1, 1, "0.3333", "0.3333"),  # A returned; B went elsewhere; C churned
        "S2": (2, 1, 1, "0.5000", "0.5000"),  # D returned; C churned
    }
    assert report["cohort_from"].startswith("2031-05-01") and report["cohort_until"].startswith("2031-05-31")
    # a shorter window looks at other members: only A filled up 7 to 14 days ago, and has not been back since
    week = (await fuel.t.get("/v1/fuel/reports/retention", params={"days": 7, "as_of": T.isoformat()})).json()
    assert week["network"] == {
        "cohort": 1,
        "returned": 0,
        "churned": 1,
        "return_rate": "0.0000",
        "churn_rate": "1.0000",
    }
    empty = (await fuel.t.get("/v1/fuel/reports/retention", params={"days": 7})).json()
    assert empty["network"]["cohort"] == 0 and empty["network"]["return_rate"] is None and empty["sites"] == []
    bad = await fuel.t.get("/v1/fuel/reports/retention", params={"days": 0})
    assert bad.status_code in (400, 422) and "days" in bad.text


async def care(fuel: Fuel, member_id: str) -> list[dict]:
    response = await fuel.t.get("/v1/care/requests", params={"member_id": member_id, "kind": "fuel.win_back"})
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def test_win_back_once_per_member_and_lapse(fuel: Fuel, runtime: Runtime) -> None:
    await fuel.settings(win_back_after_days=60)
    lapsing = await fuel.member("lapsing")
    loyal = await fuel.member("loyal")
    await send_at(fuel, 200, fill_up("lapsing"))
    await send_at(fuel, 200, fill_up("loyal", site="S2"))
    await send_at(fuel, 150, shop("loyal"))

    async def tick_at(days_before: float) -> None:
        with time_machine.travel(T - timedelta(days=days_before), tick=False):
            await tick(runtime, fuel.t.id)

    await tick_at(141)  # 59 days since the lapsing member's fill-up
    assert await care(fuel, lapsing["id"]) == []
    await tick_at(139)
    await tick_at(138)  # the job again, next day: still one request
    requests = await care(fuel, lapsing["id"])
    assert len(requests) == 1
    assert (requests[0]["purpose"], requests[0]["source"]) == ("marketing", "fuel")
    assert requests[0]["payload"]["days_inactive"] == 61
    assert await care(fuel, loyal["id"]) == []
    # the member comes back, then lapses again: a new request for the new lapse
    await send_at(fuel, 120, fill_up("lapsing"))
    await tick_at(85)
    assert len(await care(fuel, loyal["id"])) == 1  # 65 days since the shop purchase
    assert len(await care(fuel, lapsing["id"])) == 1  # back 35 days ago
    await tick_at(59)
    requests = await care(fuel, lapsing["id"])
    assert (
        len(requests) == 2 and requests[0]["payload"]["last_activity_at"] != requests[1]["payload"]["last_activity_at"]
    )
