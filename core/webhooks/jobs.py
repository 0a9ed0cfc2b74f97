"""The worker's side of webhooks: dispatch outbox events into deliveries, and deliver them.

``outbox.dispatch`` (per tenant; woken after every commit that emitted events, and recurring as a safety net):
one transaction per batch reads undispatched events, writes their deliveries, marks them dispatched and makes sure
``webhooks.deliver`` is due.

``webhooks.deliver`` (per tenant; woken by dispatch, test and replay, and recurring): claims due deliveries and
commits, POSTs them with no transaction open (bounded concurrency, a deadline each), then records each result in
its own short transaction. Delivery is at least once: a worker that dies between a receiver's answer and the
record leaves the delivery ``sending``, and it is sent again (same delivery id, same body) when its lease ends.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import timedelta

import structlog

from core.adapters.webhook_http import OutboundRequest, WebhookSender
from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import ClaimedJob, complete
from core.jobs.registry import JobRegistry
from core.outbox.service import DISPATCH_JOB
from core.runtime import Runtime
from core.webhooks import service
from core.webhooks.service import DELIVER_JOB, ClaimedDelivery

log = structlog.get_logger("fealty.webhooks")

#: Outbox events turned into deliveries per transaction.
DISPATCH_BATCH = 500
#: Deliveries claimed per round, as a multiple of the concurrency. One wave: a round takes at most about one
#: timeout however slow the tenant's endpoints are, so it never holds a worker (and the other tenants) for long;
#: the job then goes back in the queue behind what else is due.
DELIVER_WAVES = 1
#: Margin on top of the time a round of POSTs may take, before a claimed delivery counts as abandoned.
LEASE_MARGIN = timedelta(seconds=60)


async def dispatch(runtime: Runtime, job: ClaimedJob) -> bool:
    """One batch of the tenant's outbox; False (run again at once) while more may be waiting."""
    assert job.tenant_id is not None
    async with tenant_session(runtime.sessionmaker, job.tenant_id) as session:
        report = await service.dispatch_batch(session, job.tenant_id, now=utcnow(), limit=DISPATCH_BATCH)
        if not report.events:
            await complete(session, job)
            return True
    log.info("webhooks_dispatched", events=report.events, deliveries=report.deliveries)
    if report.events >= DISPATCH_BATCH:
        return False
    # Events committed while this batch ran found this job running, so their wake changed nothing: look once more
    # rather than leave them to the schedule.
    async with tenant_session(runtime.sessionmaker, job.tenant_id, writes=False) as session:
        return not await service.has_undispatched(session, job.tenant_id)


def _lease(runtime: Runtime, batch: int) -> timedelta:
    settings = runtime.settings
    waves = math.ceil(batch / max(1, settings.webhook_concurrency))
    return timedelta(seconds=settings.webhook_timeout_seconds * waves) + LEASE_MARGIN


async def deliver(runtime: Runtime, job: ClaimedJob) -> bool:
    """One round of the tenant's due deliveries; False (run again at once) while more are due."""
    assert job.tenant_id is not None
    tenant_id = job.tenant_id
    settings = runtime.settings
    batch = max(1, settings.webhook_concurrency) * DELIVER_WAVES
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        claim = await service.claim_due(
            session,
            tenant_id,
            now=utcnow(),
            limit=batch,
            lease=_lease(runtime, batch),
            max_attempts=settings.webhook_max_attempts,
        )
    if not claim.claimed and not claim.finished:
        return True  # nothing due: anything later has its own wake, or the schedule
    if claim.claimed:
        statuses = await _send_and_record(runtime, tenant_id, claim.claimed)
        log.info("webhooks_delivered", **{status: statuses.count(status) for status in set(statuses)})
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        more = await service.has_due(session, tenant_id, utcnow())
    return not more


async def _send_and_record(runtime: Runtime, tenant_id: uuid.UUID, claimed: list[ClaimedDelivery]) -> list[str]:
    settings = runtime.settings

    async def one(sender: WebhookSender, delivery: ClaimedDelivery) -> str:
        request = OutboundRequest(delivery.url, delivery.body, lambda: delivery.headers(int(time.time())))
        result = await sender.post(request)
        if not result.succeeded:
            log.info(
                "webhook_attempt_failed",
                delivery_id=str(delivery.id),
                endpoint_id=str(delivery.endpoint_id),
                attempt=delivery.attempt,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            return await service.record_result(
                session,
                tenant_id,
                delivery,
                result,
                now=utcnow(),
                max_attempts=settings.webhook_max_attempts,
                backoff_base=settings.webhook_backoff_base_seconds,
                backoff_cap=settings.webhook_backoff_cap_seconds,
            )

    async with WebhookSender(
        timeout=settings.webhook_timeout_seconds, concurrency=settings.webhook_concurrency
    ) as sender:
        outcomes = await asyncio.gather(*(one(sender, d) for d in claimed), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        # Results not recorded stay ``sending`` and are retried when their lease ends; the job fails and retries.
        raise failures[0]
    return [str(o) for o in outcomes]


def register(registry: JobRegistry, runtime: Runtime) -> None:
    every = runtime.settings.dispatch_every_seconds
    registry.register(DISPATCH_JOB, dispatch, every_seconds=every)
    registry.register(DELIVER_JOB, deliver, every_seconds=every)
