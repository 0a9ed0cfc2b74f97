"""Retries: events already stored under an event_id answer their first outcome (other content is a conflict)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select

from core.db import bulk
from core.errors import Conflict
from core.events.pipeline.context import (
    Item,
    ItemResult,
    PipelineContext,
    events_table,
)


@functools.cache
def _stored_events(postgres: bool) -> Any:
    return select(events_table.c.event_id, events_table.c.request_hash, events_table.c.outcome).where(
        events_table.c.tenant_id == bindparam("s_tenant"),
        bulk.one_of(events_table.c.event_id, "s_ids", postgres),
    )


async def _stored_rows(ctx: PipelineContext, items: Sequence[Item]) -> dict[str, Any]:
    rows = await ctx.session.execute(
        _stored_events(bulk.is_postgres(ctx.session)),
        {"s_tenant": ctx.tenant_id, "s_ids": [i.data.event_id for i in items]},
    )
    return {r.event_id: r for r in rows}


def _answer_retry(item: Item, row: Any, result: ItemResult) -> None:
    """``item``'s event_id is stored as ``row``: the same content is a retry (the first answer again), other content
    a conflict."""
    if row.request_hash != item.request_hash:
        result.error = Conflict("This event_id was already used for a different event.", field="event_id")
    else:
        result.outcome, result.duplicate, result.error = dict(row.outcome), True, None


async def drop_stored(
    ctx: PipelineContext, items: list[Item], results: list[ItemResult], simulate: bool
) -> tuple[list[Item], bool]:
    """Events already stored under these ids: a retry answers the first outcome; other content is a conflict.
    Also says whether the read was made."""
    fresh = [i for i in items if i.existing_id is None]
    if not fresh or simulate or len(items) == 1:
        # A single event needs no read first: its insert's unique index answers a retry (see write), and if it
        # fails before that, answer_stored looks it up.
        return items, False
    stored = await _stored_rows(ctx, fresh)
    kept = []
    for item in items:
        row = stored.get(item.data.event_id) if item.existing_id is None else None
        if row is None:
            kept.append(item)
        else:
            _answer_retry(item, row, results[item.index])
    return kept, True


async def answer_stored(ctx: PipelineContext, failed: list[Item], results: list[ItemResult]) -> None:
    """Items that failed before their insert: those whose event_id is stored answer as retries of it."""
    if not failed:
        return
    stored = await _stored_rows(ctx, failed)
    for item in failed:
        row = stored.get(item.data.event_id)
        if row is not None:
            _answer_retry(item, row, results[item.index])
