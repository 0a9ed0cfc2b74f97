"""Bad and hostile input: always a 4xx problem document, never a 500, nothing written."""

from __future__ import annotations

import json

import pytest

from core.testing import AppClient, TenantHandle

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"https://fealty.dev/problems/{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"external_id": "a",}', b"\xff\xfe", b'["a list"]', b"null", b"", b'{"external_id": 1e999}'],
)
async def test_malformed_bodies(tenant: TenantHandle, raw: bytes) -> None:
    response = await tenant.client.post(
        "/v1/members", content=raw, headers=tenant.headers | {"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert (await tenant.get("/v1/members")).json()["items"] == []


async def test_body_over_one_mebibyte_is_413(tenant: TenantHandle) -> None:
    big = json.dumps({"external_id": "big", "attributes": {"blob": "x" * (1024 * 1024)}}).encode()
    response = await tenant.client.post(
        "/v1/members", content=big, headers=tenant.headers | {"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")
    assert (await tenant.get("/v1/members", params={"external_id": "big"})).json()["items"] == []


async def test_unknown_route_and_method(client: AppClient, tenant: TenantHandle) -> None:
    assert_problem(await tenant.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(await tenant.client.put("/v1/members", headers=tenant.headers, json={}), 405, "method-not-allowed")


async def test_wrong_types_name_the_field(tenant: TenantHandle) -> None:
    body = assert_problem(
        await tenant.post("/v1/members", json={"external_id": "a", "birthday": 5}), 422, "validation-error"
    )
    assert body["field"] == "birthday"
    body = assert_problem(
        await tenant.post("/v1/members", json={"external_id": "a", "consents": [{"channel": "sms"}]}),
        422,
        "validation-error",
    )
    assert body["field"].startswith("consents[0]")


async def test_hostile_strings_are_stored_as_data(tenant: TenantHandle) -> None:
    nasty = "Robert'); DROP TABLE members;-- \u0000"
    response = await tenant.post("/v1/members", json={"external_id": "evil", "name": nasty.replace("\u0000", "")})
    assert response.status_code == 201
    assert response.json()["name"].startswith("Robert'); DROP TABLE")
    assert (await tenant.get("/v1/members", params={"external_id": "evil"})).status_code == 200


async def test_health_and_schema(client: AppClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/members" in schema["paths"]
    ops = [op.get("operationId") for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert all(ops) and len(ops) == len(set(ops))
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "fealty" in metrics.text


async def test_request_metrics_are_labelled_by_the_whole_route(tenant: TenantHandle) -> None:
    """Each route is its own series (``/v1/tiers`` and ``/v1/segments`` are not lumped together as ``/``)."""
    assert (await tenant.get("/v1/tiers")).status_code == 200
    assert (await tenant.get("/v1/segments")).status_code == 200
    text = (await tenant.client.get("/metrics")).text
    for route in ("/v1/tiers", "/v1/segments"):
        assert f'fealty_requests_total{{method="GET",route="{route}",status="200"}}' in text
    assert 'route="/{member_id:uuid}' not in text and 'route="/",' not in text
