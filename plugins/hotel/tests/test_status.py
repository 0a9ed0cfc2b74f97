"""Status per calendar year on nights OR stays OR base points (the plugin's qualification credits), valid until the
end of February in year N+2."""

from __future__ import annotations

from datetime import date, timedelta

from core.testing import TenantHandle
from plugins.hotel.tests.conftest import send, stay, today

TIERS = [
    {"code": "member", "name": "Member", "rank": 0},
    {
        "code": "silver",
        "name": "Silver",
        "rank": 1,
        "qualification": {
            "window": {"kind": "calendar_year"},
            "mode": "any",
            "criteria": [
                {"metric": "nights", "min": "10"},
                {"metric": "stays", "min": "4"},
                {"metric": "hotel_base_points", "min": "25000"},
            ],
        },
        "validity": {"kind": "fixed_date", "years_after": 2, "month": 2, "day": 31},
    },
    {
        "code": "gold",
        "name": "Gold",
        "rank": 2,
        "qualification": {
            "window": {"kind": "calendar_year"},
            "mode": "any",
            "criteria": [
                {"metric": "nights", "min": "40"},
                {"metric": "stays", "min": "20"},
                {"metric": "hotel_base_points", "min": "75000"},
            ],
        },
        "validity": {"kind": "fixed_date", "years_after": 2, "month": 3, "day": 31},
    },
]


async def configure(t: TenantHandle) -> None:
    for tier in TIERS:
        response = await t.post("/v1/tiers", json=tier)
        assert response.status_code == 201, response.text


def end_of_february(year: int) -> str:
    return f"{year}-03-01T00:00:00+00:00"  # the end of that London day (GMT in winter)


def cheap(nights: int) -> list[dict]:
    return [{"category": "room", "amount": "50"}] * nights


async def test_silver_on_ten_nights(hotel_tenant: TenantHandle) -> None:
    await configure(hotel_tenant)
    await hotel_tenant.enrol("g-n")
    first = await send(hotel_tenant, stay("g-n", nights=9, check_in=today() - timedelta(days=9), folio=cheap(9)))
    assert first["tier"] is None or first["tier"]["to"] == "member"
    second = await send(hotel_tenant, stay("g-n", nights=1, check_in=today() - timedelta(days=30), folio=cheap(1)))
    move = second["tier"]
    assert move["to"] == "silver" and move["reason"] == "upgrade"
    assert move["valid_until"] == end_of_february(today().year + 2)


async def test_silver_on_four_stays(hotel_tenant: TenantHandle) -> None:
    await configure(hotel_tenant)
    await hotel_tenant.enrol("g-s")
    moves = []
    for i in range(4):  # one night each, weeks apart: four stays, four nights
        check_in = today() - timedelta(days=7 * i + 1)
        out = await send(hotel_tenant, stay("g-s", nights=1, check_in=check_in, folio=cheap(1), property=f"P-{i}"))
        assert out["credits"]["stays"] == "1"
        moves.append(out["tier"]["to"] if out["tier"] else None)
    assert moves[-1] == "silver" and "silver" not in moves[:-1]


async def test_consecutive_reservations_at_one_hotel_are_one_stay_for_status(hotel_tenant: TenantHandle) -> None:
    await configure(hotel_tenant)
    member = await hotel_tenant.enrol("g-c")
    for i in range(4):  # four back-to-back one-night reservations at one hotel: one stay of four nights
        check_in = today() - timedelta(days=4 - i)
        await send(hotel_tenant, stay("g-c", nights=1, check_in=check_in, folio=cheap(1)))
    state = (await hotel_tenant.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "member"
    progress = {p["metric"]: p["current"] for p in state["next"]["progress"]}
    assert progress["stays"] == "1" and progress["nights"] == "4"


async def test_silver_on_base_points_and_gold_later(hotel_tenant: TenantHandle) -> None:
    await configure(hotel_tenant)
    await hotel_tenant.enrol("g-p")
    rich = [{"category": "room", "amount": "1300", "tax": "260"}] * 2
    out = await send(hotel_tenant, stay("g-p", nights=2, folio=rich))
    assert out["credits"]["hotel_base_points"] == "26000" and out["tier"]["to"] == "silver"
    richer = [{"category": "room", "amount": "2500"}] * 2
    out = await send(hotel_tenant, stay("g-p", nights=2, check_in=today() - timedelta(days=40), folio=richer))
    # Gold lasts to the end of 31 March of year N+2 (London is on summer time then: 23:00 UTC).
    assert out["tier"]["to"] == "gold"
    assert out["tier"]["valid_until"] == f"{today().year + 2}-03-31T23:00:00+00:00"


async def test_ineligible_and_cancelled_stays_do_not_count(hotel_tenant: TenantHandle) -> None:
    await configure(hotel_tenant)
    member = await hotel_tenant.enrol("g-x")
    await send(hotel_tenant, stay("g-x", nights=12, booking_channel="ota", folio=cheap(12)))
    await send(hotel_tenant, stay("g-x", nights=12, status="no_show", folio=[]))
    state = (await hotel_tenant.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "member"
    assert date.today()
