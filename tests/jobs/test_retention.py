"""Retention: finished jobs, dispatched outbox events, finished webhook deliveries and Stripe events older than the
retention are deleted by the worker; dead ones are kept longer; what is still waiting is never deleted; a tenant
sets its own retention within the platform's bounds (hostile values are a 422 naming the field)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from core.billing.models import StripeEvent
from core.clock import utcnow
from core.db.engine import tenant_session
from core.ids import new_id
from core.jobs.models import Job
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from core.webhooks.models import WebhookDelivery
from core.worker import tick


async def _deliveries(runtime: Runtime, tenant: TenantHandle, ages: dict[str, tuple[str, int]]) -> dict[str, uuid.UUID]:
    """Deliveries (status, finished this many days ago) and dispatched events of those ages, by name."""
    endpoint = await tenant.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]})
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = uuid.UUID(endpoint.json()["id"])
    now, ids = utcnow(), {}
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        for name, (status, days) in ids_and(ages):
            when = now - timedelta(days=days)
            ids[name] = new_id()
            final = status != "pending"
            session.add(
                WebhookDelivery(
                    tenant_id=tenant.id,
                    id=ids[name],
                    endpoint_id=endpoint_id,
                    event_id=new_id(),
                    event_type="points.earned",
                    body="{}",
                    status=status,
                    attempts=1,
                    next_attempt_at=None if final else now,
                    created_at=when,
                    finished_at=when if final else None,
                )
            )
            session.add(
                OutboxEvent(
                    tenant_id=tenant.id,
                    id=new_id(),
                    type=f"retention.{name}",
                    payload={},
                    created_at=when,
                    dispatched_at=when if final else None,
                )
            )
    return ids


def ids_and(ages: dict[str, tuple[str, int]]) -> list[tuple[str, tuple[str, int]]]:
    return list(ages.items())


async def _left(runtime: Runtime, tenant: TenantHandle, ids: dict[str, uuid.UUID]) -> tuple[set[str], set[str]]:
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        kept = set((await session.execute(select(WebhookDelivery.id))).scalars())
        events = set((await session.execute(select(OutboxEvent.type))).scalars())
    return {n for n, i in ids.items() if i in kept}, {e.removeprefix("retention.") for e in events}


AGES = {
    "old_ok": ("succeeded", 40),
    "recent_ok": ("succeeded", 5),
    "old_cancelled": ("cancelled", 45),
    "dead_40": ("dead", 40),
    "dead_100": ("dead", 100),
    "waiting": ("pending", 200),
}


async def test_old_tenant_rows_go_dead_ones_stay_longer(tenant: TenantHandle, runtime: Runtime) -> None:
    ids = await _deliveries(runtime, tenant, AGES)
    await tick(runtime, tenant.id)
    deliveries, events = await _left(runtime, tenant, ids)
    assert deliveries == {"recent_ok", "dead_40", "waiting"}  # 30 days for finished ones, 90 for dead ones
    assert {"old_ok", "old_cancelled", "dead_40", "dead_100"}.isdisjoint(events)  # dispatched > 30 days: gone
    assert {"recent_ok", "waiting"} <= events  # recent, and never dispatched: kept
    # The deliveries that remain are still served with their attempts' log; a purged one is a 404.
    assert (await tenant.get(f"/v1/webhook-deliveries/{ids['old_ok']}")).status_code == 404
    assert (await tenant.get(f"/v1/webhook-deliveries/{ids['dead_40']}")).status_code == 200


async def test_a_tenant_keeps_its_rows_longer_within_bounds(make_tenant: MakeTenant, runtime: Runtime) -> None:
    tenant = await make_tenant()
    changed = await tenant.patch("/v1/program", json={"retention_days": 60})
    assert changed.status_code == 200 and changed.json()["retention_days"] == 60
    ids = await _deliveries(runtime, tenant, AGES)
    await tick(runtime, tenant.id)
    deliveries, _ = await _left(runtime, tenant, ids)
    assert deliveries == {"old_ok", "old_cancelled", "recent_ok", "dead_40", "waiting"}  # only the 100-day dead one

    for hostile in (0, -5, 400, 10_000, "30", 1.5):
        refused = await tenant.patch("/v1/program", json={"retention_days": hostile})
        assert refused.status_code == 422, (hostile, refused.text)
        assert refused.json()["field"] == "retention_days"
    assert (await tenant.get("/v1/program")).json()["retention_days"] == 60  # nothing half-written
    back = await tenant.patch("/v1/program", json={"retention_days": None})
    assert back.status_code == 200 and back.json()["retention_days"] is None


async def test_platform_rows(runtime: Runtime, tenant: TenantHandle) -> None:
    now, kind = utcnow(), f"test.retention.{uuid.uuid4().hex[:6]}"
    rows = {"done_old": ("done", 40), "done_new": ("done", 2), "dead_40": ("dead", 40), "dead_100": ("dead", 100)}
    old_event, new_event = f"evt_{uuid.uuid4().hex}", f"evt_{uuid.uuid4().hex}"
    stripe = {old_event: 40, new_event: 1}
    async with tenant_session(runtime.sessionmaker, None) as session:
        for name, (status, days) in rows.items():
            session.add(
                Job(
                    id=new_id(),
                    kind=kind,
                    dedupe_key=f"{kind}:{name}",
                    status=status,
                    payload={"name": name},
                    finished_at=now - timedelta(days=days),
                    created_at=now - timedelta(days=days),
                )
            )
        for event_id, days in stripe.items():
            session.add(
                StripeEvent(
                    id=event_id,
                    type="invoice.paid",
                    created_at=now,
                    outcome="applied",
                    received_at=now - timedelta(days=days),
                )
            )
    await tick(runtime, tenant.id)
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        left = {j.payload["name"] for j in (await session.execute(select(Job).where(Job.kind == kind))).scalars()}
        events = set((await session.execute(select(StripeEvent.id).where(StripeEvent.id.in_(stripe)))).scalars())
    assert left == {"done_new", "dead_40"}
    assert events == {e for e, days in stripe.items() if days < 30}
