"""Recording care requests (idempotently) and announcing them."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.models import CareRequest
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.ids import new_id
from core.outbox.service import emit, emit_many

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


@dataclass(frozen=True)
class CareAsk:
    """One member's care request in :func:`request_care_many`: what :func:`request_care` takes for one member."""

    member_id: uuid.UUID
    dedupe_key: str
    payload: dict[str, Any] = field(default_factory=dict)


#: Requests per statement (SQLite's bound-parameter limit, and memory).
MANY_BATCH = 2000
REQUEST_COLUMNS = (
    "tenant_id",
    "id",
    "member_id",
    "kind",
    "purpose",
    "source",
    "dedupe_key",
    "payload",
    "status",
    "created_at",
)


@functools.cache
def _insert_requests(postgres: bool) -> Any:
    """Built once per dialect; on PostgreSQL one array per column (:mod:`core.db.bulk`)."""
    return (
        bulk.insert(postgres, requests, REQUEST_COLUMNS)
        .on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
        .returning(requests.c.id, requests.c.dedupe_key)
    )


async def request_care_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    kind: str,
    purpose: Literal["service", "marketing", "safety"],
    source: str,
    asks: Sequence[CareAsk],
    now: datetime | None = None,
) -> list[str]:
    """:func:`request_care` for many members at once (an outage's 100,000 accounts), with the same semantics: each
    ask is recorded once per ``dedupe_key`` (an ask already recorded is skipped), becomes the occasion ``dedupe_key``
    of trigger ``kind`` whose active rules queue their messages in this transaction (consent, quiet hours and caps
    as for one), and is announced as ``care.requested``. A few statements per 2,000 asks, never one per member.
    Returns the keys that were new."""
    now = now or utcnow()
    from core.care.messages import OccasionIn, active_rules, load_program, raise_occasions

    rules = await active_rules(session, tenant_id, [kind])
    program = await load_program(session, tenant_id) if rules else None
    accepted: list[str] = []
    unique = list({ask.dedupe_key: ask for ask in asks}.values())
    for start in range(0, len(unique), MANY_BATCH):
        batch = unique[start : start + MANY_BATCH]
        rows = [
            {
                "tenant_id": tenant_id,
                "id": new_id(),
                "member_id": ask.member_id,
                "kind": kind,
                "purpose": purpose,
                "source": source,
                "dedupe_key": ask.dedupe_key,
                "payload": ask.payload,
                "status": "requested",
                "created_at": now,
            }
            for ask in batch
        ]
        statement = _insert_requests(bulk.is_postgres(session))
        recorded = await session.execute(statement, bulk.params(session, requests, REQUEST_COLUMNS, rows))
        inserted = {r.dedupe_key: r.id for r in recorded.all()}
        new = [ask for ask in batch if ask.dedupe_key in inserted]
        if not new:
            continue
        await raise_occasions(
            session,
            tenant_id,
            [OccasionIn(kind, ask.dedupe_key, ask.member_id, now, dict(ask.payload), source) for ask in new],
            program=program,
            rules=rules,
            now=now,
        )
        await emit_many(
            session,
            tenant_id,
            [
                (
                    "care.requested",
                    {
                        "id": str(inserted[ask.dedupe_key]),
                        "member_id": str(ask.member_id),
                        "kind": kind,
                        "purpose": purpose,
                        "source": source,
                        "payload": ask.payload,
                    },
                    ask.member_id,
                )
                for ask in new
            ],
            now,
        )
        accepted.extend(ask.dedupe_key for ask in new)
    return accepted
