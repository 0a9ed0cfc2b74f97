"""The ``loyalty.*`` facts segment (and campaign) conditions read: each member's figures from the last loyalty run."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.measurement.models import MemberLoyalty

rows = table_of(MemberLoyalty)
#: The member_loyalty columns conditions can name as ``loyalty.<column>``.
SEGMENT_FACTS = (
    "rfm_segment",
    "churn_probability",
    "p_alive",
    "loyalty_type",
    "loyalty_index",
    "r_score",
    "f_score",
    "m_score",
    "recency_days",
    "frequency",
    "monetary",
    "return_rate",
    "churned",
    "price_sensitivity",
    "expected_purchases",
    "expected_value",
)


def reads_loyalty(fields: Iterable[str]) -> bool:
    return any(f.startswith("loyalty.") for f in fields)


async def loyalty_facts(
    db: AsyncSession, tenant_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """``member_id -> {"rfm_segment": ..., "churn_probability": ...}`` for these members (one query); members the
    run has not reached yet are absent, so their ``loyalty.*`` conditions do not hold."""
    if not member_ids:
        return {}
    query = select(rows.c.member_id, *(rows.c[name] for name in SEGMENT_FACTS)).where(
        rows.c.tenant_id == tenant_id, rows.c.member_id.in_(list(member_ids))
    )
    return {r.member_id: {name: r._mapping[name] for name in SEGMENT_FACTS} for r in await db.execute(query)}
