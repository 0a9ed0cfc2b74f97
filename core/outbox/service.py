"""Emitting domain events into the outbox (and waking the tenant's dispatcher)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.base import table_of
from core.ids import new_id
from core.outbox.models import OutboxEvent

outbox = table_of(OutboxEvent)
DISPATCH_JOB = "outbox.dispatch"
WAKE_KEY = "fealty.outbox_wakes"


async def emit_many(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    events: Sequence[tuple[str, dict[str, Any], uuid.UUID | None]],
    now: datetime | None = None,
) -> None:
    """Write ``(type, data, member_id)`` events in the caller's transaction: they exist exactly if the change does.

    One statement whatever their number. Nothing else is touched on this (hot) path: a shared job row here would
    make every transaction of the tenant queue behind it. The tenant's dispatcher is woken after the commit instead
    (:func:`pending_wakes`), and a recurring dispatch catches anything a crash between commit and wake left behind.
    """
    if not events:
        return
    now = now or utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "id": new_id(),
            "type": kind,
            "member_id": member_id,
            "payload": data,
            "created_at": now,
            "dispatched_at": None,
        }
        for kind, data, member_id in events
    ]
    await session.execute(insert(outbox), rows)
    session.info.setdefault(WAKE_KEY, set()).add(tenant_id)


def pending_wakes(session: AsyncSession) -> set[uuid.UUID]:
    """Tenants whose dispatcher should be woken once ``session`` has committed."""
    wakes: set[uuid.UUID] = session.info.pop(WAKE_KEY, set())
    return wakes


async def emit(
    session: AsyncSession, tenant_id: uuid.UUID, kind: str, data: dict[str, Any], member_id: uuid.UUID | None = None
) -> None:
    await emit_many(session, tenant_id, [(kind, data, member_id)])
