"""Recurring work that is due only where there is something to do: one sweep per kind instead of a run per tenant.

A per-tenant recurring kind (release pending points, dispatch the outbox, deliver webhooks and care messages...)
used to run for every active tenant at its interval, so that ten thousand quiet tenants cost hundreds of jobs a
second doing nothing. A *swept* kind has one schedule row for the platform instead (scope ``sweep``): when it falls
due, one query finds the tenants that have due work of that kind (an ``EXISTS`` per active tenant on the partial
index each kind already has), and only their jobs are queued (``{kind}:{tenant}``, the key the wake-ups after a
request share). An idle sweep is one indexed probe per tenant, a few milliseconds for ten thousand tenants, and
nothing is written.

The sweep re-reads the tables each time, so no work can be missed between sweeps (no wake-up to lose): what falls
due is picked up within the kind's interval, as before, and requests still wake their tenant's job at once.

The daily kinds are swept too: a tenant's retention purge runs only where there are finished rows to look at, its
nightly loyalty run only where there are members, and a plugin's scheduled job only where the condition it names
(:data:`PLUGIN_CONDITIONS`, ``ScheduledJob.when``) holds. A sweep of a kind whose interval is long
(:data:`SPREAD_FROM` and more) spreads its tenants' jobs over the interval (a stable offset per tenant and kind, as
the per-tenant rows had), so ten thousand nightly runs do not fall due in one second, ahead of every other job.

On PostgreSQL the application role sees only one tenant's rows (row-level security), so the query runs inside
``fealty_due_tenants(condition, at)``, a ``SECURITY DEFINER`` function owned by a role that may read these tables
across tenants and answers only tenant ids (migrations ``0025_job_sweeps`` to ``0029_daily_sweeps`` hold the
conditions of :data:`CONDITIONS` as SQL; ``tests/jobs/test_sweeps.py`` puts both backends through the same cases).
On SQLite the query runs as it is.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import UTCDateTime

#: Where a tenant ``t`` has due work of each swept kind, at ``:at``.
CONDITIONS: dict[str, str] = {
    "ledger.release": (
        "SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.status = 'pending' AND l.available_at <= :at"
    ),
    "ledger.expire": (
        "SELECT 1 FROM lots l WHERE l.tenant_id = t.id AND l.remaining > 0 AND l.status = 'posted'"
        " AND l.expires_at IS NOT NULL AND l.expires_at <= :at"
    ),
    "rewards.expire": (
        "SELECT 1 FROM redemptions r WHERE r.tenant_id = t.id AND r.status = 'issued'"
        " AND r.expires_at IS NOT NULL AND r.expires_at <= :at"
    ),
    "outbox.dispatch": "SELECT 1 FROM outbox_events o WHERE o.tenant_id = t.id AND o.dispatched_at IS NULL",
    "webhooks.deliver": (
        "SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = t.id AND d.status IN ('pending', 'sending')"
        " AND d.next_attempt_at <= :at"
    ),
    "care.deliver": (
        "SELECT 1 FROM care_messages m WHERE m.tenant_id = t.id AND m.state IN ('queued', 'deferred')"
        " AND m.due_at <= :at"
    ),
    "care.occasions": "SELECT 1 FROM care_rules r WHERE r.tenant_id = t.id AND r.active",
    "idempotency.purge": ("SELECT 1 FROM idempotency_records k WHERE k.tenant_id = t.id AND k.expires_at <= :at"),
    "cases.breaches": (
        "SELECT 1 FROM cases c WHERE c.tenant_id = t.id AND c.status <> 'closed' AND ("
        "(c.first_reply_due_at <= :at AND c.first_replied_at IS NULL AND c.first_reply_breached_at IS NULL)"
        " OR (c.resolution_due_at <= :at AND c.resolved_at IS NULL AND c.resolution_breached_at IS NULL))"
    ),
    "surveys.invitations": "SELECT 1 FROM surveys s WHERE s.tenant_id = t.id AND s.status = 'active'",
    "tiers.close_periods": (
        "SELECT 1 FROM members m WHERE m.tenant_id = t.id AND m.status = 'active' AND m.tier_valid_until <= :at"
    ),
    # Finished rows the purge may have to delete (whatever their age: the tenant's retention is read by the job).
    "retention.tenant": (
        "SELECT 1 FROM outbox_events o WHERE o.tenant_id = t.id AND o.dispatched_at IS NOT NULL"
        " UNION ALL SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = t.id"
        " AND d.status IN ('succeeded', 'cancelled', 'dead')"
    ),
    "measurement.loyalty": "SELECT 1 FROM members m WHERE m.tenant_id = t.id",
    # Offered to plugins (ScheduledJob.when).
    "members": "SELECT 1 FROM members m WHERE m.tenant_id = t.id AND m.status = 'active'",
}

#: The conditions a plugin's scheduled job may name (``ScheduledJob.when``), and what they mean.
PLUGIN_CONDITIONS: dict[str, str] = {
    "members": "the tenant has at least one active member",
}

#: A sweep of a kind recurring this seldom or less (seconds) spreads its tenants' jobs over the interval.
SPREAD_FROM = 6 * 3600
#: The kinds requests wake at once (``enqueue_or_wake`` on the job ``{kind}:{tenant}``): never spread, whatever their
#: interval, since a job queued for later would hold that wake-up back until then.
WOKEN = frozenset({"outbox.dispatch", "webhooks.deliver", "care.deliver"})


def swept(kind: str) -> bool:
    return kind in CONDITIONS


def spread(kind: str, tenant_id: uuid.UUID, every_seconds: int) -> timedelta:
    """How long after its sweep a tenant's job of ``kind`` is due: a stable offset within the interval for the
    long-interval kinds (the time of day each tenant's nightly work had when it had a schedule row of its own), none
    for the others (their due work should not wait)."""
    if every_seconds < SPREAD_FROM or kind in WOKEN:
        return timedelta(0)
    digest = hashlib.blake2b(f"{kind}:{tenant_id}".encode(), digest_size=8).digest()
    return timedelta(seconds=int.from_bytes(digest, "big") % every_seconds)


async def due_tenants(session: AsyncSession, condition: str, at: datetime) -> list[uuid.UUID]:
    """The active tenants for which ``condition`` (a key of :data:`CONDITIONS`: a swept kind, or a condition a
    plugin's job names) holds at ``at`` (only ids, whatever the tenant of the session)."""
    if session.get_bind().dialect.name == "postgresql":
        query = text("SELECT tenant_id FROM fealty_due_tenants(:kind, :at)").bindparams(kind=condition)
    else:
        sql = "SELECT t.id AS tenant_id FROM tenants t WHERE t.status = 'active' AND EXISTS (%s)"
        query = text(sql % CONDITIONS[condition])  # the conditions are this module's constants, never input
    if ":at" in query.text:
        query = query.bindparams(bindparam("at", at, type_=UTCDateTime()))
    typed = query.columns(tenant_id=Uuid())
    return list((await session.execute(typed)).scalars().all())
