"""The run: every stage in order for a batch (see the package's docstring)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from core.errors import Conflict, FealtyError
from core.events.pipeline.compute import compute
from core.events.pipeline.context import (
    EventIn,
    Item,
    ItemResult,
    PipelineContext,
)
from core.events.pipeline.members import resolve_members
from core.events.pipeline.outcomes import outcome_of
from core.events.pipeline.retries import answer_stored, drop_stored
from core.events.pipeline.validation import validate
from core.events.pipeline.writes import write, write_isolated


async def process(
    ctx: PipelineContext,
    batch: Sequence[EventIn],
    *,
    simulate: bool = False,
    existing: dict[int, uuid.UUID] | None = None,
    isolate_items: bool = False,
) -> list[ItemResult]:
    """Process ``batch``; one result per item, in order. ``existing`` (approvals) maps item index -> stored event.

    ``isolate_items`` (a batch): an item whose write fails is reported and the others are applied (savepoints).
    Without it a write failure raises, for the caller's transaction to roll back (a single event, or a group commit,
    which then answers each request on its own)."""
    results = [ItemResult(i, e.event_id) for i, e in enumerate(batch)]
    items: list[Item] = []
    seen: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, data in enumerate(batch):
        try:
            item = validate(ctx, i, data)
        except FealtyError as error:
            results[i].error = error
            continue
        if existing and i in existing:
            item.existing_id = item.event_uuid = existing[i]
        elif data.event_id in seen:
            first = items[seen[data.event_id]]
            if first.request_hash != item.request_hash:
                results[i].error = Conflict("This event_id was already used for a different event.", field="event_id")
            else:
                repeats[i] = first.index  # answered with the first copy's result below
            continue
        seen[data.event_id] = len(items)
        items.append(item)

    items, looked_up = await drop_stored(ctx, items, results, simulate)
    candidates = items
    items = await resolve_members(ctx, items, results, simulate)
    await compute(ctx, items, results, simulate)
    if not simulate and not looked_up:
        # A retry of an event that fails now (a return already reversed, a member since anonymized) answers what
        # was stored the first time: looked up only for failed items, so the common path has no extra read.
        await answer_stored(
            ctx, [i for i in candidates if results[i.index].error is not None and i.existing_id is None], results
        )
    items = [item for item in items if results[item.index].error is None]
    if not simulate and items:
        items = await (write_isolated(ctx, items, results) if isolate_items else write(ctx, items, results))
    for item in items:
        results[item.index].outcome = item.outcome or outcome_of(ctx, item, simulate)
    for i, first_index in repeats.items():  # in-batch repeats answer what their first copy got
        first_result = results[first_index]
        results[i].outcome, results[i].error = first_result.outcome, first_result.error
        results[i].duplicate = first_result.error is None
    return results
