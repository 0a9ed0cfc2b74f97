"""Writes: the events, the ledger credits, the metric buckets, tier moves, the outbox and the plugins'
``event_processed`` hooks, in a fixed number of statements; a batch falls back to one savepoint per item."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from core.billing.usage import record_activity as record_usage
from core.db import bulk
from core.errors import Conflict, FealtyError, NotFound
from core.events.pipeline.compute import compute
from core.events.pipeline.context import (
    EVENT_COLUMNS,
    Item,
    ItemResult,
    PipelineContext,
    activity_at,
    all_awards,
    events_table,
)
from core.events.pipeline.members import available_of, resolve_members
from core.events.pipeline.outcomes import domain_events, event_row
from core.events.pipeline.reversals import reverse
from core.events.pipeline.tier_moves import write_tier_moves
from core.events.pipeline.validation import validate
from core.ledger import service as ledger
from core.ledger.policy import policy_of
from core.outbox.service import emit_many
from core.plugin.types import (
    Award,
)
from core.qualification import service as metrics


@functools.cache
def _insert_events(postgres: bool) -> Any:
    """Store new events; an event_id stored meanwhile by another request is skipped (and answered as a race)."""
    return (
        bulk.insert(postgres, events_table, EVENT_COLUMNS)
        .on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
        .returning(events_table.c.event_id)
    )


async def write(ctx: PipelineContext, items: list[Item], results: list[ItemResult]) -> list[Item]:
    """Every write, in a fixed number of statements. Returns the items actually applied."""
    session, now = ctx.session, ctx.now
    new = [i for i in items if i.existing_id is None]
    if new:
        statement = _insert_events(bulk.is_postgres(session))
        event_rows = [event_row(ctx, i) for i in new]
        inserted = set(
            (await session.execute(statement, bulk.params(session, events_table, EVENT_COLUMNS, event_rows))).scalars()
        )
        raced = [i for i in new if i.data.event_id not in inserted]
        if raced:
            # Another request stored the same event_id first (its transaction was waited for): answer its outcome.
            if len(raced) != len(new) or len(new) != len(items):
                raise Conflict(
                    "Events of this batch were stored concurrently by another request; retry the batch.", field="events"
                )
            rows = await session.execute(
                select(events_table.c.event_id, events_table.c.outcome, events_table.c.request_hash).where(
                    events_table.c.tenant_id == ctx.tenant_id,
                    events_table.c.event_id.in_([i.data.event_id for i in raced]),
                )
            )
            for row in rows:
                item = next(i for i in raced if i.data.event_id == row.event_id)
                if row.request_hash == item.request_hash:
                    results[item.index].outcome, results[item.index].duplicate = dict(row.outcome), True
                else:
                    results[item.index].error = Conflict(
                        "This event_id was already used for a different event.", field="event_id"
                    )
            return []
    awarded = [i for i in items if i.status == "awarded"]
    credits: list[ledger.CreditRequest] = []
    for item in awarded:
        assert item.member is not None
        by_time: dict[datetime | None, list[Award]] = defaultdict(list)
        for award in all_awards(item, now):
            if award.points > 0:
                by_time[award.available_at].append(award)
        for available_at, awards in by_time.items():
            credits.append(
                ledger.CreditRequest(
                    member_id=item.member.id,
                    points=sum(a.points for a in awards),
                    kind="earn",
                    cause=ledger.Cause(
                        "event",
                        id=str(item.event_uuid),
                        reason=f"{item.data.type} {item.data.event_id}",
                        actor=ctx.actor,
                    ),
                    available_at=available_at,
                    details={
                        "event_id": item.data.event_id,
                        "awards": [{"source": a.source, "points": a.points} for a in awards],
                    },
                )
            )
    activity: dict[uuid.UUID, datetime] = {}
    for item in awarded:
        if item.member is not None and item.event_type.counts_as_activity:
            at = activity_at(item, now)
            activity[item.member.id] = max(at, activity.get(item.member.id, at))
    # What contends with other writers (the members' balance rows, their metric buckets, the usage marks) comes last
    # and is prepared first: another batch or event of the same members waits from the balance lock to this
    # transaction's commit, so the outbox, the ledger's entries and lots and the buckets' parameters are done before
    # it (the ledger plans from the balances read with the members and checks them under the lock).
    await emit_many(
        session,
        ctx.tenant_id,
        [ev for i in items for ev in domain_events(ctx, i) if ctx.config.wants_outbox(ev[0])],
        now,
    )
    buckets = metrics.BucketAdditions.of(
        session,
        ctx.tenant_id,
        [
            (i.member.id, name, i.local_day, value)
            for i in awarded
            if i.member
            for name, value in _metric_rows(i).items()
        ],
    )
    await ledger.credit_planned(
        session,
        tenant_id=ctx.tenant_id,
        credits=credits,
        policy=policy_of(ctx.program),
        now=now,
        activity=activity,
        assumed_available={i.member.id: available_of(i.member) for i in awarded if i.member is not None},
    )
    # Billing usage: events stored now (an approval was counted when first held) and every member acted for.
    await record_usage(
        session, tenant_id=ctx.tenant_id, member_ids=[i.member.id for i in items], now=now, events=len(new)
    )
    if buckets is not None:
        await buckets.write(session)
    await write_tier_moves(ctx, [i for i in awarded if i.tier_move is not None])
    for item in awarded:  # after the tier moves: a return's tier check sees where the batch left the member
        if item.original is not None:
            await reverse(
                ctx, item.original, item.reverse_fraction or Decimal(0), reason=f"return {item.data.event_id}"
            )
    if any(i.existing_id for i in items):
        for item in items:
            if item.existing_id is not None:
                stored = event_row(ctx, item)
                await session.execute(
                    update(events_table)
                    .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == item.existing_id)
                    .values(
                        status=stored["status"],
                        status_reason=stored["status_reason"],
                        points=stored["points"],
                        outcome=stored["outcome"],
                        decided_by=ctx.actor,
                        decided_at=now,
                    )
                )
    hooks = ctx.hooks
    if any(i.context is not None for i in items):
        for item in items:
            if item.context is None:  # no plugin: no view was built (compute)
                continue
            assert item.member is not None
            awards = all_awards(item, now)
            context = replace(item.context, reverse_event=_reverser(ctx, item.member.id))
            await hooks.event_processed(context, item.status, awards, item.credits)
    return items


async def write_isolated(ctx: PipelineContext, items: list[Item], results: list[ItemResult]) -> list[Item]:
    """:func:`write` in a savepoint. Should it raise a FealtyError (one item's problem: a return reversed meanwhile,
    a plugin's ``event_processed`` refusing an item), it is rolled back and the items are written one by one, each in
    its own savepoint: each bad item gets its problem, the others are applied. A member's items after one of theirs
    that failed are computed again first, so their caps, tier and credits do not count the failed one."""
    session = ctx.session
    try:
        async with session.begin_nested():
            return await write(ctx, items, results)
    except FealtyError:
        pass
    applied: list[Item] = []
    failed_members: set[uuid.UUID] = set()
    for item in items:
        assert item.member is not None
        member_id = item.member.id
        if member_id in failed_members:
            again = await _recompute(
                ctx, item, results, [a for a in applied if a.member is not None and a.member.id == member_id]
            )
            if again is None:
                continue
            item = again
        try:
            async with session.begin_nested():
                applied += await write(ctx, [item], results)
        except FealtyError as error:
            results[item.index].error = error
            failed_members.add(member_id)
    return applied


async def _recompute(
    ctx: PipelineContext, item: Item, results: list[ItemResult], applied: Sequence[Item]
) -> Item | None:
    """``item`` computed afresh from its data and what is stored now, after ``applied`` (the member's items of this
    batch written so far). None if it fails now: its result says why."""
    try:
        fresh = validate(ctx, item.index, item.data)
    except FealtyError as error:
        results[item.index].error = error
        return None
    fresh.request_hash = item.request_hash  # as first received (a phone number is normalised since)
    if item.existing_id is not None:
        fresh.existing_id = fresh.event_uuid = item.existing_id
    kept = await resolve_members(ctx, [fresh], results)
    await compute(ctx, kept, results, simulate=False, applied=applied)
    return fresh if kept and results[item.index].error is None else None


def _reverser(ctx: PipelineContext, member_id: uuid.UUID) -> Callable[[str, Decimal, str], Awaitable[int]]:
    """What a plugin's ``ctx.reverse_event`` does: reverse one of this member's earlier events, by its event_id."""

    async def reverse_event(event_id: str, fraction: Decimal, reason: str) -> int:
        row = (
            await ctx.session.execute(
                select(events_table).where(
                    events_table.c.tenant_id == ctx.tenant_id, events_table.c.event_id == event_id
                )
            )
        ).first()
        if row is None or row.member_id != member_id:
            raise NotFound("No event of this member has that event_id.", field="event_id")
        if row.status != "awarded" or row.reversed_fraction >= 1:
            return 0
        result = await reverse(ctx, row, min(Decimal(fraction), Decimal(1) - row.reversed_fraction), reason=reason)
        return result.points_removed

    return reverse_event


def _metric_rows(item: Item) -> dict[str, Decimal]:
    rows = dict(item.credits)
    for line in item.lines:
        if line.rule_id is not None:
            rows[f"rule:{line.rule_id}"] = rows.get(f"rule:{line.rule_id}", Decimal(0)) + line.points
    return rows
