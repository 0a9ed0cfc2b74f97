"""Cancellations, no-shows and failed payments take back what a reservation earned, pending or posted, with its
nights; a reservation earns once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine

from core.testing import TenantHandle
from core.worker import tick
from plugins.hotel.tests.conftest import send, stay, today


async def nights_tier(t: TenantHandle) -> None:
    """A tier on nights, out of reach: what the stays credit is seen in the member's progress."""
    response = await t.post(
        "/v1/tiers",
        json={"code": "silver", "name": "Silver", "rank": 1,
              "qualification": {"criteria": [{"metric": "nights", "min": "100"}]}},
    )  # fmt: skip
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"status": "cancelled"}, "hotel.cancelled"),
        ({"status": "no_show"}, "hotel.no_show"),
        ({"status": "checked_out", "payment_status": "failed"}, "hotel.payment_failed"),
    ],
)
async def test_an_update_reverses_pending_points(hotel_tenant: TenantHandle, update: dict, code: str) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    earned = await send(t, stay("g-1", reservation="R-1", nights=3))
    assert (await t.balance(member["id"]))["pending"] == 3000
    update = dict(update)
    status = update.pop("status")
    out = await send(t, stay("g-1", reservation="R-1", nights=3, status=status, **update))
    assert out["status"] == "rejected" and out["points"] == 0
    assert out["reason"].startswith(code)
    assert f"the 3000 points and 3 nights of {earned['event_id']} are taken back" in out["reason"]
    balance = await t.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (0, 0)
    original = (await t.get(f"/v1/events/{earned['id']}")).json()
    assert original["reversed_points"] == 3000
    [row] = (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]
    assert (row["earning_event_id"], row["qualifying_nights"], row["base_points"]) == (None, 0, 0)
    tier = (await t.get(f"/v1/members/{member['id']}/tier")).json()
    assert tier is not None
    # A second cancellation message changes nothing more.
    again = await send(t, stay("g-1", reservation="R-1", nights=3, status="cancelled"))
    assert "taken back" not in again["reason"]


async def test_a_failed_payment_reverses_posted_points_and_nights(hotel_tenant: TenantHandle, runtime) -> None:
    t = hotel_tenant
    await nights_tier(t)
    member = await t.enrol("g-1")
    earned = await send(t, stay("g-1", reservation="R-9", nights=2))
    posting = datetime.fromisoformat(earned["awards"][0]["available_at"])
    with time_machine.travel(posting + timedelta(hours=1), tick=False):
        await tick(runtime, t.id)
        assert (await t.balance(member["id"]))["available"] == 2000
        progress = (await t.get(f"/v1/members/{member['id']}/tier")).json()["next"]["progress"]
        assert any(p["metric"] == "nights" and p["current"] == "2" for p in progress)
        failed = await send(t, stay("g-1", reservation="R-9", nights=2, payment_status="failed"))
        assert failed["reason"].startswith("hotel.payment_failed: payment failed")
        balance = await t.balance(member["id"])
        assert (balance["available"], balance["pending"]) == (0, 0)
        progress = (await t.get(f"/v1/members/{member['id']}/tier")).json()["next"]["progress"]
        assert any(p["metric"] == "nights" and p["current"] == "0" for p in progress)


