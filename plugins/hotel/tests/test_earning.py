"""Earning on a stay: eligible charges after tax, per brand or property rate, up to 3 rooms, pending until
check-out plus the posting delay and then posted by the worker, the tier bonus, and refusals that say why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.testing import TenantHandle
from core.worker import tick
from plugins.hotel.tests.conftest import enable_hotel, send, stay, today


async def test_a_checked_out_stay_earns_pending_then_the_worker_posts_it(hotel_tenant: TenantHandle, runtime) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    folio = [
        {"category": "room", "amount": "180.00", "tax": "36.00"},
        {"category": "room", "amount": "180.00", "tax": "36.00"},
        {"category": "food_beverage", "amount": "42.50", "tax": "8.50"},
        {"category": "parking", "amount": "30.00", "tax": "6.00"},
    ]
    out = await send(t, stay("g-1", reservation="R-100", folio=folio))
    assert out["status"] == "awarded"
    [base] = out["awards"]
    assert (base["source"], base["points"], base["base"]) == ("hotel.base", 4025, True)  # (360 + 42.50) x 10
    assert "402.50 GBP eligible (tax excluded) × 10 points" in base["reason"]
    assert base["detail"]["excluded"] == {"parking": "30.00"} and base["detail"]["tax_excluded"] == "86.50"
    tomorrow = datetime.fromisoformat(base["available_at"])
    assert tomorrow.date() == today() + timedelta(days=1)  # check-out (today) + 1 day, London midnight
    assert out["credits"]["nights"] == "2" and out["credits"]["stays"] == "1"
    assert out["credits"]["hotel_base_points"] == "4025"
    balance = await t.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (0, 4025)

    await tick(runtime, t.id)  # not due yet
    assert (await t.balance(member["id"]))["pending"] == 4025
    with time_machine.travel(tomorrow + timedelta(minutes=1), tick=False):
        await tick(runtime, t.id)
    balance = await t.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (4025, 0)
    stays = (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]
    assert [(s["reservation_id"], s["status"], s["base_points"], s["qualifying_nights"]) for s in stays] == [
        ("R-100", "checked_out", 4025, 2)
    ]


async def test_the_posting_delay_is_a_setting(make_tenant) -> None:
    t = await enable_hotel(await make_tenant(), posting_delay_days=2)
    await t.enrol("g-1")
    out = await send(t, stay("g-1"))
    assert datetime.fromisoformat(out["awards"][0]["available_at"]).date() == today() + timedelta(days=2)
    # A stay reported long after its posting date posts at once.
    late = await send(t, stay("g-1", check_in=today() - timedelta(days=20), nights=2))
    assert late["awards"][0]["available_at"] is None


async def test_ineligible_channels_and_rates_earn_nothing_and_say_why(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    ota = await send(t, stay("g-1", booking_channel="ota"))
    assert ota["status"] == "rejected" and ota["points"] == 0 and ota["awards"] == []
    assert ota["reason"].startswith("hotel.ineligible_channel: booked through an online travel agency (ota)")
    crew = await send(t, stay("g-1", rate_type="airline_crew"))
    assert crew["status"] == "rejected" and "airline crew rate" in crew["reason"]
    staff = await send(t, stay("g-1", rate_type="staff"))
    assert staff["reason"].startswith("hotel.ineligible_rate")
    balance = await t.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (0, 0)
    [row] = [
        s
        for s in (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]
        if s["rate_type"] == "airline_crew"
    ]
    assert (row["earning_event_id"], row["qualifying_nights"]) == (None, 0)
    # The tenant decides what is ineligible.
    await t.patch("/v1/program", json={"plugin_settings": {"hotel": {"ineligible_channels": []}}})
    now_ok = await send(t, stay("g-1", booking_channel="ota"))
    assert now_ok["status"] == "awarded" and now_ok["points"] == 2000


async def test_points_on_up_to_three_rooms_and_one_night_per_night(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await t.enrol("g-1")
    folio = [{"category": "room", "amount": "100", "room": r} for r in (1, 2, 3, 4)] + [
        {"category": "room", "amount": "50", "room": 4}
    ]
    out = await send(t, stay("g-1", nights=1, rooms=4, folio=folio))
    assert out["points"] == 3500  # the three dearest rooms: 150 (room 4), 100 and 100
    assert out["awards"][0]["detail"]["excluded"] == {"rooms_over_limit": "100.00"}
    assert "on 3 of 4 rooms" in out["awards"][0]["reason"]
    assert out["credits"]["nights"] == "1"  # one night, however many rooms
    shared = await send(
        t,
        stay(
            "g-1",
            nights=2,
            rooms=6,
            check_in=today() - timedelta(days=10),
            folio=[{"category": "room", "amount": "1200"}],
        ),
    )
    assert shared["points"] == 6000 and shared["credits"]["nights"] == "2"  # 3/6 of the charges


async def test_a_second_reservation_for_the_same_nights_adds_no_nights(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await t.enrol("g-1")
    first = await send(t, stay("g-1", reservation="R-A", nights=3))
    second = await send(t, stay("g-1", reservation="R-B", nights=3))
    assert first["credits"]["nights"] == "3" and first["credits"]["stays"] == "1"
    assert "nights" not in second["credits"] and "stays" not in second["credits"]
    assert second["points"] == 3000  # the room was paid: it earns points, not nights
    # Checking out and in again at the same hotel continues the stay: nights count, the stay does not.
    onward = await send(
        t, stay("g-1", reservation="R-C", check_in=today() - timedelta(days=6), check_out=today() - timedelta(days=3))
    )
    assert onward["credits"]["nights"] == "3" and "stays" not in onward["credits"]


async def test_rates_by_brand_and_property(make_tenant) -> None:
    t = await enable_hotel(
        await make_tenant(),
        brand_points_per_unit={"budget": 5},
        property_points_per_unit={"PAR-1": 2.5},
    )
    await t.enrol("g-1")
    budget = await send(t, stay("g-1", brand="budget", folio=[{"category": "room", "amount": "99.99"}]))
    assert budget["points"] == 499  # 5 x 99.99, rounded down
    accor = await send(t, stay("g-1", brand="budget", property="PAR-1", folio=[{"category": "room", "amount": "100"}]))
    assert accor["points"] == 250  # 25 points per 10
    assert accor["awards"][0]["detail"]["points_per_unit"] == "2.5"


async def test_tier_bonus_on_base_points(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    for code, rank in (("member", 0), ("silver", 1), ("gold", 2), ("platinum", 3)):
        out_of_reach = {"criteria": [{"metric": "nights", "min": "1000"}]} if rank else {}
        body = {"code": code, "name": code.title(), "rank": rank, "qualification": out_of_reach}
        assert (await t.post("/v1/tiers", json=body)).status_code == 201
    member = await t.enrol("g-gold")
    set_tier = await t.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "status match"})
    assert set_tier.status_code == 200, set_tier.text
    out = await send(t, stay("g-gold", folio=[{"category": "room", "amount": "123.45", "tax": "24.69"}]))
    assert [(a["source"], a["points"]) for a in out["awards"]] == [("hotel.base", 1234), ("hotel.tier_bonus", 308)]
    assert out["awards"][1]["reason"] == "tier bonus: +25% of 1234 base points"
    assert out["awards"][1]["base"] is False and out["credits"]["hotel_base_points"] == "1234"
    assert (await t.balance(member["id"]))["pending"] == 1542
    # The percentages are settings.
    changed = await t.patch("/v1/program", json={"plugin_settings": {"hotel": {"tier_bonus_percent": {"gold": 100}}}})
    assert changed.status_code == 200
    out = await send(t, stay("g-gold", folio=[{"category": "room", "amount": "10"}]))
    assert [a["points"] for a in out["awards"]] == [100, 100]
    plain = await t.enrol("g-plain")
    out = await send(t, stay(plain["external_id"], folio=[{"category": "room", "amount": "10"}]))
    assert [a["source"] for a in out["awards"]] == ["hotel.base"]


async def test_a_stay_without_eligible_charges_still_counts_its_nights(hotel_tenant: TenantHandle) -> None:
    await hotel_tenant.enrol("g-1")
    out = await send(hotel_tenant, stay("g-1", nights=3, folio=[{"category": "parking", "amount": "20"}]))
    assert out["status"] == "awarded" and out["points"] == 0
    assert out["awards"][0]["reason"].endswith("no eligible charges (the nights still count)")
    assert out["credits"]["nights"] == "3"


async def test_bookings_earn_at_checkout_not_before(hotel_tenant: TenantHandle) -> None:
    member = await hotel_tenant.enrol("g-1")
    booked = await send(hotel_tenant, stay("g-1", status="booked", check_in=today() + timedelta(days=30)))
    assert booked["status"] == "rejected" and booked["reason"].startswith("hotel.not_yet: reservation booked")
    assert (await hotel_tenant.balance(member["id"]))["pending"] == 0
    simulated = await hotel_tenant.post("/v1/events/simulate", json=stay("g-1"))
    assert simulated.status_code == 200 and simulated.json()["points"] == 2000
    assert (await hotel_tenant.balance(member["id"]))["pending"] == 0
    assert datetime.now(UTC)
