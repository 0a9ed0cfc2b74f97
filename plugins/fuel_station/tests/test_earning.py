"""Earning through HTTP on both databases: per litre and per currency unit by grade, premium, part litres, the litre
cap, the monthly cap (across events and within a batch), participating sites, shop purchases, bad input, settings."""

from __future__ import annotations

from core.testing import MakeTenant, TenantHandle
from plugins.fuel_station.tests.conftest import Fuel, at, fill_up, shop


def awards(outcome: dict) -> list[tuple[str, int]]:
    return [(a["source"], a["points"]) for a in outcome["awards"]]


async def test_per_litre_with_grades_premium_part_litres_and_the_litre_cap(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    gasoline = await fuel.send(fill_up("card-1", "40.9", "300"))
    assert awards(gasoline) == [("fuel.litres", 40)] and gasoline["points"] == 40
    assert gasoline["awards"][0]["base"] is True
    assert gasoline["credits"]["litres"] == "40.9" and gasoline["credits"]["fill_ups"] == "1"
    premium = await fuel.send(fill_up("card-1", "30.5", "260", grade="premium", site="S2"))
    assert awards(premium) == [("fuel.litres", 30), ("fuel.premium", 30)]
    assert "premium grade × 2" in premium["awards"][1]["reason"]
    big = await fuel.send(fill_up("card-1", "90", "650", grade="diesel", site="S3"))
    assert awards(big) == [("fuel.litres", 75)]
    assert "75 L counted at most" in big["awards"][0]["reason"]
    assert await fuel.available(member["id"]) == 40 + 60 + 75


async def test_a_pump_number_is_taken_as_the_readme_sends_it(fuel: Fuel) -> None:
    """``"pump": 4`` (a number, as in docs/fuel.md) is stored as the pump's code on both databases."""
    await fuel.member("card-p")
    numbered = await fuel.send(fill_up("card-p", "20", "150", attributes={"pump": 4}))
    assert numbered["status"] == "awarded"
    coded = await fuel.send(fill_up("card-p", "20", "150", site="S2", attributes={"pump": "P-07"}))
    assert coded["status"] == "awarded"


async def test_per_currency_unit_by_grade(fuel: Fuel) -> None:
    await fuel.settings(earn_mode="per_amount", grades={"gasoline": {}, "diesel": {"amount_per_point": "2"}})
    member = await fuel.member("card-1")
    assert awards(await fuel.send(fill_up("card-1", "40", "299.90"))) == [("fuel.fuel_spend", 299)]
    assert awards(await fuel.send(fill_up("card-1", "40", "301", grade="diesel", site="S2"))) == [
        ("fuel.fuel_spend", 150)
    ]
    assert await fuel.available(member["id"]) == 449
    # the grades are the tenant's: "premium" is not one of them any more
    response = await fuel.t.post("/v1/events", json=fill_up("card-1", "10", "80", grade="premium", site="S3"))
    assert response.status_code == 422 and response.json()["field"] == "attributes.grade"


async def test_shop_purchases_earn_per_currency_unit(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    outcome = await fuel.send(shop("card-1", "12.50"))
    assert awards(outcome) == [("fuel.shop", 25)]
    assert outcome["credits"]["shop_spend"] == "12.50" and "fill_ups" not in outcome["credits"]
    assert await fuel.available(member["id"]) == 25


async def test_the_monthly_cap_across_events_and_within_a_batch(fuel: Fuel) -> None:
    await fuel.settings(monthly_points_cap=100, max_fill_ups_per_day=10, site_daily_max_litres=None)
    member = await fuel.member("card-1")
    first = await fuel.send(fill_up("card-1", "60", "400", site="S1"))
    assert awards(first) == [("fuel.litres", 60)]
    second = await fuel.send(fill_up("card-1", "30", "200", grade="premium", site="S2"))
    # 40 left this month: the base 30 fits, the premium's 30 is cut to 10
    assert awards(second) == [("fuel.litres", 30), ("fuel.premium", 10)]
    assert second["awards"][1]["capped_from"] == 30 and "monthly cap of 100" in second["awards"][1]["reason"]
    third = await fuel.send(shop("card-1", "10", site="S3"))
    assert awards(third) == [("fuel.shop", 0)]
    assert await fuel.available(member["id"]) == 100

    # a second member, everything in one batch: later items see what earlier ones earned
    other = await fuel.member("card-2")
    batch = [
        fill_up("card-2", "70", "500", site="S1"),
        fill_up("card-2", "80", "550", site="S2", grade="diesel"),
        shop("card-2", "20", site="S3"),
    ]
    response = await fuel.t.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    results = [awards(r["outcome"]) for r in response.json()["results"]]
    assert results == [[("fuel.litres", 70)], [("fuel.litres", 30)], [("fuel.shop", 0)]]
    assert await fuel.available(other["id"]) == 100


async def test_a_held_item_in_a_batch_does_not_use_the_monthly_cap(fuel: Fuel) -> None:
    await fuel.settings(monthly_points_cap=100)
    member = await fuel.member("card-1")
    batch = [
        fill_up("card-1", "101", "700", site="S1"),  # above the tank size: held, earns nothing
        fill_up("card-1", "60", "400", site="S2"),
        fill_up("card-1", "50", "350", site="S2", occurred_at=at()),
    ]
    response = await fuel.t.post("/v1/events/batch", json={"events": batch})
    outcomes = [r["outcome"] for r in response.json()["results"]]
    assert [o["status"] for o in outcomes] == ["held", "awarded", "held"]  # the third repeats S2 within 30 minutes
    assert awards(outcomes[1]) == [("fuel.litres", 60)]
    assert await fuel.available(member["id"]) == 60


async def test_only_participating_sites_earn_and_the_answer_says_why(fuel: Fuel) -> None:
    closed = await fuel.site("S9", participating=False)
    member = await fuel.member("card-1")
    outcome = await fuel.send(fill_up("card-1", "40", "300", site="S9"))
    assert outcome["status"] == "rejected" and outcome["points"] == 0 and outcome["awards"] == []
    assert "S9 does not take part in the programme" in outcome["reason"]
    assert (await fuel.send(shop("card-1", "10", site="S9")))["status"] == "rejected"
    assert await fuel.available(member["id"]) == 0
    # joining the programme makes the site earn from now on
    updated = await fuel.t.patch(f"/v1/fuel/sites/{closed['id']}", json={"participating": True})
    assert updated.status_code == 200 and updated.json()["participating"] is True
    again = await fuel.send(fill_up("card-1", "40", "300", site="S9"))
    assert again["status"] == "awarded" and again["points"] == 40  # the refused fill-up is no "repeat fill"


async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    cases = [
        (fill_up("card-1", "-5", "30"), "quantity"),
        (fill_up("card-1", "0", "30"), "quantity"),
        (fill_up("card-1", "40.12345", "30"), "quantity"),  # absurd precision (core: 4 places)
        (fill_up("card-1", "40.1234", "30"), "quantity"),  # litres: at most 3 places
        (fill_up("card-1", "5000", "30000"), "quantity"),  # above the absurd (2,000 L)
        (fill_up("card-1", "40", "-30"), "amount"),
        (fill_up("card-1", "40", "300", site="NOPE"), "attributes.site"),
        (fill_up("card-1", "40", "300", grade="jet-a1"), "attributes.grade"),
        (fill_up("card-1", "40", "300", currency="USD"), "currency"),
        (fill_up("card-1", "40", "300", unit="gallon"), "unit"),
        (fill_up("card-1", "40", "300", attributes={"colour": "red"}), "attributes.colour"),
        (fill_up("card-1", "40", "300", attributes={"payment_method": "barter"}), "attributes.payment_method"),
        ({k: v for k, v in fill_up("card-1").items() if k != "quantity"}, "quantity"),
        (shop("card-1", "10", site="NOPE"), "attributes.site"),
        (shop("card-1", "0"), "amount"),
    ]
    for event, field in cases:
        response = await fuel.t.post("/v1/events", json=event)
        assert response.status_code == 422, (field, response.text)
        assert response.json()["field"] == field, (field, response.json())
    listed = (await fuel.t.get("/v1/events", params={"member_id": member["id"]})).json()["items"]
    assert listed == []
    assert await fuel.available(member["id"]) == 0
    assert (await fuel.t.get("/v1/fuel/reviews", params={"status": "all"})).json()["items"] == []


async def test_simulation_earns_nothing_and_writes_nothing(fuel: Fuel) -> None:
    member = await fuel.member("card-1")
    simulated = await fuel.t.post("/v1/events/simulate", json=fill_up("card-1", "40", "300", grade="premium"))
    assert simulated.status_code == 200 and awards(simulated.json()) == [("fuel.litres", 40), ("fuel.premium", 40)]
    assert await fuel.available(member["id"]) == 0
    # the simulated fill-up is no earlier fill-up: the real one is not a "repeat"
    assert (await fuel.send(fill_up("card-1", "40", "300")))["status"] == "awarded"


async def test_settings_are_validated_by_the_plugins_schema(make_tenant: MakeTenant) -> None:
    tenant: TenantHandle = await make_tenant()
    cases = [
        ({"monthly_points_cap": 0}, "plugin_settings.fuel.monthly_points_cap"),
        ({"colour": "red"}, "plugin_settings.fuel.colour"),
        ({"earn_mode": "per_smile"}, "plugin_settings.fuel.earn_mode"),
        ({"max_litres_per_fill_up": "-1"}, "plugin_settings.fuel.max_litres_per_fill_up"),
        ({"shop_points_per_unit": "NaN"}, "plugin_settings.fuel.shop_points_per_unit"),
        ({"grades": {"premium": {"multiplier": "0.5"}}}, "plugin_settings.fuel.grades.premium.multiplier"),
        ({"grades": {"Premium Plus": {}}}, "plugin_settings.fuel.grades.Premium Plus"),
        ({"redemption_min_points": 1500}, "plugin_settings.fuel.redemption_min_points"),
        ({"visit_reward_every": 0}, "plugin_settings.fuel.visit_reward_every"),
    ]
    for settings, field in cases:
        response = await tenant.patch("/v1/program", json={"plugins": ["fuel"], "plugin_settings": {"fuel": settings}})
        assert response.status_code == 422, (settings, response.text)
        assert response.json()["field"].startswith(field), (settings, response.json())
    assert (await tenant.get("/v1/fuel/settings")).status_code == 404  # nothing was enabled
    ok = await tenant.patch("/v1/program", json={"plugins": ["fuel"], "plugin_settings": {"fuel": {}}})
    assert ok.status_code == 200
    defaults = (await tenant.get("/v1/fuel/settings")).json()
    assert defaults["monthly_points_cap"] == 7000 and defaults["max_litres_per_fill_up"] == "75"
    assert defaults["shop_points_per_unit"] == "2" and defaults["max_fill_ups_per_day"] == 3
    assert defaults["repeat_fill_minutes"] == 30 and defaults["win_back_after_days"] == 60
    assert defaults["visit_min_fuel_amount"] == "10" and defaults["visit_min_shop_amount"] == "2"
    assert defaults["visit_reward_every"] == 10 and defaults["redemption_step_points"] == 1000
    assert defaults["grades"]["diesel"]["amount_per_point"] == "2" and defaults["new_member_months"] == 6
