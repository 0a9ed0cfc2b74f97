"""Two workers dispatching and delivering one tenant's events at once (PostgreSQL, SKIP LOCKED): each event reaches
each endpoint exactly once when nobody crashes."""

from __future__ import annotations

import asyncio
import collections
import uuid

import pytest
from sqlalchemy import func, select

from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob
from core.outbox.service import DISPATCH_JOB
from core.testing import AppClient, create_tenant
from core.webhooks import jobs
from core.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt
from core.webhooks.service import DELIVER_JOB
from tests.webhooks.helpers import Receiver, add_endpoint, emit_events, make_worker

pytestmark = pytest.mark.postgres_only

EVENTS = 150


async def test_two_workers_deliver_each_event_once_per_endpoint(
    pg_client: AppClient, postgres_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "DISPATCH_BATCH", 20)  # many small batches, so the two workers interleave
    tenant = await create_tenant(pg_client)
    everything, points = receiver.hook("all"), receiver.hook("points")
    await add_endpoint(tenant, receiver, everything, ["*"])
    await add_endpoint(tenant, receiver, points, ["points.earned"])
    workers = [make_worker(postgres_url, webhook_concurrency=4) for _ in range(2)]
    try:
        kinds = ["points.earned", "tier.changed", "member.updated"]
        for start in range(0, EVENTS, 50):  # several committed transactions, as several requests would be
            await emit_events(
                workers[0], tenant, *((kinds[i % 3], {"n": i}) for i in range(start, min(EVENTS, start + 50)))
            )
        dispatching = [True, True]

        async def dispatch(i: int) -> None:
            job = ClaimedJob(uuid.uuid4(), tenant.id, DISPATCH_JOB, {}, 1, 10, f"worker-{i}")
            while not await jobs.dispatch(workers[i], job):
                pass
            dispatching[i] = False

        async def deliver(i: int) -> None:
            job = ClaimedJob(uuid.uuid4(), tenant.id, DELIVER_JOB, {}, 1, 10, f"worker-{i}")
            while True:
                finished = await jobs.deliver(workers[i], job)
                if finished and not any(dispatching):
                    return
                await asyncio.sleep(0)  # let the other loops run

        await asyncio.wait_for(asyncio.gather(dispatch(0), dispatch(1), deliver(0), deliver(1)), 60)
        for i in range(2):  # a last pass each: nothing is left over, nothing is sent again
            job = ClaimedJob(uuid.uuid4(), tenant.id, DELIVER_JOB, {}, 1, 10, f"worker-{i}")
            assert await jobs.deliver(workers[i], job)

        expected_points = sum(1 for i in range(EVENTS) if kinds[i % 3] == "points.earned")
        assert len(everything.requests) == EVENTS
        assert len(points.requests) == expected_points
        assert all(r.signature_error is None for r in receiver.requests)
        per_pair = collections.Counter((r.path, r.json["id"]) for r in receiver.requests)
        assert set(per_pair.values()) == {1}
        assert {r.json["data"]["n"] for r in everything.requests} == set(range(EVENTS))
        assert len({r.headers["fealty-delivery-id"] for r in receiver.requests}) == EVENTS + expected_points

        async with tenant_session(workers[0].sessionmaker, tenant.id) as session:
            statuses = dict(
                (
                    await session.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status))
                ).all()
            )
            attempts = (await session.execute(select(func.count(WebhookDeliveryAttempt.id)))).scalar()
        assert statuses == {"succeeded": EVENTS + expected_points}
        assert attempts == EVENTS + expected_points
    finally:
        for worker in workers:
            await worker.close()
