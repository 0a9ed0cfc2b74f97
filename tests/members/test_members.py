"""Members: enrolment, normalisation, uniqueness, listing, updates, consents, anonymisation."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from core.testing import TenantHandle


async def test_enrol_normalises_contact_details(tenant: TenantHandle) -> None:
    await tenant.patch("/v1/program", json={"country": "GB"})
    member = await tenant.enrol(
        "G-1",
        name="Ada Lovelace",
        email="Ada.Lovelace@Example.COM",
        phone="07911 123456",
        birthday="1990-12-10",
        timezone="Europe/London",
        locale="en_gb",
        attributes={"room_pref": "high floor"},
    )
    assert member["email"] == "ada.lovelace@example.com"
    assert member["phone"] == "+447911123456"
    assert member["locale"] == "en-GB"
    assert member["balance"] == {"available": 0, "pending": 0}
    assert member["attributes"] == {"room_pref": "high floor"}
    fetched = await tenant.get(f"/v1/members/{member['id']}")
    assert fetched.json() == member


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"phone": "07911 123456"}, "phone"),  # no country set: national numbers are ambiguous
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"locale": "zz-ZZ-bogus"}, "locale"),
        ({"birthday": (date.today() + timedelta(days=2)).isoformat()}, "birthday"),
        ({"birthday": "1890-01-01"}, "birthday"),
        ({"birthday": "not a date"}, "birthday"),
        ({"consents": [{"channel": "fax", "purpose": "marketing", "granted": True}]}, "consents[0].channel"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 129}, "external_id"),
        ({"attributes": []}, "attributes"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
async def test_bad_enrolment_is_refused_and_writes_nothing(tenant: TenantHandle, fields: dict, field: str) -> None:
    body = {"external_id": f"bad-{uuid.uuid4().hex[:8]}"} | fields
    response = await tenant.post("/v1/members", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field
    assert problem["type"] == "https://fealty.dev/problems/validation-error"
    if body.get("external_id"):
        found = await tenant.get("/v1/members", params={"external_id": body["external_id"]})
        assert found.json()["items"] == []


async def test_external_id_and_card_are_unique_per_tenant(tenant: TenantHandle, make_tenant) -> None:
    await tenant.enrol("dup-1", card="CARD-1")
    again = await tenant.post("/v1/members", json={"external_id": "dup-1"})
    assert again.status_code == 409 and again.json()["field"] == "external_id"
    card = await tenant.post("/v1/members", json={"external_id": "dup-2", "card": "CARD-1"})
    assert card.status_code == 409 and card.json()["field"] == "card"
    other = await make_tenant()
    # The same identifiers are free in another tenant.
    await other.enrol("dup-1", card="CARD-1")


async def test_list_paginates_and_filters(tenant: TenantHandle) -> None:
    await tenant.patch("/v1/program", json={"country": "CN"})
    made = [await tenant.enrol(f"L-{i}", email=f"l{i}@example.cn", phone=f"1380013800{i}") for i in range(5)]
    ids, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.get("/v1/members", params=params)).json()
        ids += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [m["id"] for m in made]
    by_email = (await tenant.get("/v1/members", params={"email": "L3@EXAMPLE.CN"})).json()["items"]
    assert [m["external_id"] for m in by_email] == ["L-3"]
    by_phone = (await tenant.get("/v1/members", params={"phone": "+86 138 0013 8002"})).json()["items"]
    assert [m["external_id"] for m in by_phone] == ["L-2"]
    by_ext = (await tenant.get("/v1/members", params={"external_id": "L-4"})).json()["items"]
    assert [m["id"] for m in by_ext] == [made[4]["id"]]
    after = made[2]["created_at"]
    recent = (await tenant.get("/v1/members", params={"created_after": after})).json()["items"]
    assert {m["external_id"] for m in recent} >= {"L-2", "L-3", "L-4"}
    assert (await tenant.get("/v1/members", params={"cursor": "garbage!"})).status_code == 422
    assert (await tenant.get("/v1/members", params={"limit": 0})).status_code == 422
    assert (await tenant.get("/v1/members", params={"limit": 100000})).status_code == 422


async def test_update_changes_only_what_is_given(tenant: TenantHandle) -> None:
    member = await tenant.enrol("U-1", name="Old", email="old@example.com", attributes={"a": 1})
    response = await tenant.patch(f"/v1/members/{member['id']}", json={"name": "New", "email": None})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "New" and updated["email"] is None and updated["attributes"] == {"a": 1}
    bad = await tenant.patch(f"/v1/members/{member['id']}", json={"email": "nope", "name": "Half"})
    assert bad.status_code == 422
    assert (await tenant.get(f"/v1/members/{member['id']}")).json()["name"] == "New"


async def test_consents_keep_their_history(tenant: TenantHandle) -> None:
    member = await tenant.enrol(
        consents=[{"channel": "sms", "purpose": "marketing", "granted": True, "source": "store"}]
    )
    await tenant.patch(
        f"/v1/members/{member['id']}",
        json={"consents": [{"channel": "sms", "purpose": "marketing", "granted": False, "source": "STOP reply"}]},
    )
    # Repeating the same state records nothing new.
    await tenant.patch(
        f"/v1/members/{member['id']}", json={"consents": [{"channel": "sms", "purpose": "marketing", "granted": False}]}
    )
    consents = (await tenant.get(f"/v1/members/{member['id']}/consents")).json()
    assert consents["current"] == [
        {
            "channel": "sms",
            "purpose": "marketing",
            "granted": False,
            "source": "STOP reply",
            "updated_at": consents["current"][0]["updated_at"],
        }
    ]
    assert [(h["granted"], h["source"]) for h in consents["history"]] == [(False, "STOP reply"), (True, "store")]
    twice = await tenant.patch(
        f"/v1/members/{member['id']}",
        json={
            "consents": [
                {"channel": "email", "purpose": "service", "granted": True},
                {"channel": "email", "purpose": "service", "granted": False},
            ]
        },
    )
    assert twice.status_code == 422 and twice.json()["field"] == "consents"


async def test_anonymize_erases_personal_data_and_keeps_points(tenant: TenantHandle) -> None:
    member = await tenant.enrol(
        "A-1",
        name="Grace",
        email="grace@example.com",
        card="C-9",
        birthday="1980-01-01",
        consents=[{"channel": "email", "purpose": "marketing", "granted": True}],
    )
    await tenant.credit(member["id"], 250)
    response = await tenant.post(f"/v1/members/{member['id']}/anonymize")
    assert response.status_code == 200, response.text
    gone = response.json()
    assert gone["status"] == "anonymized"
    assert all(gone[f] is None for f in ("name", "email", "phone", "card", "birthday"))
    assert gone["external_id"] == f"anonymized:{member['id']}"
    assert gone["consents"][0]["granted"] is False
    assert (await tenant.balance(member["id"]))["available"] == 250
    # The old identifiers no longer find anyone, and the member can no longer change.
    assert (await tenant.get("/v1/members", params={"external_id": "A-1"})).json()["items"] == []
    assert (await tenant.patch(f"/v1/members/{member['id']}", json={"name": "Back"})).status_code == 409
    assert (await tenant.post(f"/v1/members/{member['id']}/anonymize")).status_code == 200
    # The freed external id can be enrolled again as a new member.
    assert (await tenant.enrol("A-1"))["id"] != member["id"]


async def test_unknown_member_is_404(tenant: TenantHandle) -> None:
    missing = uuid.uuid4()
    for path in (
        f"/v1/members/{missing}",
        f"/v1/members/{missing}/balance",
        f"/v1/members/{missing}/ledger",
        f"/v1/members/{missing}/consents",
    ):
        response = await tenant.get(path)
        assert response.status_code == 404, path
        assert response.json()["type"].endswith("/not-found")
    assert (await tenant.get("/v1/members/not-a-uuid")).status_code in (400, 404, 422)
