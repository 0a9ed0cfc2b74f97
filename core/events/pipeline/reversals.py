"""Reversals: take back a share of what an event earned (points and qualification credits), and the context hooks
about a stored event receive."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select, update

from core.errors import Conflict
from core.events.pipeline.context import (
    PipelineContext,
    events_table,
)
from core.events.pipeline.members import member_view_of
from core.ledger import service as ledger
from core.ledger.policy import policy_of
from core.members.models import Member
from core.metrics import service as metrics
from core.outbox.service import emit_many
from core.plugin.types import (
    EventContext,
    EventView,
    ReversalView,
)
from core.tiers import service as tier_service

# --- reversal -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReversalResult:
    points_requested: int
    points_removed: int
    written_off: int
    fraction: Decimal
    credits_removed: dict[str, Decimal]
    #: The member's move down when the credits removed were what held their tier (see tiers.rules.on_reversal).
    tier_move: tier_service.PlannedMove | None = None


async def reverse(ctx: PipelineContext, event: Any, fraction: Decimal, *, reason: str) -> ReversalResult:
    """Take back ``fraction`` of what ``event`` earned (points and qualification credits), following the reversal
    policy for points already spent. Cumulative rounding: the parts of several partial reversals add up exactly to
    what a full reversal would remove."""
    session = ctx.session
    locked = (
        await session.execute(
            select(events_table)
            .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == event.id)
            .with_for_update()
        )
    ).one()
    left = Decimal(1) - locked.reversed_fraction
    fraction = min(fraction, left)
    if fraction <= 0:
        raise Conflict("This event has already been reversed in full.", field="event")
    total_fraction = locked.reversed_fraction + fraction
    target = int((locked.points * total_fraction).to_integral_value(rounding="ROUND_FLOOR"))
    if total_fraction >= 1:
        target = locked.points
    remove = target - locked.reversed_points
    entries = (
        await session.execute(
            select(ledger.entries.c.id, ledger.entries.c.points)
            .where(
                ledger.entries.c.tenant_id == ctx.tenant_id,
                ledger.entries.c.cause_type == "event",
                ledger.entries.c.cause_id == str(locked.id),
                ledger.entries.c.kind == "earn",
            )
            .order_by(ledger.entries.c.id)
        )
    ).all()
    removed = written_off = 0
    shares = _split(remove, [e.points for e in entries])
    cause = ledger.Cause("event", id=str(locked.id), reason=reason, actor=ctx.actor)
    for entry, share in zip(entries, shares, strict=True):
        if share <= 0:
            continue
        posted = await ledger.reverse_credit(
            session,
            tenant_id=ctx.tenant_id,
            entry_id=entry.id,
            points=share,
            cause=cause,
            policy=policy_of(ctx.program),
            now=ctx.now,
        )
        if posted is not None:
            removed += -posted.points
            written_off += posted.written_off
    credits = credits_to_remove(locked.outcome, fraction, complete=total_fraction >= 1)
    await metrics.add(
        session,
        ctx.tenant_id,
        [(locked.member_id, k, locked.local_day, -v) for k, v in credits.items()]
        + [(locked.member_id, k, locked.local_day, -v) for k, v in _cap_usage_of(locked.outcome, fraction).items()],
    )
    outcome = dict(locked.outcome)
    outcome["reversals"] = [
        *outcome.get("reversals", []),
        {"fraction": str(fraction), "points": remove, "at": ctx.now.isoformat(), "reason": reason},
    ]
    outcome["reversed_points"] = target
    await session.execute(
        update(events_table)
        .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == locked.id)
        .values(reversed_points=target, reversed_fraction=total_fraction, outcome=outcome)
    )
    await emit_many(
        session,
        ctx.tenant_id,
        [
            (
                "event.reversed",
                {
                    "id": str(locked.id),
                    "event_id": locked.event_id,
                    "member_id": str(locked.member_id),
                    "points_removed": remove,
                    "fraction": str(fraction),
                },
                locked.member_id,
            )
        ],
        ctx.now,
    )
    if ctx.program.enabled_plugins:
        hook_ctx = await stored_event_context(ctx, locked)
        await ctx.hooks.event_reversed(
            hook_ctx,
            ReversalView(hook_ctx.event, hook_ctx.member, removed, fraction, credits, Decimal(total_fraction)),
        )
    tier_move = None
    if ctx.config.tiers and any(credits.values()):
        tier_move = await tier_service.after_reversal(
            session,
            ctx.tenant_id,
            ctx.config,
            ctx.program,
            locked.member_id,
            ctx.now,
            hooks=ctx.hooks,
            tenant=ctx.tenant_view(),
            details={"event_id": locked.event_id, "reason": reason},
        )
    return ReversalResult(remove, removed, written_off, fraction, credits, tier_move)


def is_count(credit: str) -> bool:
    """Credits that count events (``events``, ``count:<type>``): a refund of part of a purchase leaves a purchase."""
    return credit == "events" or credit.startswith("count:")


def credits_to_remove(outcome: Mapping[str, Any], fraction: Decimal, *, complete: bool) -> dict[str, Decimal]:
    """What a reversal of ``fraction`` takes back of an event's credits: that share of the quantities (spend, points,
    nights...), and the counts whole with the share that completes the reversal (never a fraction of a count)."""
    credits = (outcome.get("credits") or {}).items()
    return {
        k: (Decimal(v) if complete else Decimal(0)) if is_count(k) else Decimal(v) * fraction
        for k, v in credits
        if not is_count(k) or complete
    }


def _cap_usage_of(outcome: Mapping[str, Any], fraction: Decimal) -> dict[str, Decimal]:
    """The share of each capped rule's points a reversal gives back to the member's cap (``rule:<id>`` buckets)."""
    usage: dict[str, Decimal] = defaultdict(Decimal)
    for award in outcome.get("awards") or ():
        if award.get("rule_id"):
            usage[f"rule:{award['rule_id']}"] += Decimal(award["points"]) * fraction
    return dict(usage)


async def stored_event_context(ctx: PipelineContext, event: Any) -> EventContext:
    """What plugin hooks about a stored event receive (its attributes decoded by its type's schema when it has one);
    ``event`` is an ``Event`` or a row of the events table."""
    member = (await ctx.session.execute(select(Member).where(Member.id == event.member_id))).scalar_one()
    event_type = ctx.plugins.event_types().get(event.type)
    attributes: Any = dict(event.attributes)
    if event_type is not None and event_type.attributes is not None:
        attributes = msgspec.convert(attributes, event_type.attributes)
    view = EventView(
        event.id,
        event.event_id,
        event.type,
        event.occurred_at,
        event.amount,
        event.currency,
        event.quantity,
        event.unit,
        attributes,
        dict(event.attributes),
    )
    tenant = ctx.tenant_view()
    return EventContext(
        tenant=tenant,
        session=ctx.session,
        now=ctx.now,
        services=ctx.plugins.services(ctx.session, tenant, ctx.now),
        event=view,
        member=member_view_of(member, ctx.config),
    )


def _split(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` across entries in proportion to their points (largest remainder), never above each entry."""
    whole = sum(weights)
    if whole <= 0 or total <= 0:
        return [0] * len(weights)
    raw = [Decimal(total) * w / whole for w in weights]
    shares = [int(r) for r in raw]
    order = sorted(range(len(weights)), key=lambda i: raw[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return [min(s, w) for s, w in zip(shares, weights, strict=True)]
