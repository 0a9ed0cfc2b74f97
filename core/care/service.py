"""Recording care requests (idempotently) and announcing them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.models import CareRequest
from core.clock import utcnow
from core.db.base import table_of
from core.ids import new_id
from core.outbox.service import emit

requests = table_of(CareRequest)


async def request_care(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    kind: str,
    purpose: Literal["service", "marketing", "safety"],
    source: str,
    dedupe_key: str,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Record that ``member_id`` should get care of ``kind``. Returns False when this very request (same
    ``dedupe_key``) was already recorded, so daily jobs may run twice without asking twice.

    The request is also an occasion of the care engine (trigger ``kind``, occasion key ``dedupe_key``, the payload
    as its variables): the tenant's active care rules for that trigger queue their messages in this transaction."""
    now = now or utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    request_id = new_id()
    statement = (
        dialect.insert(requests)
        .values(
            tenant_id=tenant_id,
            id=request_id,
            member_id=member_id,
            kind=kind,
            purpose=purpose,
            source=source,
            dedupe_key=dedupe_key,
            payload=payload or {},
            status="requested",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
        .returning(requests.c.id)
    )
    if (await session.execute(statement)).first() is None:
        return False
    from core.care.messages import OccasionIn, raise_occasions

    await raise_occasions(
        session,
        tenant_id,
        [OccasionIn(kind, dedupe_key, member_id, now, dict(payload or {}), source)],
        now=now,
    )
    await emit(
        session,
        tenant_id,
        "care.requested",
        {
            "id": str(request_id),
            "member_id": str(member_id),
            "kind": kind,
            "purpose": purpose,
            "source": source,
            "payload": payload or {},
        },
        member_id,
    )
    return True
