"""Tenants never see, replay or receive each other's webhooks; the log cannot be rewritten by the application role."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle, settings_for_tests
from tests.webhooks.helpers import Receiver, add_endpoint, deliveries, drain, emit_events


async def test_a_tenant_cannot_see_or_replay_another_tenants_deliveries(
    make_tenant: MakeTenant, worker: Runtime, receiver: Receiver
) -> None:
    a, b = await make_tenant(), await make_tenant()
    hook_a, hook_b = receiver.hook("a"), receiver.hook("b")
    endpoint_a = await add_endpoint(a, receiver, hook_a, ["*"])
    endpoint_b = await add_endpoint(b, receiver, hook_b, ["*"])
    hook_b.fail_first = 1
    await emit_events(worker, a, ("points.earned", {"who": "a"}))
    await emit_events(worker, b, ("points.earned", {"who": "b"}), ("tier.changed", {"who": "b"}))
    await drain(worker, a)
    await drain(worker, b)

    # Each tenant's events went to its own endpoint only, signed with its own secret.
    assert [r.json["data"]["who"] for r in hook_a.requests] == ["a"]
    assert {r.json["data"]["who"] for r in hook_b.requests} == {"b"}
    assert {r.json["tenant_id"] for r in hook_a.requests} == {str(a.id)}
    assert all(r.signature_error is None for r in receiver.requests)

    log_a, log_b = await deliveries(a), await deliveries(b)
    assert len(log_a) == 1 and len(log_b) == 2
    assert {d["endpoint_id"] for d in log_a} == {endpoint_a["id"]}
    assert await deliveries(a, endpoint_id=endpoint_b["id"]) == []
    assert await deliveries(a, event_id=log_b[0]["event_id"]) == []
    listed = (await a.get("/v1/webhook-endpoints")).json()["items"]
    assert [e["id"] for e in listed] == [endpoint_a["id"]]

    failed_b = next(d for d in log_b if d["status"] == "pending")
    dead_or_done_b = next(d for d in log_b if d["status"] == "succeeded")
    for method, path in [
        ("GET", f"/v1/webhook-deliveries/{dead_or_done_b['id']}"),
        ("POST", f"/v1/webhook-deliveries/{dead_or_done_b['id']}/replay"),
        ("GET", f"/v1/webhook-endpoints/{endpoint_b['id']}"),
        ("POST", f"/v1/webhook-endpoints/{endpoint_b['id']}/test"),
        ("POST", f"/v1/webhook-endpoints/{endpoint_b['id']}/rotate-secret"),
        ("DELETE", f"/v1/webhook-endpoints/{endpoint_b['id']}"),
    ]:
        response = await a.client.request(method, path, headers=a.headers)
        assert response.status_code == 404, (method, path, response.text)
    assert len(await deliveries(b)) == 2  # nothing replayed or added for B
    assert (await b.get(f"/v1/webhook-endpoints/{endpoint_b['id']}")).json()["status"] == "active"
    assert (await b.get(f"/v1/webhook-deliveries/{failed_b['id']}")).status_code == 200


@pytest.fixture
async def app_role_sessionmaker(postgres_url: str):
    engine = create_engine(settings_for_tests(postgres_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.mark.postgres_only
async def test_the_app_role_cannot_rewrite_the_delivery_log(app_role_sessionmaker, pg_tenant: TenantHandle) -> None:
    created = await pg_tenant.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x", "event_types": ["*"]}
    )
    await pg_tenant.post(f"/v1/webhook-endpoints/{created.json()['id']}/test")
    for statement in (
        "UPDATE webhook_deliveries SET body = '{}'",
        "UPDATE webhook_deliveries SET endpoint_id = gen_random_uuid()",
        "DELETE FROM webhook_endpoints",
        "UPDATE webhook_delivery_attempts SET status_code = 200",
        "DELETE FROM webhook_delivery_attempts",
    ):
        with pytest.raises(ProgrammingError, match="permission denied"):
            async with tenant_session(app_role_sessionmaker, pg_tenant.id) as session:
                await (await session.connection()).execute(text(statement))
    # Retention may delete finished deliveries older than a day, nothing else: a DELETE reaches no other row.
    async with tenant_session(app_role_sessionmaker, pg_tenant.id) as session:
        deleted = await (await session.connection()).execute(text("DELETE FROM webhook_deliveries"))
        assert deleted.rowcount == 0
    # Its own context sees the rows; another tenant's sees none of them (row-level security below the ORM).
    for context, expected in ((pg_tenant.id, 1), (uuid.uuid4(), 0)):
        async with tenant_session(app_role_sessionmaker, context) as session:
            conn = await session.connection()
            for table in ("webhook_endpoints", "webhook_deliveries"):
                count = (
                    await conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": pg_tenant.id})
                ).scalar()
                assert count == expected, (table, context)
