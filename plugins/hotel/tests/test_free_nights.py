"""Free-night awards by hotel category: quotes (every 5th night free, at most 4) and redemption fulfilment."""

from __future__ import annotations

from core.testing import TenantHandle


async def test_points_stay_quotes(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    quote = await t.post("/v1/hotel/quotes/points-stay", json={"category": "5", "nights": 5})
    assert quote.status_code == 200, quote.text
    assert quote.json() == {
        "category": "5",
        "nights": 5,
        "nightly_points": 35000,
        "free_nights": 1,
        "paid_nights": 4,
        "points": 140000,
    }
    long = (await t.post("/v1/hotel/quotes/points-stay", json={"category": "1", "nights": 30})).json()
    assert (long["free_nights"], long["points"]) == (4, 26 * 7500)
    unknown = await t.post("/v1/hotel/quotes/points-stay", json={"category": "12", "nights": 2})
    assert unknown.status_code == 422 and unknown.json()["field"] == "category"
    zero = await t.post("/v1/hotel/quotes/points-stay", json={"category": "1", "nights": 0})
    assert zero.status_code == 422 and zero.json()["field"] == "nights"
    too_long = await t.post("/v1/hotel/quotes/points-stay", json={"category": "1", "nights": 61})
    assert too_long.status_code == 422 and too_long.json()["field"] == "nights"
    await t.patch(
        "/v1/program",
        json={"plugin_settings": {"hotel": {"free_night_points": {"A": 1000}, "max_free_nights_per_stay": 1}}},
    )
    changed = (await t.post("/v1/hotel/quotes/points-stay", json={"category": "A", "nights": 10})).json()
    assert (changed["free_nights"], changed["points"]) == (1, 9000)


async def test_redeeming_a_free_night_reward(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-f")
    await t.credit(member["id"], 300000)
    reward = await t.post(
        "/v1/rewards",
        json={
            "code": "FREE-5N-CAT4",
            "name": "Five nights, category 4",
            "points_cost": 100000,
            "kind": "hotel.free_night",
            "attributes": {"category": "4", "nights": 5},
        },
    )
    assert reward.status_code == 201, reward.text
    redeemed = await t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": reward.json()["id"]})
    assert redeemed.status_code == 201, redeemed.text
    fulfilment = redeemed.json()["fulfilment"]
    assert (fulfilment["nights"], fulfilment["free_nights"], fulfilment["points"]) == (5, 1, 100000)
    assert fulfilment["certificate"] == redeemed.json()["voucher_code"]
    assert (await t.balance(member["id"]))["available"] == 200000

    # A reward priced off the chart is refused, and nothing is taken.
    wrong = await t.post(
        "/v1/rewards",
        json={
            "code": "FREE-CAT4-CHEAP",
            "name": "Cheap night",
            "points_cost": 10,
            "kind": "hotel.free_night",
            "attributes": {"category": "4"},
        },
    )
    refused = await t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": wrong.json()["id"]})
    assert refused.status_code == 422 and "25000" in refused.json()["detail"]
    unknown = await t.post(
        "/v1/rewards",
        json={
            "code": "FREE-CAT9",
            "name": "Category 9",
            "points_cost": 10,
            "kind": "hotel.free_night",
            "attributes": {"category": "9"},
        },
    )
    refused = await t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": unknown.json()["id"]})
    assert refused.status_code == 422 and refused.json()["field"] == "attributes.category"
    assert (await t.balance(member["id"]))["available"] == 200000
    assert len((await t.get("/v1/redemptions", params={"member_id": member["id"]})).json()["items"]) == 1
