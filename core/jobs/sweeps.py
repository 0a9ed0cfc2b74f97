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

On PostgreSQL the application role sees only one tenant's rows (row-level security), so the query runs inside
``fealty_due_tenants(kind, at)``, a ``SECURITY DEFINER`` function owned by a role that may read these tables across
tenants and answers only tenant ids (migrations ``0025_job_sweeps``, ``0026_more_sweeps`` and ``0027_case_sweeps``
hold the conditions of :data:`CONDITIONS` as SQL; ``tests/jobs/test_sweeps.py`` puts both backends through the same
cases). On SQLite the query runs as it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime

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
}


def swept(kind: str) -> bool:
    return kind in CONDITIONS


async def due_tenants(session: AsyncSession, kind: str, at: datetime) -> list[uuid.UUID]:
    """The active tenants with due work of ``kind`` at ``at`` (only ids, whatever the tenant of the session)."""
    if session.get_bind().dialect.name == "postgresql":
        query = text("SELECT tenant_id FROM fealty_due_tenants(:kind, :at)").bindparams(kind=kind)
    else:
        sql = "SELECT t.id AS tenant_id FROM tenants t WHERE t.status = 'active' AND EXISTS (%s)"
        query = text(sql % CONDITIONS[kind])  # the conditions are this module's constants, never input
    if ":at" in query.text:
        query = query.bindparams(bindparam("at", at, type_=UTCDateTime()))
    typed = query.columns(tenant_id=Uuid())
    return list((await session.execute(typed)).scalars().all())
