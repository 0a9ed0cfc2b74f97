"""Perks by tier and the pre-arrival notice for top tiers, with the welcome gift drawn from the guest's preferences."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from core.testing import TenantHandle
from core.worker import tick
from plugins.hotel.tests.conftest import send, stay, today


async def tiered(t: TenantHandle, external_id: str, tier: str | None, **fields) -> dict:
    member = await t.enrol(external_id, **fields)
    if tier:
        response = await t.put(f"/v1/members/{member['id']}/tier", json={"tier": tier, "reason": "status match"})
        assert response.status_code == 200, response.text
    return member


async def make_tiers(t: TenantHandle) -> None:
    for code, rank in (("silver", 1), ("gold", 2), ("platinum", 3), ("ambassador", 4)):
        body = {
            "code": code,
            "name": code.title(),
            "rank": rank,
            "qualification": {"criteria": [{"metric": "nights", "min": "1000"}]},
        }
        assert (await t.post("/v1/tiers", json=body)).status_code == 201


async def test_perks_by_tier(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await make_tiers(t)
    prefs = {"attributes": {"preferences": {"drink": "green tea", "pillow": "firm"}}}
    plain = await tiered(t, "g-0", None)
    silver = await tiered(t, "g-1", "silver")
    gold = await tiered(t, "g-2", "gold", **prefs)
    ambassador = await tiered(t, "g-4", "ambassador", attributes={"preferences": {"drink": "Champagne"}})

    async def perks(member: dict) -> dict:
        response = await t.get(f"/v1/hotel/members/{member['id']}/perks")
        assert response.status_code == 200, response.text
        return response.json()

    none = await perks(plain)
    assert (none["tier"], none["priority_check_in"], none["late_checkout"], none["welcome_gift"], none["butler"]) == (
        None,
        False,
        None,
        None,
        False,
    )
    s = await perks(silver)
    assert (s["priority_check_in"], s["late_checkout"], s["welcome_gift"], s["tier_bonus_percent"]) == (
        True,
        "14:00",
        None,
        10,
    )
    g = await perks(gold)
    assert g["welcome_gift"] == "a selection of green tea in the room" and g["butler"] is False
    a = await perks(ambassador)
    assert (a["late_checkout"], a["butler"], a["welcome_gift"]) == ("16:00", True, "a chilled bottle of champagne")
    assert a["pre_arrival_notice"] is True and g["pre_arrival_notice"] is False

    await t.patch(
        "/v1/program",
        json={
            "plugin_settings": {
                "hotel": {
                    "perks": {"silver": {"welcome_gift": True, "butler": True}},
                    "welcome_gifts": [{"preference": "pillow", "value": "firm", "gift": "a firm pillow"}],
                    "default_welcome_gift": "a local cake",
                }
            }
        },
    )
    s = await perks(silver)
    assert (s["priority_check_in"], s["welcome_gift"], s["butler"]) == (False, "a local cake", True)
    assert (await perks(gold))["welcome_gift"] is None  # gold has no perks in these settings


async def test_a_top_tier_booking_within_three_days_asks_for_a_pre_arrival_notice(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await make_tiers(t)
    vip = await tiered(t, "g-vip", "platinum", attributes={"preferences": {"snack": "macarons"}})
    gold = await tiered(t, "g-gold", "gold")
    soon = today() + timedelta(days=2)
    out = await send(t, stay("g-vip", reservation="R-P", status="booked", check_in=soon, nights=3, folio=[]))
    assert out["status"] == "rejected"  # a booking earns nothing yet
    await send(t, stay("g-gold", status="booked", check_in=soon, nights=3, folio=[]))
    later = await send(
        t, stay("g-vip", reservation="R-L", status="booked", check_in=today() + timedelta(days=20), nights=2, folio=[])
    )
    assert later["status"] == "rejected"
    care = (await t.get("/v1/care/requests", params={"kind": "hotel.pre_arrival"})).json()["items"]
    assert [(r["member_id"], r["purpose"]) for r in care] == [(vip["id"], "service")]
    payload = care[0]["payload"]
    assert payload["welcome_gift"] == "macarons with seasonal fruit"
    assert (payload["reservation_id"], payload["check_in"], payload["perks"]["late_checkout"]) == (
        "R-P",
        soon.isoformat(),
        "16:00",
    )
    # A repeated booking message asks nothing more.
    await send(t, stay("g-vip", reservation="R-P", status="booked", check_in=soon, nights=3, folio=[]))
    assert len((await t.get("/v1/care/requests", params={"kind": "hotel.pre_arrival"})).json()["items"]) == 1
    assert gold


async def test_the_daily_job_catches_bookings_made_long_before(hotel_tenant: TenantHandle, runtime) -> None:
    t = hotel_tenant
    await make_tiers(t)
    vip = await tiered(t, "g-vip", "ambassador")
    arrival = today() + timedelta(days=10)
    await send(t, stay("g-vip", reservation="R-J", status="booked", check_in=arrival, nights=2, folio=[]))
    await tick(runtime, t.id)
    assert (await t.get("/v1/care/requests", params={"kind": "hotel.pre_arrival"})).json()["items"] == []
    with time_machine.travel(timedelta(days=8), tick=True):
        await tick(runtime, t.id)
        await tick(runtime, t.id)
        care = (await t.get("/v1/care/requests", params={"kind": "hotel.pre_arrival"})).json()["items"]
    assert [(r["member_id"], r["payload"]["reservation_id"]) for r in care] == [(vip["id"], "R-J")]
    assert care[0]["payload"]["welcome_gift"] == "seasonal fruit and a handwritten welcome note"
