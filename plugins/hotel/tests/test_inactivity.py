"""Points expire after 24 months without qualifying activity; gifts and transfers of points are not activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.testing import TenantHandle
from core.worker import tick
from plugins.hotel.tests.conftest import send, stay

MONTH = timedelta(days=31)


def gift(member: str, points: int, event_id: str) -> dict:
    return {
        "type": "hotel.points_gift",
        "event_id": event_id,
        "member": {"external_id": member},
        "occurred_at": datetime.now(UTC).isoformat(),
        "quantity": str(points),
        "attributes": {"from_name": "Grandma"},
    }


def transfer(member: str, sender_id: str, points: int, event_id: str) -> dict:
    return {
        "type": "hotel.points_transfer",
        "event_id": event_id,
        "member": {"external_id": member},
        "occurred_at": datetime.now(UTC).isoformat(),
        "quantity": str(points),
        "attributes": {"from_member_id": sender_id},
    }


async def test_gifts_and_transfers_do_not_keep_points_alive(hotel_tenant: TenantHandle, runtime) -> None:
    t = hotel_tenant
    await t.patch("/v1/program", json={"expiry_policy": {"kind": "inactivity", "value": 24}})
    guest = await t.enrol("g-1")
    friend = await t.enrol("g-2")
    traveller = await t.enrol("g-3")
    for ext in ("g-1", "g-3"):
        await send(t, stay(ext, nights=2))
    start = datetime.now(UTC)
    with time_machine.travel(start + timedelta(days=3), tick=False):
        await tick(runtime, t.id)
        assert (await t.balance(guest["id"]))["available"] == 2000
        await t.credit(friend["id"], 1000)
    # 23 months later: a gift and a transfer reach g-1; g-3 stays again (real activity).
    with time_machine.travel(start + 23 * MONTH, tick=False):
        gifted = await send(t, gift("g-1", 300, "gift-1"))
        assert gifted["points"] == 300 and gifted["awards"][0]["source"] == "hotel.gift"
        moved = await send(t, transfer("g-1", friend["id"], 200, "transfer-1"))
        assert moved["points"] == 200
        assert (await t.balance(friend["id"]))["available"] == 800  # the sender is debited
        await send(t, stay("g-3", nights=1))
        assert (await t.balance(guest["id"]))["available"] == 2500
    # 24 months after the stay (and a month after the gift): g-1's points all expire, g-3's do not.
    with time_machine.travel(start + 24 * MONTH + timedelta(days=3), tick=False):
        await tick(runtime, t.id)
        guest_balance = await t.balance(guest["id"])
        traveller_balance = await t.balance(traveller["id"])
    assert guest_balance["available"] == 0 and guest_balance["lifetime"]["expired"] == 2500
    assert traveller_balance["available"] == 3000 and traveller_balance["lifetime"]["expired"] == 0


async def test_a_transfer_never_overdraws_the_sender(hotel_tenant: TenantHandle) -> None:
    t = hotel_tenant
    guest = await t.enrol("g-1")
    friend = await t.enrol("g-2")
    await t.credit(friend["id"], 100)
    response = await t.post("/v1/events", json=transfer("g-1", friend["id"], 500, "transfer-x"))
    assert response.status_code == 409 and response.json()["field"] == "points"
    assert (await t.balance(guest["id"]))["available"] == 0
    assert (await t.balance(friend["id"]))["available"] == 100
    assert (await t.get("/v1/events", params={"event_id": "transfer-x"})).json()["items"] == []
    to_self = await t.post("/v1/events", json=transfer("g-1", guest["id"], 5, "transfer-self"))
    assert to_self.status_code == 422 and to_self.json()["field"] == "attributes.from_member_id"
    nobody = await t.post("/v1/events", json=transfer("g-1", "01a20290-0000-7000-8000-000000000000", 5, "t-n"))
    assert nobody.status_code == 422 and nobody.json()["field"] == "attributes.from_member_id"
    fraction = await t.post("/v1/events", json=gift("g-1", 5, "g-frac") | {"quantity": "2.5"})
    assert fraction.status_code == 422 and fraction.json()["field"] == "quantity"
