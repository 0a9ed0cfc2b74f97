"""The background worker: runs the ledger's due work for every tenant (release pending points, expire lots,
forget old idempotency keys) and billing's (suspend past-due tenants whose grace period is over, close usage periods
and bill their overage). ``fealty worker`` runs it as a process; ``fealty serve`` on SQLite runs it in-process.

Every unit of work is one short transaction per tenant and batch, and every unit is idempotent (a lot released or
expired is not due any more), so a worker killed mid-batch loses nothing and a restarted or second worker repeats
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select

from core.billing.periods import close_billing_periods
from core.billing.service import enforce_grace_periods
from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.idempotency.service import purge_expired
from core.ledger import service as ledger
from core.program.models import Program
from core.program.settings import ProgramSettings
from core.runtime import Runtime
from core.tenancy.models import Tenant

log = structlog.get_logger("fealty.worker")

BATCH = 1000


@dataclass
class TickReport:
    released: int = 0
    expired_points: int = 0
    purged_keys: int = 0
    suspended_tenants: int = 0
    closed_periods: int = 0
    errors: list[str] = field(default_factory=list)


async def _tenant_ids(runtime: Runtime) -> list[uuid.UUID]:
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        return list((await session.execute(select(Tenant.id).where(Tenant.status == "active"))).scalars())


async def run_ledger_maintenance(runtime: Runtime, tenant_id: uuid.UUID, report: TickReport) -> None:
    """Release and expire for one tenant, batch after batch until nothing is due."""
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            released = await ledger.release_due(session, tenant_id=tenant_id, now=utcnow(), limit=BATCH)
        report.released += released
        if released < BATCH:
            break
    while True:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            programs = table_of(Program)
            row = (await session.execute(select(programs).where(programs.c.tenant_id == tenant_id))).one()
            program = ProgramSettings.from_mapping(row._mapping)
            if program.expiry.kind == "never":
                break
            expired = await ledger.expire_due(
                session, tenant_id=tenant_id, policy=program.ledger_policy, now=utcnow(), limit=BATCH
            )
        report.expired_points += expired
        if not expired:
            break
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        report.purged_keys += await purge_expired(session, tenant_id=tenant_id, now=utcnow())


async def tick(runtime: Runtime) -> TickReport:
    """One pass over every active tenant."""
    report = TickReport()
    for tenant_id in await _tenant_ids(runtime):
        try:
            await run_ledger_maintenance(runtime, tenant_id, report)
        except Exception as exc:  # one tenant's failure must not stop the others
            log.exception("tenant_maintenance_failed", tenant_id=str(tenant_id))
            report.errors.append(f"{tenant_id}: {type(exc).__name__}")
    async with tenant_session(runtime.sessionmaker, None) as session:
        report.purged_keys += await purge_expired(session, tenant_id=None, now=utcnow())
    await run_billing(runtime, report)
    return report


async def run_billing(runtime: Runtime, report: TickReport) -> None:
    """Suspend tenants whose grace period is over, then close the usage periods that are due (both idempotent)."""
    try:
        report.suspended_tenants += await enforce_grace_periods(runtime, utcnow())
    except Exception as exc:
        log.exception("billing_grace_failed")
        report.errors.append(f"billing grace: {type(exc).__name__}")
    try:
        closed = await close_billing_periods(runtime, utcnow())
        report.closed_periods += closed.closed
        report.errors += closed.errors
    except Exception as exc:
        log.exception("billing_close_failed")
        report.errors.append(f"billing close: {type(exc).__name__}")


async def run_forever(runtime: Runtime, stop: asyncio.Event) -> None:
    interval = runtime.settings.worker_poll_seconds
    log.info("worker_started", interval_s=interval)
    while not stop.is_set():
        try:
            report = await tick(runtime)
            if report.released or report.expired_points:
                log.info("worker_tick", released=report.released, expired_points=report.expired_points)
        except Exception:
            log.exception("worker_tick_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    log.info("worker_stopped")
