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
    nasty = "Robert'); DROP TABLE members;-- \u202e\U0001f47e <script>%00\\u0000 \\x00 ' OR 1=1 --"
    # The NUL character itself is refused (PostgreSQL cannot store it in text; SQLite answers the same) ...
    refused = await tenant.post("/v1/members", json={"external_id": "evil", "name": nasty + "\u0000"})
    assert assert_problem(refused, 422, "validation-error")["field"] == "name"
    assert (await tenant.get("/v1/members", params={"external_id": "evil"})).json()["items"] == []
    # ... everything else is data, stored and given back exactly.
    body = {"external_id": "evil", "name": nasty, "attributes": {nasty: [nasty, {"k": nasty}]}}
    response = await tenant.post("/v1/members", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == nasty
    listed = (await tenant.get("/v1/members", params={"external_id": "evil"})).json()["items"]
    assert [(m["name"], m["attributes"]) for m in listed] == [(nasty, body["attributes"])]


NUL = "\u0000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": f"a{NUL}b"}, "external_id"),
        ({"external_id": "nul-1", "name": f"Ada{NUL}"}, "name"),
        ({"external_id": "nul-2", "attributes": {f"k{NUL}y": "v"}}, "attributes"),
        ({"external_id": "nul-3", "attributes": {"k": ["fine", {"deep": f"v{NUL}"}]}}, "attributes.k[1].deep"),
    ],
)
async def test_nul_characters_in_bodies_are_refused_naming_the_field(
    tenant: TenantHandle, body: dict, field: str
) -> None:
    problem = assert_problem(await tenant.post("/v1/members", json=body), 422, "validation-error")
    assert problem["field"] == field and "NUL" in problem["detail"]
    assert (await tenant.get("/v1/members")).json()["items"] == []


