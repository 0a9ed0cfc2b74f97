"""Cents-off vouchers: redemption in steps, the discount at the pump with the floor price, the per-litre maximum and
the litre cap; used once; points expiring oldest first under the program's expiry policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.runtime import Runtime
from core.worker import tick
from plugins.fuel_station.tests.conftest import Fuel, fill_up


async def reward(fuel: Fuel, code: str, points_cost: int, kind: str = "fuel.cents_off", **fields: object) -> str:
    body = {"code": code, "name": f"{points_cost} points off fuel", "points_cost": points_cost, "kind": kind} | fields
    response = await fuel.t.post("/v1/rewards", json=body)
    assert response.status_code == 201, response.text
    reward_id: str = response.json()["id"]
    return reward_id


async def redeem(fuel: Fuel, member_id: str, reward_id: str, status: int = 201) -> dict:
    response = await fuel.t.post("/v1/redemptions", json={"member_id": member_id, "reward_id": reward_id})
    assert response.status_code == status, response.text
    body: dict = response.json()
    return body


async def test_cents_off_voucher_from_redemption_to_the_pump(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.t.credit(member["id"], 5000)
    two_steps = await reward(fuel, "FUEL-2000", 2000, stock=10)
    redemption = await redeem(fuel, member["id"], two_steps)
    assert redemption["fulfilment"]["kind"] == "fuel.cents_off"
    assert redemption["fulfilment"]["off_per_litre"] == "0.20" and redemption["fulfilment"]["max_litres"] == "75"
    assert await fuel.available(member["id"]) == 3000
    apply = f"/v1/fuel/redemptions/{redemption['id']}/apply"

    quote = await fuel.t.post(apply, json={"litres": "40", "price_per_litre": "7.50", "dry_run": True})
    assert quote.status_code == 200, quote.text
    assert (quote.json()["amount_off"], quote.json()["used"]) == ("8.00", False)
    used = await fuel.t.post(apply, json={"litres": "40", "price_per_litre": "7.50", "site": "S1", "reference": "r-9"})
    assert used.status_code == 200 and used.json()["amount_off"] == "8.00" and used.json()["used"] is True
    assert used.json()["price_after"] == "7.30" and used.json()["limited_by"] == []
    state = (await fuel.t.get(f"/v1/redemptions/{redemption['id']}")).json()
    assert state["status"] == "used" and state["details"]["location"] == "S1"
    again = await fuel.t.post(apply, json={"litres": "40", "price_per_litre": "7.50"})
    assert again.status_code == 409  # a voucher is used once


async def test_the_discount_never_passes_the_floor_the_maximum_or_the_litre_cap(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.t.credit(member["id"], 60_000)
    big = await reward(fuel, "FUEL-20000", 20_000)
    small = await reward(fuel, "FUEL-1000", 1000)
    capped = await redeem(fuel, member["id"], big)
    assert capped["fulfilment"]["off_per_litre"] == "1"  # 20 steps would be 2.00: at most 1 a litre
    low_price = await fuel.t.post(
        f"/v1/fuel/redemptions/{capped['id']}/apply", json={"litres": "40", "price_per_litre": "0.50"}
    )
    body = low_price.json()
    assert (
        body["off_per_litre"] == "0.4712" and body["price_after"] == "0.0288" and body["limited_by"] == ["floor_price"]
    )
    assert body["amount_off"] == "18.84"  # 18.848, rounded down to the cent
    plenty = await redeem(fuel, member["id"], small)
    many_litres = await fuel.t.post(
        f"/v1/fuel/redemptions/{plenty['id']}/apply", json={"litres": "100", "price_per_litre": "7.00"}
    )
    assert many_litres.json()["litres_discounted"] == "75" and many_litres.json()["amount_off"] == "7.50"
    assert many_litres.json()["limited_by"] == ["max_litres"]


async def test_redemption_in_steps(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.t.credit(member["id"], 5000)
    odd = await reward(fuel, "FUEL-1500", 1500, stock=5)
    too_small = await reward(fuel, "FUEL-500", 500)
    for reward_id, words in ((odd, "steps of 1,000"), (too_small, "at least 1,000")):
        refused = await fuel.t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": reward_id})
        assert refused.status_code == 422 and refused.json()["field"] == "reward_id"
        assert words in refused.json()["detail"]
    assert await fuel.available(member["id"]) == 5000  # nothing taken
    assert (await fuel.t.get(f"/v1/rewards/{odd}")).json()["stock"] == 5
    steps = (await fuel.t.get("/v1/fuel/redemption-steps", params={"points": 3500})).json()
    assert [(s["points"], s["off_per_litre"]) for s in steps["steps"]] == [
        (1000, "0.10"),
        (2000, "0.20"),
        (3000, "0.30"),
    ]
    assert steps["minimum"] == 1000 and steps["floor_price_per_litre"] == "0.0288"
    await fuel.settings(redemption_min_points=2000, redemption_step_points=500, off_per_litre_per_step="0.05")
    fine_now = await redeem(fuel, member["id"], await reward(fuel, "FUEL-2500", 2500))
    assert fine_now["fulfilment"]["off_per_litre"] == "0.25"


async def test_bad_input_at_the_pump(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    await fuel.t.credit(member["id"], 2000)
    cents_off = await redeem(fuel, member["id"], await reward(fuel, "FUEL-1000", 1000))
    mug = await redeem(fuel, member["id"], await reward(fuel, "MUG", 100, kind="voucher"))
    url = f"/v1/fuel/redemptions/{cents_off['id']}/apply"
    for body, field in (
        ({"litres": "-1", "price_per_litre": "7"}, "litres"),
        ({"litres": "40.00001", "price_per_litre": "7"}, "litres"),
        ({"litres": "40", "price_per_litre": "0"}, "price_per_litre"),
        ({"litres": "40"}, "price_per_litre"),
    ):
        response = await fuel.t.post(url, json=body)
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert (await fuel.t.get(f"/v1/redemptions/{cents_off['id']}")).json()["status"] == "issued"
    not_fuel = await fuel.t.post(
        f"/v1/fuel/redemptions/{mug['id']}/apply", json={"litres": "4", "price_per_litre": "7"}
    )
    assert not_fuel.status_code == 409
    unknown = await fuel.t.post(
        "/v1/fuel/redemptions/01a20000-0000-7000-8000-000000000000/apply", json={"litres": "4", "price_per_litre": "7"}
    )
    assert unknown.status_code == 404


async def test_points_expire_oldest_first_under_the_programs_policy(fuel: Fuel, runtime: Runtime) -> None:
    """DOMAIN's "90 days" is the program's ``days_after_earn: 90`` (``end_of_month_after: 1`` is "the end of the
    following month"); core's lots expire, and are spent, oldest first."""
    response = await fuel.t.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 90}})
    assert response.status_code == 200
    member = await fuel.member("card-1")
    start = datetime(2031, 5, 1, 4, tzinfo=UTC)
    for day, litres in ((0, "40"), (30, "30")):
        at = start + timedelta(days=day)
        with time_machine.travel(at, tick=False):
            await fuel.send(fill_up("card-1", litres, "300", occurred_at=at.isoformat()))
    with time_machine.travel(start + timedelta(days=91), tick=False):
        await tick(runtime, fuel.t.id)
        balance = await fuel.t.balance(member["id"])
    assert balance["available"] == 30 and balance["lifetime"]["expired"] == 40