async def test_a_reservation_earns_once_and_reversal_through_the_api_frees_it(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    first = await send(t, stay("g-1", reservation="R-5"))
    again = await send(t, stay("g-1", reservation="R-5"))
    assert again["status"] == "rejected" and again["reason"].startswith("hotel.already_earned")
    assert first["event_id"] in again["reason"]
    assert (await t.balance(member["id"]))["pending"] == 2000
    reversed_ = await t.post(f"/v1/events/{first['id']}/reverse", json={"reason": "folio corrected"})
    assert reversed_.status_code == 200, reversed_.text
    [row] = (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]
    assert row["earning_event_id"] is None
    corrected = await send(t, stay("g-1", reservation="R-5", folio=[{"category": "room", "amount": "150"}]))
    assert corrected["status"] == "awarded" and corrected["points"] == 1500
    assert (await t.balance(member["id"]))["pending"] == 1500


async def test_a_batch_with_two_checkouts_of_one_reservation_earns_once(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    member = await t.enrol("g-1")
    batch = {"events": [stay("g-1", reservation="R-7"), stay("g-1", reservation="R-7")]}
    results = (await t.post("/v1/events/batch", json=batch)).json()["results"]
    assert [r["outcome"]["status"] for r in results] == ["awarded", "rejected"]
    assert (await t.balance(member["id"]))["pending"] == 2000


async def test_an_update_from_another_member_is_refused(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    await t.enrol("g-1")
    await t.enrol("g-2")
    await send(t, stay("g-1", reservation="R-X"))
    response = await t.post("/v1/events", json=stay("g-2", reservation="R-X", status="cancelled"))
    assert response.status_code == 422 and response.json()["field"] == "attributes.reservation_id"


async def test_a_partial_reversal_takes_its_share_of_points_and_nights_like_status_does(
    hotel_tenant: TenantHandle,
) -> None:
    t = hotel_tenant
    await nights_tier(t)
    member = await t.enrol("g-1")
    await send(t, stay("g-1", reservation="R-A", check_in=today() - timedelta(days=25), nights=10))
    second = await send(t, stay("g-1", reservation="R-B", nights=10))
    milestones = f"/v1/hotel/members/{member['id']}/milestones"
    listing = (await t.get(milestones)).json()
    assert listing["nights_this_year"] == 20 and [(m["nights"], m["status"]) for m in listing["items"]] == [
        (20, "offered")
    ]

    async def points() -> int:
        balance = await t.balance(member["id"])
        return int(balance["available"]) + int(balance["pending"])

    async def nights_for_status() -> str:
        progress = (await t.get(f"/v1/members/{member['id']}/tier")).json()["next"]["progress"]
        return next(p["current"] for p in progress if p["metric"] == "nights")

    # Half of the second folio refunded: half its points and half its nights go, for status and milestones alike.
    response = await t.post(f"/v1/events/{second['id']}/reverse", json={"reason": "refund", "fraction": "0.5"})
    assert response.status_code == 200, response.text
    assert await points() == 10_000 + 5000
    assert await nights_for_status() == "15"
    stays = {s["reservation_id"]: s for s in (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]}
    row = stays["R-B"]
    assert (row["reversed_share"], row["counted_nights"], row["qualifying_nights"]) == ("0.5", "5", 10)
    assert row["earning_event_id"] == second["event_id"] and row["base_points"] == 10_000  # as earned
    listing = (await t.get(milestones)).json()
    assert listing["nights_this_year"] == 15 and listing["next_milestone"] == 20
    assert [(m["nights"], m["status"]) for m in listing["items"]] == [(20, "withdrawn")]
    # Another quarter: shares add up (not a quarter of what was left).
    response = await t.post(f"/v1/events/{second['id']}/reverse", json={"reason": "refund", "fraction": "0.25"})
    assert response.status_code == 200, response.text
    assert await points() == 10_000 + 2500
    assert await nights_for_status() == "12.5"
    row = next(
        s
        for s in (await t.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"]
        if s["reservation_id"] == "R-B"
    )
    assert (row["reversed_share"], row["counted_nights"]) == ("0.75", "2.5")
    assert (await t.get(milestones)).json()["nights_this_year"] == 12
    # The stay is then cancelled: what was left of it goes too, and the answer says how much.
    cancelled = await send(t, stay("g-1", reservation="R-B", nights=10, status="cancelled"))
    assert f"the 2500 points and 2.5 nights of {second['event_id']} are taken back" in cancelled["reason"]
    assert await points() == 10_000
    assert await nights_for_status() == "10"
    # Nights reached again: the withdrawn milestone is offered again.
    await send(t, stay("g-1", reservation="R-C", check_in=today() - timedelta(days=40), nights=10))
    assert [(m["nights"], m["status"]) for m in (await t.get(milestones)).json()["items"]] == [(20, "offered")]
