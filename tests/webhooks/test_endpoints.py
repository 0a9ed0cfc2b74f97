"""The endpoint API: create (secret once), validation, list, update, disable, limits, scopes, config version."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from core.db.engine import tenant_session
from core.program.models import Program
from core.runtime import Runtime
from core.testing import TenantHandle
from core.webhooks.event_types import EVENT_TYPES
from core.webhooks.service import MAX_ACTIVE_ENDPOINTS

URL = "https://hooks.example.com/fealty"


async def _config_version(runtime: Runtime, tenant: TenantHandle) -> int:
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        version: int = (await session.execute(select(Program.config_version))).scalar_one()
    return version


async def _create(tenant: TenantHandle, **fields: object) -> dict:
    body = {"url": URL, "event_types": ["points.earned"]} | fields
    response = await tenant.post("/v1/webhook-endpoints", json=body)
    assert response.status_code == 201, response.text
    created: dict = response.json()
    return created


async def test_the_secret_is_shown_once_then_only_its_hint(tenant: TenantHandle) -> None:
    headers = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}
    body = {"url": URL, "event_types": ["points.earned", "tier.changed"], "description": "CRM sync"}
    created = await tenant.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert endpoint["secret_hint"] == f"whsec_…{secret[-4:]}"
    assert endpoint["status"] == "active" and endpoint["event_types"] == ["points.earned", "tier.changed"]
    assert endpoint["description"] == "CRM sync" and endpoint["url"] == URL

    fetched = await tenant.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    listed = (await tenant.get("/v1/webhook-endpoints")).json()["items"]
    assert "secret" not in fetched.json() and fetched.json()["secret_hint"] == endpoint["secret_hint"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    assert secret not in fetched.text and secret not in str(listed)
    # An idempotent replay answers the same, except the secret, which was never stored for replay.
    replay = await tenant.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == endpoint["id"] and secret not in replay.text
    assert len((await tenant.get("/v1/webhook-endpoints")).json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"url": "http://hooks.example.com/x"}, "url", "https://"),
        ({"url": "https://192.168.0.10/x"}, "url", "private"),
        ({"url": "https://169.254.169.254/latest"}, "url", "private"),
        ({"url": "https://[fd00::1]/x"}, "url", "private"),
        ({"url": "https://me:pw@hooks.example.com/x"}, "url", "user name"),
        ({"url": "not a url"}, "url", ""),
        ({"url": ""}, "url", ""),
        ({"event_types": ["points.earned", "points.stolen"]}, "event_types[1]", "points.stolen"),
        ({"event_types": []}, "event_types", "at least one"),
        ({"event_types": "points.earned"}, "event_types", ""),
        ({"description": "x" * 501}, "description", ""),
        ({"secret": "whsec_mine"}, "secret", "unknown field"),
    ],
)
async def test_bad_endpoints_are_refused_and_nothing_is_created(
    tenant: TenantHandle, body: dict, field: str, detail: str
) -> None:
    response = await tenant.post("/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]} | body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "https://fealty.dev/problems/validation-error"
    assert problem["field"] == field and detail in problem["detail"]
    assert (await tenant.get("/v1/webhook-endpoints")).json()["items"] == []


async def test_update_validates_and_changes_only_what_is_given(tenant: TenantHandle) -> None:
    endpoint = await _create(tenant, description="first")
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    bad = await tenant.patch(url, json={"url": "http://hooks.example.com/x"})
    assert bad.status_code == 422 and bad.json()["field"] == "url"
    bad = await tenant.patch(url, json={"event_types": ["nope"]})
    assert bad.status_code == 422 and bad.json()["field"] == "event_types[0]"
    assert (await tenant.patch(url, json={"id": "x"})).status_code == 422
    # The refused changes left nothing behind.
    unchanged = (await tenant.get(url)).json()
    assert (unchanged["url"], unchanged["event_types"]) == (endpoint["url"], endpoint["event_types"])
    changed = await tenant.patch(url, json={"event_types": ["*"], "url": "https://new.example.com/h"})
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["event_types"] == ["*"] and after["url"] == "https://new.example.com/h"
    assert after["description"] == "first" and after["secret_hint"] == endpoint["secret_hint"]
    cleared = await tenant.patch(url, json={"description": None})
    assert cleared.json()["description"] is None
    off = await tenant.patch(url, json={"status": "disabled"})
    assert off.json()["status"] == "disabled" and off.json()["disabled_at"] is not None
    on = await tenant.patch(url, json={"status": "active"})
    assert on.json()["status"] == "active" and on.json()["disabled_at"] is None
    assert (await tenant.patch(f"/v1/webhook-endpoints/{uuid.uuid4()}", json={})).status_code == 404


async def test_delete_disables_and_keeps_the_endpoint(tenant: TenantHandle) -> None:
    keep, drop = await _create(tenant), await _create(tenant)
    gone = await tenant.delete(f"/v1/webhook-endpoints/{drop['id']}")
    assert gone.status_code == 200 and gone.json()["status"] == "disabled"
    assert (await tenant.get(f"/v1/webhook-endpoints/{drop['id']}")).json()["status"] == "disabled"
    active = (await tenant.get("/v1/webhook-endpoints", params={"status": "active"})).json()["items"]
    disabled = (await tenant.get("/v1/webhook-endpoints", params={"status": "disabled"})).json()["items"]
    assert [e["id"] for e in active] == [keep["id"]] and [e["id"] for e in disabled] == [drop["id"]]
    assert (await tenant.delete(f"/v1/webhook-endpoints/{uuid.uuid4()}")).status_code == 404


async def test_listing_paginates(tenant: TenantHandle) -> None:
    made = [(await _create(tenant))["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = (
            await tenant.get("/v1/webhook-endpoints", params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        ).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made
    assert (await tenant.get("/v1/webhook-endpoints", params={"cursor": "garbage"})).status_code == 422
    assert (await tenant.get("/v1/webhook-deliveries", params={"limit": 0})).status_code == 422


async def test_active_endpoints_are_limited(tenant: TenantHandle) -> None:
    made = [await _create(tenant) for _ in range(MAX_ACTIVE_ENDPOINTS)]
    refused = await tenant.post("/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]})
    assert refused.status_code == 409, refused.text
    await tenant.delete(f"/v1/webhook-endpoints/{made[0]['id']}")
    await _create(tenant)  # room again
    enabling = await tenant.patch(f"/v1/webhook-endpoints/{made[0]['id']}", json={"status": "active"})
    assert enabling.status_code == 409


async def test_every_endpoint_change_bumps_the_config_version(tenant: TenantHandle, runtime: Runtime) -> None:
    versions = [await _config_version(runtime, tenant)]
    endpoint = await _create(tenant)
    versions.append(await _config_version(runtime, tenant))
    await tenant.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"event_types": ["*"]})
    versions.append(await _config_version(runtime, tenant))
    await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    versions.append(await _config_version(runtime, tenant))
    await tenant.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    versions.append(await _config_version(runtime, tenant))
    assert versions == sorted(set(versions)), versions  # strictly increasing
    await tenant.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert await _config_version(runtime, tenant) == versions[-1]  # reads change nothing


async def test_event_types_are_listed(tenant: TenantHandle) -> None:
    listed = (await tenant.get("/v1/webhook-event-types")).json()
    assert [t["type"] for t in listed] == list(EVENT_TYPES)
    assert all(t["description"] for t in listed)
    assert {"points.earned", "tier.changed", "webhook.test", "billing.status_changed"} <= {t["type"] for t in listed}


async def test_webhook_routes_need_the_admin_scope(tenant: TenantHandle) -> None:
    issued = await tenant.post("/v1/api-keys", json={"name": "reader", "scopes": ["members:read", "events:write"]})
    narrow = {"Authorization": f"Bearer {issued.json()['secret']}"}
    for method, path in [
        ("GET", "/v1/webhook-endpoints"),
        ("POST", "/v1/webhook-endpoints"),
        ("GET", "/v1/webhook-deliveries"),
        ("GET", "/v1/webhook-event-types"),
    ]:
        response = await tenant.client.request(
            method, path, headers=narrow, json={"url": URL, "event_types": ["*"]} if method == "POST" else None
        )
        assert response.status_code == 403, (method, path, response.text)
    assert (await tenant.get("/v1/webhook-endpoints")).json()["items"] == []


async def test_a_rotated_secret_is_not_replayed_by_idempotency(tenant: TenantHandle) -> None:
    endpoint = await _create(tenant)
    url, headers = f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {"Idempotency-Key": f"rot-{uuid.uuid4()}"}
    first = await tenant.post(url, json={}, headers=headers)
    again = await tenant.post(url, json={}, headers=headers)
    assert first.status_code == again.status_code == 200
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and secret != endpoint["secret"]
    assert again.headers["idempotent-replayed"] == "true" and secret not in again.text
    assert again.json()["secret_hint"] == first.json()["secret_hint"] == f"whsec_…{secret[-4:]}"
