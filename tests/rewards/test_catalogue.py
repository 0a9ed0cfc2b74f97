"""The rewards catalogue over HTTP: create, read, list, update, deactivate; validation and scopes."""

from __future__ import annotations

import uuid

from core.testing import TenantHandle
from tests.rewards.support import make_reward


async def test_create_read_list_update_and_deactivate(tenant: TenantHandle) -> None:
    created = await make_reward(
        tenant,
        code="NIGHT-CAT3",
        name="Free night (category 3)",
        description="One standard room night",
        kind="free_night",
        points_cost=15000,
        stock=5,
        per_member_limit=2,
        min_tier_rank=1,
        tier_codes=["gold", "diamond"],
        valid_from="2030-01-01T00:00:00+01:00",
        valid_until="2031-01-01T00:00:00Z",
        voucher_valid_days=90,
        refund_on_expiry=True,
        attributes={"category": 3},
    )
    assert created["kind"] == "free_night" and created["stock"] == 5 and created["active"] is True
    assert created["valid_from"] == "2029-12-31T23:00:00Z"  # stored and shown in UTC
    assert (await tenant.get(f"/v1/rewards/{created['id']}")).json() == created

    coffee = await make_reward(tenant, code="COFFEE", points_cost=100)
    assert coffee["kind"] == "voucher" and coffee["stock"] is None and coffee["tier_codes"] == []
    page = (await tenant.get("/v1/rewards", params={"limit": 1})).json()
    assert [r["code"] for r in page["items"]] == ["NIGHT-CAT3"]
    rest = (await tenant.get("/v1/rewards", params={"cursor": page["next_cursor"]})).json()
    assert [r["code"] for r in rest["items"]] == ["COFFEE"] and rest["next_cursor"] is None
    assert [r["code"] for r in (await tenant.get("/v1/rewards?kind=free_night")).json()["items"]] == ["NIGHT-CAT3"]
    assert [r["id"] for r in (await tenant.get("/v1/rewards?code=COFFEE")).json()["items"]] == [coffee["id"]]

    patched = await tenant.patch(
        f"/v1/rewards/{created['id']}", json={"points_cost": 12000, "tier_codes": [], "description": None}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["points_cost"], body["tier_codes"], body["description"]) == (12000, [], None)
    assert body["min_tier_rank"] == 1 and body["stock"] == 5  # absent fields stay

    restocked = (await tenant.patch(f"/v1/rewards/{created['id']}", json={"add_stock": 3})).json()
    assert restocked["stock"] == 8
    removed = (await tenant.patch(f"/v1/rewards/{created['id']}", json={"add_stock": -8})).json()
    assert removed["stock"] == 0
    too_many = await tenant.patch(f"/v1/rewards/{created['id']}", json={"add_stock": -1})
    assert too_many.status_code == 409 and too_many.json()["field"] == "add_stock"
    unlimited = await tenant.patch(f"/v1/rewards/{coffee['id']}", json={"add_stock": 1})
    assert unlimited.status_code == 409 and unlimited.json()["field"] == "add_stock"

    deactivated = await tenant.delete(f"/v1/rewards/{coffee['id']}")
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    assert (await tenant.get(f"/v1/rewards/{coffee['id']}")).json()["active"] is False  # kept, with its history
    assert [r["code"] for r in (await tenant.get("/v1/rewards?active=true")).json()["items"]] == ["NIGHT-CAT3"]
    again = await tenant.patch(f"/v1/rewards/{coffee['id']}", json={"active": True})
    assert again.json()["active"] is True


async def test_codes_are_unique_within_a_tenant_only(tenant: TenantHandle, make_tenant) -> None:
    await make_reward(tenant, code="SAME")
    duplicate = await tenant.post("/v1/rewards", json={"code": "SAME", "name": "x", "points_cost": 1})
    assert duplicate.status_code == 409
    assert duplicate.json()["type"].endswith("/already-exists") and duplicate.json()["field"] == "code"
    other = await make_reward(tenant, code="OTHER")
    renamed = await tenant.patch(f"/v1/rewards/{other['id']}", json={"code": "SAME"})
    assert renamed.status_code == 409 and renamed.json()["field"] == "code"
    elsewhere = await make_tenant()
    await make_reward(elsewhere, code="SAME")


