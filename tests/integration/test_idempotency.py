"""Idempotency-Key on every state-changing request."""

from __future__ import annotations

import uuid

import pytest

from core.testing import MakeTenant, TenantHandle


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"key-{uuid.uuid4()}"}


async def test_a_replay_returns_the_first_result_and_applies_once(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    headers = _key()
    url = f"/v1/members/{member['id']}/points/adjust"
    first = await tenant.post(url, json={"points": 40, "reason": "once"}, headers=headers)
    # Same request, keys in another order and other spacing: still the same request.
    second = await tenant.client.post(
        url,
        content=b'{ "reason" : "once", "points": 40 }',
        headers=tenant.headers | headers | {"content-type": "application/json"},
    )
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert (await tenant.balance(member["id"]))["available"] == 40


async def test_same_key_with_another_body_is_409(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    headers = _key()
    url = f"/v1/members/{member['id']}/points/adjust"
    assert (await tenant.post(url, json={"points": 40, "reason": "a"}, headers=headers)).status_code == 201
    other = await tenant.post(url, json={"points": 41, "reason": "a"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert other.json()["field"] == "Idempotency-Key"
    elsewhere = await tenant.post("/v1/members", json={"external_id": "x-1"}, headers=headers)
    assert elsewhere.status_code == 409  # another path is another request
    assert (await tenant.balance(member["id"]))["available"] == 40


async def test_a_failed_request_is_not_remembered(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    headers = _key()
    url = f"/v1/members/{member['id']}/points/adjust"
    refused = await tenant.post(url, json={"points": -10, "reason": "too soon"}, headers=headers)
    assert refused.status_code == 409
    await tenant.credit(member["id"], 10)
    retried = await tenant.post(url, json={"points": -10, "reason": "too soon"}, headers=headers)
    assert retried.status_code == 201  # the retry ran for real: nothing had been applied
    assert (await tenant.balance(member["id"]))["available"] == 0


async def test_keys_are_per_tenant(tenant: TenantHandle, make_tenant: MakeTenant) -> None:
    other = await make_tenant()
    headers = _key()
    a = await tenant.post("/v1/members", json={"external_id": "same"}, headers=headers)
    b = await other.post("/v1/members", json={"external_id": "same"}, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve-ключ"])
async def test_bad_keys_are_refused(tenant: TenantHandle, key: str) -> None:
    response = await tenant.post("/v1/members", json={"external_id": "k"}, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422
    assert response.json()["field"] == "Idempotency-Key"
    assert (await tenant.get("/v1/members", params={"external_id": "k"})).json()["items"] == []


async def test_enrolment_replay_does_not_enrol_twice(tenant: TenantHandle) -> None:
    headers = _key()
    first = await tenant.post("/v1/members", json={"external_id": "once"}, headers=headers)
    second = await tenant.post("/v1/members", json={"external_id": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
