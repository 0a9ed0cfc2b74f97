"""Milestones: a choice every 10 nights from 20 in a calendar year; choosing points credits them once."""

from __future__ import annotations

from datetime import timedelta

from core.testing import TenantHandle
from plugins.hotel.tests.conftest import send, stay, today


def long_stay(member: str, nights: int, ends_days_ago: int, **kw) -> dict:
    check_out = today() - timedelta(days=ends_days_ago)
    return stay(member, check_in=check_out - timedelta(days=nights), check_out=check_out, **kw)


async def test_crossing_20_and_30_nights_offers_choices_and_points_are_credited(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-m")
    url = f"/v1/hotel/members/{member['id']}/milestones"
    await send(t, long_stay("g-m", 15, 100, folio=[]))
    assert (await t.get(url)).json()["items"] == []
    await send(t, long_stay("g-m", 17, 60, folio=[]))  # 32 nights: 20 and 30 reached at once
    listing = (await t.get(url)).json()
    assert (listing["year"], listing["nights_this_year"], listing["next_milestone"]) == (today().year, 32, 40)
    items = listing["items"]
    assert [(m["nights"], m["status"]) for m in items] == [(20, "offered"), (30, "offered")]
    assert [o["choice"] for o in items[0]["options"]] == ["points", "food_vouchers", "suite_upgrade"]
    assert items[0]["options"][0]["points"] == 5000
    care = (await t.get("/v1/care/requests", params={"member_id": member["id"], "kind": "hotel.milestone"})).json()
    assert sorted(r["payload"]["nights"] for r in care["items"]) == [20, 30]

    choose = f"{url}/{items[0]['id']}/choose"
    chosen = await t.post(choose, json={"choice": "points"}, headers={"Idempotency-Key": "m-20"})
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["status"], chosen.json()["choice"]) == ("chosen", "points")
    assert (await t.balance(member["id"]))["available"] == 5000
    assert (await t.post(choose, json={"choice": "points"})).status_code == 200  # the same answer, no second credit
    assert (await t.balance(member["id"]))["available"] == 5000
    other = await t.post(choose, json={"choice": "suite_upgrade"})
    assert other.status_code == 409 and other.json()["field"] == "milestone_id"
    ledger = (await t.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    assert ledger[0]["points"] == 5000 and "milestone" in (ledger[0].get("reason") or str(ledger[0]))

    upgrade = await t.post(f"{url}/{items[1]['id']}/choose", json={"choice": "suite_upgrade"})
    assert upgrade.status_code == 200 and upgrade.json()["fulfilment"] == {"choice": "suite_upgrade", "upgrades": 1}
    handover = (
        await t.get("/v1/care/requests", params={"member_id": member["id"], "kind": "hotel.milestone_choice"})
    ).json()["items"]
    assert [r["payload"]["choice"] for r in handover] == ["suite_upgrade"]
    bad = await t.post(f"{url}/{items[1]['id']}/choose", json={"choice": "yacht"})
    assert bad.status_code == 422 and bad.json()["field"] == "choice"


async def test_a_cancelled_stay_withdraws_the_milestone_it_reached(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-w")
    url = f"/v1/hotel/members/{member['id']}/milestones"
    await send(t, long_stay("g-w", 15, 100, folio=[]))
    await send(t, long_stay("g-w", 6, 50, folio=[], reservation="R-W"))
    [offer] = (await t.get(url)).json()["items"]
    assert (offer["nights"], offer["status"]) == (20, "offered")
    await send(t, long_stay("g-w", 6, 50, folio=[], reservation="R-W", status="cancelled"))
    [offer] = (await t.get(url)).json()["items"]
    assert offer["status"] == "withdrawn"
    refused = await t.post(f"{url}/{offer['id']}/choose", json={"choice": "points"})
    assert refused.status_code == 409
    assert (await t.balance(member["id"]))["available"] == 0
    # Reaching 20 nights again offers it again.
    await send(t, long_stay("g-w", 5, 20, folio=[]))
    [offer] = (await t.get(url)).json()["items"]
    assert offer["status"] == "offered"


async def test_milestone_figures_are_settings(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await t.patch(
        "/v1/program",
        json={
            "plugin_settings": {
                "hotel": {
                    "milestone_first_nights": 5,
                    "milestone_every_nights": 5,
                    "milestone_points": 1000,
                    "milestone_choices": ["points"],
                }
            }
        },
    )
    member = await t.enrol("g-s")
    await send(t, long_stay("g-s", 11, 30, folio=[]))
    items = (await t.get(f"/v1/hotel/members/{member['id']}/milestones")).json()["items"]
    assert [(m["nights"], [o["choice"] for o in m["options"]]) for m in items] == [(5, ["points"]), (10, ["points"])]
    assert items[0]["options"][0]["points"] == 1000


async def test_unknown_milestones_and_members_are_404(hotel_tenant: TenantHandle) -> None:
    member = await hotel_tenant.enrol("g-u")
    missing = "01a20290-0000-7000-8000-000000000000"
    response = await hotel_tenant.post(
        f"/v1/hotel/members/{member['id']}/milestones/{missing}/choose", json={"choice": "points"}
    )
    assert response.status_code == 404 and response.json()["field"] == "milestone_id"
    assert (await hotel_tenant.get(f"/v1/hotel/members/{missing}/milestones")).status_code == 404
