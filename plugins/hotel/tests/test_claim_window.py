"""Missing stays can be claimed up to a year after check-out (``claim_window_days``); later they earn nothing, and the
answer says why."""

from __future__ import annotations

from datetime import timedelta

from core.testing import TenantHandle
from plugins.hotel.tests.conftest import enable_hotel, send, stay, today


async def test_a_stay_claimed_within_a_year_earns_and_a_later_one_does_not(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    in_time = await send(t, stay("g-1", check_out=today() - timedelta(days=365), nights=2))
    assert in_time["status"] == "awarded" and in_time["points"] == 2000 and in_time["credits"]["nights"] == "2"
    late_out = today() - timedelta(days=366)
    late = await send(t, stay("g-1", reservation="R-LATE", check_out=late_out, nights=3))
    assert late["status"] == "rejected" and late["points"] == 0 and late["awards"] == []
    assert "nights" not in late["credits"]
    assert late["reason"] == (
        f"hotel.claim_window: checked out on {late_out.isoformat()}, 366 days ago: a stay can be claimed up to 365 "
        "days after check-out, so it earns no points or nights"
    )
    assert (await t.balance(member["id"]))["available"] == 2000  # the in-time stay, posted at once
    stays = {s["reservation_id"]: s for s in (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]}
    assert (stays["R-LATE"]["earning_event_id"], stays["R-LATE"]["qualifying_nights"]) == (None, 0)


async def test_the_window_is_the_tenants_setting(make_tenant) -> None:
    t = await enable_hotel(await make_tenant(), claim_window_days=30)
    await t.enrol("g-1")
    late = await send(t, stay("g-1", check_out=today() - timedelta(days=31)))
    assert late["status"] == "rejected" and late["reason"].startswith("hotel.claim_window: ")
    assert "up to 30 days after check-out" in late["reason"]
    ok = await send(t, stay("g-1", check_out=today() - timedelta(days=30)))
    assert ok["status"] == "awarded"
    bad = await t.patch("/v1/program", json={"plugin_settings": {"hotel": {"claim_window_days": 0}}})
    assert bad.status_code == 422 and bad.json()["field"] == "plugin_settings.hotel.claim_window_days"