async def test_nul_characters_in_reasons_queries_and_paths_are_refused(
    tenant: TenantHandle, client: AppClient, platform_headers: dict
) -> None:
    member = await tenant.enrol()
    adjust = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": 5, "reason": f"a{NUL}"})
    assert assert_problem(adjust, 422, "validation-error")["field"] == "reason"
    assert (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"] == []
    query = await tenant.get("/v1/members", params={"external_id": f"a{NUL}b"})
    assert assert_problem(query, 422, "validation-error")["field"] == "external_id"
    path = await client.patch("/v1/platform/plans/a%00b", json={"name": "x"}, headers=platform_headers)
    assert assert_problem(path, 422, "validation-error")["field"] == "code"


def _nested(depth: int) -> bytes:
    """A member whose attributes make the whole body ``depth`` levels deep (the body and attributes are two)."""
    arrays = depth - 2
    return b'{"external_id":"deep","attributes":{"a":' + b"[" * arrays + b"]" * arrays + b"}}"


async def test_json_nested_up_to_the_limit_is_accepted(tenant: TenantHandle) -> None:
    from core.http.inputs import MAX_JSON_DEPTH

    response = await tenant.client.post(
        "/v1/members", content=_nested(MAX_JSON_DEPTH), headers=tenant.headers | {"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
async def test_deeply_nested_json_is_refused(tenant: TenantHandle, depth: int) -> None:
    headers = tenant.headers | {"content-type": "application/json"}
    member = await tenant.client.post("/v1/members", content=_nested(depth), headers=headers)
    assert_problem(member, 400, "json-too-deep")
    assert (await tenant.get("/v1/members")).json()["items"] == []
    await tenant.enrol("deep")
    levels = b"[" * depth + b"]" * depth
    event = (
        b'{"type":"purchase","event_id":"deep","member":{"external_id":"deep"},'
        b'"occurred_at":"2026-01-01T00:00:00Z","attributes":{"a":' + levels + b"}}"
    )
    assert_problem(await tenant.client.post("/v1/events", content=event, headers=headers), 400, "json-too-deep")
    assert (await tenant.get("/v1/events")).json()["items"] == []


@pytest.mark.parametrize("points", ["5", "ten", 5.5, 1e300, True, None])
async def test_integers_must_be_json_integers(tenant: TenantHandle, points: object) -> None:
    member = await tenant.enrol()
    response = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": points, "reason": "x"})
    assert assert_problem(response, 422, "validation-error")["field"] == "points"
    assert (await tenant.balance(member["id"]))["available"] == 0


async def test_an_integral_json_number_is_the_integer_it_is(tenant: TenantHandle) -> None:
    """JSON has one number type: ``5.0`` is the integer 5 (as JSON Schema's ``integer`` says), so the OpenAPI schema
    and the decoder agree; a fraction is still refused."""
    member = await tenant.enrol()
    response = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": 5.0, "reason": "x"})
    assert response.status_code == 201, response.text
    assert response.json()["entry"]["points"] == 5
    assert (await tenant.balance(member["id"]))["available"] == 5


async def test_decimals_may_be_json_strings_or_numbers(tenant: TenantHandle) -> None:
    for points in ("2.5", 2.5, 3):
        rule = {"name": f"rate {points!r}", "kind": "per_amount", "points": points, "per": "10"}
        response = await tenant.post("/v1/earning-rules", json=rule)
        assert response.status_code == 201, response.text
    stored = [r["definition"]["points"] for r in (await tenant.get("/v1/earning-rules")).json()["items"]]
    assert sorted(stored) == ["2.5", "2.5", "3"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_body_that_is_not_json_is_415(tenant: TenantHandle, content_type: str) -> None:
    member = await tenant.enrol()
    response = await tenant.client.post(
        f"/v1/members/{member['id']}/points/adjust",
        content=b'{"points": 1, "reason": "x"}',
        headers=tenant.headers | {"content-type": content_type},
    )
    assert content_type in assert_problem(response, 415, "unsupported-media-type")["detail"]
    assert (await tenant.balance(member["id"]))["available"] == 0


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/merge-patch+json"])
async def test_json_media_types_and_none_are_read_as_json(tenant: TenantHandle, content_type: str | None) -> None:
    member = await tenant.enrol()
    response = await tenant.client.post(
        f"/v1/members/{member['id']}/points/adjust",
        content=b'{"points": 1, "reason": "x"}',
        headers=tenant.headers | ({"content-type": content_type} if content_type else {}),
    )
    assert response.status_code == 201, response.text


async def test_a_missing_body_is_a_clear_problem(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    response = await tenant.client.post(f"/v1/members/{member['id']}/points/adjust", headers=tenant.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["detail"] == "A JSON body is required." and "field" not in problem
    assert (await tenant.balance(member["id"]))["available"] == 0
    # A route whose body is optional still works without one.
    endpoint = await tenant.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]})
    assert endpoint.status_code == 201, endpoint.text
    rotated = await tenant.client.post(
        f"/v1/webhook-endpoints/{endpoint.json()['id']}/rotate-secret", headers=tenant.headers
    )
    assert rotated.status_code in (200, 201), rotated.text


@pytest.mark.parametrize("days", ["-1", "3661", "99999999999999", "ten"])
async def test_query_parameter_bounds_are_enforced(tenant: TenantHandle, days: str) -> None:
    member = await tenant.enrol()
    response = await tenant.get(f"/v1/members/{member['id']}/balance", params={"expiring_within_days": days})
    assert assert_problem(response, 422, "validation-error")["field"] == "expiring_within_days"
    ok = await tenant.get(f"/v1/members/{member['id']}/balance", params={"expiring_within_days": "3660"})
    assert ok.status_code == 200


async def test_a_naive_rule_window_is_refused_and_events_keep_working(tenant: TenantHandle) -> None:
    """A rule stored with a naive valid_from once turned every later event of the tenant into a 500."""
    for field in ("valid_from", "valid_until"):
        rule = {"name": "naive", "kind": "fixed", "points": "5", field: "2026-01-01T00:00:00"}
        assert (
            assert_problem(await tenant.post("/v1/earning-rules", json=rule), 422, "validation-error")["field"] == field
        )
    assert (await tenant.get("/v1/earning-rules")).json()["items"] == []
    member = await tenant.enrol()
    event = {
        "type": "purchase",
        "event_id": "after-naive",
        "member": {"member_id": member["id"]},
        "occurred_at": "2026-01-01T00:00:00+08:00",
        "amount": "10",
    }
    assert (await tenant.post("/v1/events", json=event)).status_code == 201


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
