"""Cancellations, no-shows and failed payments take back what a reservation earned, pending or posted, with its
nights; a reservation earns once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine

from core.testing import TenantHandle
from core.worker import tick
from tests.plugins.hotel.conftest import send, stay


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
    await t.post(
        "/v1/tiers",
        json={
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "qualification": {"criteria": [{"metric": "nights", "min": "100"}]},
        },
    )
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
