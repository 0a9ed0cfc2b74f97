"""Bad input is a 422 naming the field, with nothing written; settings are validated by the plugin's schema; the
plugin is invisible to tenants that have not enabled it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.testing import TenantHandle
from plugins.hotel.tests.conftest import enable_hotel, stay, today


def with_attributes(event: dict, **changes) -> dict:
    return event | {"attributes": event["attributes"] | changes}


def bad_events() -> list[tuple[str, dict, str]]:
    base = stay("g-1", reservation="R-BAD", event_id="bad-1")
    room = {"category": "room", "amount": "100", "tax": "20"}
    return [
        (
            "check-out before check-in",
            with_attributes(base, check_in=today().isoformat(), check_out=(today() - timedelta(days=1)).isoformat()),
            "attributes.check_out",
        ),
        ("check-out on check-in", with_attributes(base, check_in=today().isoformat()), "attributes.check_out"),
        (
            "checked out in the future",
            with_attributes(base, check_out=(today() + timedelta(days=3)).isoformat()),
            "attributes.check_out",
        ),
        ("folio in another currency", base | {"currency": "EUR"}, "currency"),
        (
            "a line in another currency",
            with_attributes(base, folio=[room, room | {"currency": "USD"}]),
            "attributes.folio[1].currency",
        ),
        ("negative amount", with_attributes(base, folio=[room | {"amount": "-50"}]), "attributes.folio[0].amount"),
        ("negative tax", with_attributes(base, folio=[room | {"tax": "-1"}]), "attributes.folio[0].tax"),
        ("not a number", with_attributes(base, folio=[room | {"amount": "NaN"}]), "attributes.folio[0].amount"),
        ("rooms 0", with_attributes(base, rooms=0), "attributes.rooms"),
        ("a line for room 3 of 1", with_attributes(base, folio=[room | {"room": 3}]), "attributes.folio[0].room"),
        ("unknown status", with_attributes(base, status="checked_in_maybe"), "attributes.status"),
        ("unknown payment status", with_attributes(base, payment_status="iou"), "attributes.payment_status"),
        (
            "missing property",
            base | {"attributes": {k: v for k, v in base["attributes"].items() if k != "property"}},
            "attributes.property",
        ),
        ("unknown attribute", with_attributes(base, colour="red"), "attributes.colour"),
        ("a date that is not one", with_attributes(base, check_in="yesterday"), "attributes.check_in"),
    ]


@pytest.mark.parametrize("case", range(len(bad_events())), ids=[c[0] for c in bad_events()])
async def test_bad_stays_are_refused_naming_the_field(hotel_tenant: TenantHandle, case: int) -> None:
    _, event, field = bad_events()[case]
    member = await hotel_tenant.enrol("g-1")
    response = await hotel_tenant.post("/v1/events", json=event)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.headers["content-type"].startswith("application/problem+json")
    # Nothing written: no event, no stay, no points.
    assert (await hotel_tenant.get("/v1/events", params={"event_id": event["event_id"]})).json()["items"] == []
    assert (await hotel_tenant.get(f"/v1/hotel/members/{member['id']}/stays")).json()["items"] == []
    assert (await hotel_tenant.balance(member["id"]))["pending"] == 0


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"points_per_unit": -1}, "plugin_settings.hotel.points_per_unit"),
        ({"max_rooms_earning": 0}, "plugin_settings.hotel.max_rooms_earning"),
        ({"posting_delay_days": "soon"}, "plugin_settings.hotel.posting_delay_days"),
        ({"tier_bonus_percent": {"gold": -5}}, "plugin_settings.hotel.tier_bonus_percent[...]"),
        ({"perks": {"gold": {"late_checkout": "25:00"}}}, "plugin_settings.hotel.perks[...].late_checkout"),
        ({"milestone_choices": ["yacht"]}, "plugin_settings.hotel.milestone_choices[0]"),
        ({"free_night_points": {"1": 0}}, "plugin_settings.hotel.free_night_points[...]"),
        ({"colour": "red"}, "plugin_settings.hotel.colour"),
        ({"milestone_first_nights": 50, "milestone_last_nights": 40}, "plugin_settings.hotel"),
    ],
)
async def test_settings_are_validated_by_the_plugins_schema(
    hotel_tenant: TenantHandle, settings: dict, field: str
) -> None:
    response = await hotel_tenant.patch("/v1/program", json={"plugin_settings": {"hotel": settings}})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    program = (await hotel_tenant.get("/v1/program")).json()
    assert program["plugin_settings"].get("hotel", {}).get("max_rooms_earning", 3) == 3


async def test_enabling_fills_in_the_domain_defaults(make_tenant) -> None:
    t = await enable_hotel(await make_tenant())
    settings = (await t.get("/v1/program")).json()["plugin_settings"]["hotel"]
    assert settings["points_per_unit"] == 10 and settings["max_rooms_earning"] == 3
    assert settings["tier_bonus_percent"] == {"silver": 10, "gold": 25, "platinum": 50, "ambassador": 75, "diamond": 75}
    assert settings["free_night_every"] == 5 and settings["max_free_nights_per_stay"] == 4


async def test_tenants_without_the_plugin_see_none_of_it(tenant: TenantHandle) -> None:
    member = await tenant.enrol("g-1")
    response = await tenant.post("/v1/events", json=stay("g-1"))
    assert response.status_code == 422 and response.json()["field"] == "type"
    for path in (
        f"/v1/hotel/members/{member['id']}/perks",
        f"/v1/hotel/members/{member['id']}/stays",
        f"/v1/hotel/members/{member['id']}/milestones",
    ):
        assert (await tenant.get(path)).status_code == 404, path
    quote = await tenant.post("/v1/hotel/quotes/points-stay", json={"category": "1", "nights": 1})
    assert quote.status_code == 404
    free_night = await tenant.post(
        "/v1/rewards",
        json={
            "code": "FN",
            "name": "Free night",
            "points_cost": 7500,
            "kind": "hotel.free_night",
            "attributes": {"category": "1"},
        },
    )
    await tenant.credit(member["id"], 10000)
    refused = await tenant.post(
        "/v1/redemptions", json={"member_id": member["id"], "reward_id": free_night.json()["id"]}
    )
    assert refused.status_code == 409  # no enabled plugin fulfils free nights here
    assert (await tenant.balance(member["id"]))["available"] == 10000
