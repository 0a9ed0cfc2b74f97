"""Idempotency-Key on every state-changing request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from core.db.engine import tenant_session
from core.idempotency.models import IdempotencyRecord
from core.idempotency.service import purge_expired
from core.runtime import Runtime
from core.settings import Settings
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


def test_keys_are_kept_at_least_a_day_whatever_the_setting() -> None:
    assert Settings(idempotency_ttl_hours=1).idempotency_ttl == timedelta(hours=24)
    assert Settings(idempotency_ttl_hours=72).idempotency_ttl == timedelta(hours=72)


async def _stored_keys(runtime: Runtime, tenant: TenantHandle) -> set[str]:
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        return set((await session.execute(select(IdempotencyRecord.key))).scalars())


async def _purge(runtime: Runtime, tenant: TenantHandle) -> int:
    """What the worker's idempotency.purge job does for the tenant."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        return await purge_expired(session, tenant_id=tenant.id, now=datetime.now(UTC))


async def test_keys_live_their_whole_lifetime_then_can_be_used_again(tenant: TenantHandle, runtime: Runtime) -> None:
    ttl = runtime.settings.idempotency_ttl
    assert ttl >= timedelta(hours=24)
    member = await tenant.enrol()
    url = f"/v1/members/{member['id']}/points/adjust"
    taken_over, purged = f"key-{uuid.uuid4()}", f"key-{uuid.uuid4()}"
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False) as traveller:
        first = await tenant.post(url, json={"points": 10, "reason": "a"}, headers={"Idempotency-Key": taken_over})
        assert first.status_code == 201
        assert (
            await tenant.post(url, json={"points": 1, "reason": "b"}, headers={"Idempotency-Key": purged})
        ).is_success

        traveller.move_to(start + ttl - timedelta(minutes=1))  # still remembered, and the cleanup leaves it alone
        replay = await tenant.post(url, json={"points": 10, "reason": "a"}, headers={"Idempotency-Key": taken_over})
        assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content
        other = await tenant.post(url, json={"points": 99, "reason": "a"}, headers={"Idempotency-Key": taken_over})
        assert other.status_code == 409
        assert await _purge(runtime, tenant) == 0
        assert {taken_over, purged} <= await _stored_keys(runtime, tenant)
        assert (await tenant.balance(member["id"]))["available"] == 11

        traveller.move_to(start + ttl + timedelta(seconds=1))
        # An expired key is a new key: a new request under it is applied (it takes the stored row over) ...
        again = await tenant.post(url, json={"points": 5, "reason": "c"}, headers={"Idempotency-Key": taken_over})
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers
        # ... and the cleanup job removes the expired ones (the one just reused lives on).
        assert await _purge(runtime, tenant) == 1
        stored = await _stored_keys(runtime, tenant)
        assert taken_over in stored and purged not in stored
        reused = await tenant.post(url, json={"points": 2, "reason": "d"}, headers={"Idempotency-Key": purged})
        assert reused.status_code == 201 and "idempotent-replayed" not in reused.headers
        assert (await tenant.balance(member["id"]))["available"] == 18