BAD_ENTRIES = [
    ({"name": "x", "points_cost": 1}, "code"),
    ({"code": "", "name": "x", "points_cost": 1}, "code"),
    ({"code": "has space", "name": "x", "points_cost": 1}, "code"),
    ({"code": "C", "points_cost": 1}, "name"),
    ({"code": "C", "name": "x", "points_cost": 0}, "points_cost"),
    ({"code": "C", "name": "x", "points_cost": -5}, "points_cost"),
    ({"code": "C", "name": "x", "points_cost": "a hundred"}, "points_cost"),
    ({"code": "C", "name": "x", "points_cost": 1, "stock": -1}, "stock"),
    ({"code": "C", "name": "x", "points_cost": 1, "per_member_limit": 0}, "per_member_limit"),
    ({"code": "C", "name": "x", "points_cost": 1, "min_tier_rank": -1}, "min_tier_rank"),
    ({"code": "C", "name": "x", "points_cost": 1, "tier_codes": ["gold", "gold"]}, "tier_codes"),
    ({"code": "C", "name": "x", "points_cost": 1, "kind": "Free Night"}, "kind"),
    ({"code": "C", "name": "x", "points_cost": 1, "voucher_valid_days": 0}, "voucher_valid_days"),
    ({"code": "C", "name": "x", "points_cost": 1, "valid_from": "2030-01-01T00:00:00"}, "valid_from"),
    (
        {
            "code": "C",
            "name": "x",
            "points_cost": 1,
            "valid_from": "2030-01-02T00:00:00Z",
            "valid_until": "2030-01-01T00:00:00Z",
        },
        "valid_until",
    ),
    ({"code": "C", "name": "x", "points_cost": 1, "colour": "red"}, "colour"),
]


async def test_bad_catalogue_entries_are_422_naming_the_field(tenant: TenantHandle) -> None:
    for body, field in BAD_ENTRIES:
        response = await tenant.post("/v1/rewards", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    assert (await tenant.get("/v1/rewards")).json()["items"] == []


BAD_UPDATES = [
    ({"stock": 5, "add_stock": 1}, "add_stock"),
    ({"valid_until": "2001-01-01T00:00:00Z"}, "valid_until"),  # before the reward's valid_from
    ({"points_cost": 0}, "points_cost"),
    ({"id": str(uuid.uuid4())}, "id"),
]


async def test_bad_updates_are_422_and_change_nothing(tenant: TenantHandle) -> None:
    reward = await make_reward(tenant, stock=3, valid_from="2020-01-01T00:00:00Z")
    for body, field in BAD_UPDATES:
        response = await tenant.patch(f"/v1/rewards/{reward['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.text)
    assert (await tenant.get(f"/v1/rewards/{reward['id']}")).json() == reward


async def test_unknown_reward_is_404(tenant: TenantHandle) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = await tenant.client.request(
            method, f"/v1/rewards/{uuid.uuid4()}", json={} if method == "PATCH" else None, headers=tenant.headers
        )
        assert response.status_code == 404, method
        assert response.json()["field"] == "reward_id"


async def test_scopes(tenant: TenantHandle) -> None:
    reward = await make_reward(tenant)
    keys = {}
    for scope in ("members:read", "rewards:write"):
        issued = await tenant.post("/v1/api-keys", json={"name": scope, "scopes": [scope]})
        keys[scope] = {"Authorization": f"Bearer {issued.json()['secret']}"}
    for headers in keys.values():
        # Anyone of the tenant reads the catalogue; only an admin changes it.
        assert (await tenant.client.get("/v1/rewards", headers=headers)).status_code == 200
        assert (await tenant.client.get(f"/v1/rewards/{reward['id']}", headers=headers)).status_code == 200
        create = await tenant.client.post(
            "/v1/rewards", json={"code": "X", "name": "x", "points_cost": 1}, headers=headers
        )
        assert create.status_code == 403
        assert (await tenant.client.delete(f"/v1/rewards/{reward['id']}", headers=headers)).status_code == 403
    member = await tenant.enrol()
    await tenant.credit(member["id"], 500)
    body = {"member_id": member["id"], "reward_id": reward["id"]}
    assert (await tenant.client.post("/v1/redemptions", json=body, headers=keys["members:read"])).status_code == 403
    made = await tenant.client.post("/v1/redemptions", json=body, headers=keys["rewards:write"])
    assert made.status_code == 201
    listed = await tenant.client.get("/v1/redemptions", headers=keys["members:read"])
    assert [r["id"] for r in listed.json()["items"]] == [made.json()["id"]]
    use = f"/v1/redemptions/{made.json()['id']}/use"
    assert (await tenant.client.post(use, headers=keys["members:read"])).status_code == 403
    assert (await tenant.client.post(use, headers=keys["rewards:write"])).status_code == 200
