"""Two workers dispatching and delivering one tenant's events at once (PostgreSQL, SKIP LOCKED): each event reaches
each endpoint exactly once when nobody crashes."""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob
from core.outbox.service import DISPATCH_JOB
from core.testing import AppClient, create_tenant
from core.webhooks import jobs, service
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


async def test_an_event_committed_while_dispatch_runs_is_not_left_for_the_schedule(
    pg_client: AppClient, postgres_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its wake found the dispatch job running (and so did nothing): the job itself must notice the event."""
    tenant = await create_tenant(pg_client)
    hook = receiver.hook()
    await add_endpoint(tenant, receiver, hook, ["*"])
    worker = make_worker(postgres_url)
    original = service.dispatch_batch
    emitted: list[int] = []

    async def dispatch_while_a_request_commits(
        session: AsyncSession, tenant_id: uuid.UUID, **kw: Any
    ) -> service.DispatchReport:
        report = await original(session, tenant_id, **kw)
        if not emitted:
            emitted.append(1)
            await emit_events(worker, tenant, ("tier.changed", {"n": 2}))  # another transaction commits meanwhile
        return report

    monkeypatch.setattr(service, "dispatch_batch", dispatch_while_a_request_commits)
    try:
        await emit_events(worker, tenant, ("points.earned", {"n": 1}))
        job = ClaimedJob(uuid.uuid4(), tenant.id, DISPATCH_JOB, {}, 1, 10, "worker")
        assert await jobs.dispatch(worker, job) is False  # more is waiting: run again at once
        assert await jobs.dispatch(worker, job) is True
        deliver = ClaimedJob(uuid.uuid4(), tenant.id, DELIVER_JOB, {}, 1, 10, "worker")
        assert await jobs.deliver(worker, deliver)
    finally:
        await worker.close()
    assert sorted(r.json["data"]["n"] for r in hook.verified) == [1, 2]
