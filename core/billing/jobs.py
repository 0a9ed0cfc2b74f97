"""Billing's recurring work on the job queue: suspend tenants whose grace period is over; close usage periods and bill
their overage (platform jobs: one per interval, whatever the number of workers)."""

from __future__ import annotations

from core.billing.periods import close_billing_periods
from core.billing.service import enforce_grace_periods
from core.clock import utcnow
from core.jobs.queue import ClaimedJob
from core.jobs.registry import JobRegistry
from core.runtime import Runtime


async def enforce_grace(runtime: Runtime, job: ClaimedJob) -> bool:
    await enforce_grace_periods(runtime, utcnow())
    return True


async def close_periods(runtime: Runtime, job: ClaimedJob) -> bool:
    report = await close_billing_periods(runtime, utcnow())
    if report.errors:
        # Retried with backoff; rows already billed stay billed (each is closed in its own transaction).
        raise RuntimeError("; ".join(report.errors))
    return True


def register(registry: JobRegistry, runtime: Runtime) -> None:
    every = runtime.settings.housekeeping_every_seconds
    registry.register("billing.enforce_grace", enforce_grace, every_seconds=min(every, 300), per_tenant=False)
    registry.register("billing.close_periods", close_periods, every_seconds=every, per_tenant=False)
