"""Tenant API keys: scopes, hashing, revocation, last use."""

from __future__ import annotations

import uuid

import pytest

from core.tenancy.keys import hash_key
from core.testing import AppClient as AsyncTestClient
from core.testing import TenantHandle


async def _key(tenant: TenantHandle, *scopes: str) -> dict:
    response = await tenant.post("/v1/api-keys", json={"name": f"key {scopes}", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return response.json()


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_keys_are_listed_without_secrets_and_stored_hashed(tenant: TenantHandle, runtime) -> None:
    issued = await _key(tenant, "members:read")
    listing = await tenant.get("/v1/api-keys")
    assert listing.status_code == 200
    row = next(k for k in listing.json()["items"] if k["id"] == issued["id"])
    assert "secret" not in row and row["scopes"] == ["members:read"]
    assert issued["secret"].endswith(row["hint"].split("…")[1])
    from sqlalchemy import select

    from core.db.engine import tenant_session
    from core.tenancy.models import ApiKey

    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        stored = (await session.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(issued["id"])))).scalar_one()
    assert stored.key_hash == hash_key(issued["secret"])
    assert issued["secret"] not in (stored.key_hash, stored.key_hint)


@pytest.mark.parametrize(
    ("scopes", "method", "path", "allowed"),
    [
        (["members:read"], "GET", "/v1/members", True),
        (["members:read"], "POST", "/v1/members", False),
        (["members:write"], "GET", "/v1/members", True),  # write implies read
        (["members:write"], "POST", "/v1/members", True),
        (["events:write"], "GET", "/v1/members", False),
        (["members:write"], "GET", "/v1/program", False),
        (["members:write"], "GET", "/v1/api-keys", False),
        (["reports:read"], "POST", "/v1/api-keys", False),
        (["admin"], "GET", "/v1/api-keys", True),
    ],
)
async def test_scopes(
    client: AsyncTestClient, tenant: TenantHandle, scopes: list[str], method: str, path: str, allowed: bool
) -> None:
    key = await _key(tenant, *scopes)
    body = {"external_id": f"s-{uuid.uuid4().hex[:8]}"} if path == "/v1/members" else {"name": "k", "scopes": ["admin"]}
    response = await client.request(method, path, headers=_auth(key["secret"]), json=body if method == "POST" else None)
    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403
        assert response.json()["type"].endswith("/forbidden")


async def test_revoked_key_is_refused_at_once(client: AsyncTestClient, tenant: TenantHandle) -> None:
    key = await _key(tenant, "members:read")
    assert (await client.get("/v1/members", headers=_auth(key["secret"]))).status_code == 200
    revoked = await tenant.delete(f"/v1/api-keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    response = await client.get("/v1/members", headers=_auth(key["secret"]))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert (await tenant.delete(f"/v1/api-keys/{key['id']}")).status_code == 200  # revoking twice is harmless


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer fty_not-a-key",
        "Bearer fty_" + "1" * 32 + "_" + "2" * 32 + "_forged",
    ],
)
async def test_missing_or_forged_keys_are_401(client: AsyncTestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/v1/members", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_with_another_tenants_id_spliced_in_fails(
    client: AsyncTestClient, tenant: TenantHandle, make_tenant
) -> None:
    other = await make_tenant()
    _, _, key_id, secret = tenant.key.split("_", 3)
    spliced = f"fty_{other.id.hex}_{key_id}_{secret}"
    assert (await client.get("/v1/members", headers=_auth(spliced))).status_code == 401


async def test_unknown_scope_is_rejected(tenant: TenantHandle) -> None:
    response = await tenant.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]})
    assert response.status_code == 422 and response.json()["field"].startswith("scopes")
    response = await tenant.post("/v1/api-keys", json={"name": "x", "scopes": []})
    assert response.status_code == 422


async def test_last_used_is_recorded(tenant: TenantHandle) -> None:
    key = await _key(tenant, "members:read")
    await tenant.client.get("/v1/members", headers=_auth(key["secret"]))
    listing = (await tenant.get("/v1/api-keys")).json()["items"]
    row = next(k for k in listing if k["id"] == key["id"])
    assert row["last_used_at"] is not None
