"""Computation: plugin validation and screening, the earning rules, plugin awards, qualification credits and the
tier move, item after item in memory (a member's later items see the earlier ones)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
from sqlalchemy import select

from core.earning import engine
from core.errors import Conflict, FealtyError, ValidationFailed
from core.events.pipeline.caps import CapTotals
from core.events.pipeline.context import (
    MAX_EVENT_POINTS,
    Item,
    ItemResult,
    PipelineContext,
    activity_at,
    all_awards,
    events_table,
)
from core.measurement.facts import loyalty_facts, reads_loyalty
from core.members.views import member_view
from core.plugin.types import (
    Award,
    EarlierResult,
    EventContext,
    EventView,
)
from core.qualification import service as metrics
from core.qualification.service import Window
from core.segments.service import member_facts, metric_windows, segments_of
from core.tiers import rules as tier_rules


async def compute(
    ctx: PipelineContext,
    items: list[Item],
    results: list[ItemResult],
    simulate: bool,
    applied: Sequence[Item] = (),
) -> None:
    """Hooks, rules, credits and tier moves for every item, in order (a member's later items see earlier ones).

    An item that fails (a plugin's validation or hook refusing it, a return that cannot be applied, an absurd award)
    gets its error and leaves nothing behind for the items after it. ``applied``: items of the same batch already
    written (when computing again after a failure), which plugins see as earlier items."""
    if not items:
        return
    config, tz, hooks = ctx.config, ctx.program.tz, ctx.hooks
    plugin_hooks = bool(ctx.program.enabled_plugins)  # core's own types implement no per-event hook
    today = metrics.local_day(ctx.now, tz)
    for item in items:
        item.local_day = metrics.local_day(item.data.occurred_at, tz)
    member_ids = sorted({i.member.id for i in items if i.member}, key=str)
    wanted: set[tuple[str, Window]] = set(tier_rules.metric_windows(config.tiers))
    if config.needs_segments:
        wanted |= metric_windows(config.segments)
    for rule in config.capped:
        wanted |= {(f"rule:{rule.id}", Window("rolling_days", 1)), (f"rule:{rule.id}", Window("calendar_month"))}
    sums = await metrics.sums(ctx.session, ctx.tenant_id, member_ids, wanted, today) if wanted else {}
    # Segments over the nightly loyalty figures (an "at risk" campaign): one query for the batch's members.
    loyalty = (
        await loyalty_facts(ctx.session, ctx.tenant_id, member_ids)
        if config.needs_segments and reads_loyalty(c.field for s in config.segments for c in s.conditions)
        else {}
    )
    caps = await CapTotals.read(ctx, items, sums, today)
    # A backdated item (an import, a late batch) qualifies over the rolling windows that ended on its own day, as it
    # would have live; one more query, only when a batch holds such items and the program has such windows.
    moves = metrics.PastWindows.moves(wanted)
    backdated = [i for i in items if i.member is not None and i.local_day < today] if moves else []
    past = (
        await metrics.PastWindows.read(
            ctx.session,
            ctx.tenant_id,
            sorted({i.member.id for i in backdated if i.member}, key=str),
            wanted,
            [i.local_day for i in backdated],
        )
        if backdated
        else None
    )
    tenant = ctx.tenant_view()
    services = ctx.plugins.services(ctx.session, tenant, ctx.now)
    tier_of: dict[uuid.UUID, tier_rules.TierSpec | None] = {}
    valid_until: dict[uuid.UUID, datetime | None] = {}
    earlier: dict[uuid.UUID, list[Item]] = defaultdict(list)
    for done in applied:
        assert done.member is not None
        earlier[done.member.id].append(done)
    #: The share of each purchase this batch's returns already take back.
    returned: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for item in items:
        assert item.member is not None
        member = item.member
        if member.id not in tier_of:
            tier_of[member.id] = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
            valid_until[member.id] = member.tier_valid_until
        tier = tier_of[member.id]
        member_sums = sums.get(member.id, {})
        in_the_past = item.local_day < today
        window_sums = (
            past.sums(member.id, item.local_day, member_sums) if past is not None and in_the_past else member_sums
        )
        facts = member_facts(
            member,
            tier=tier,
            last_activity_at=item.last_activity_at,
            now=ctx.now,
            sums=window_sums,
            loyalty=loyalty.get(member.id),
        )
        segments: set[str] = segments_of(config.segments, facts) if config.needs_segments else set()
        if segments:
            facts["member"]["segments"] = sorted(segments)
        local = item.data.occurred_at.astimezone(tz)
        event_facts = {
            "type": item.data.type,
            "amount": item.amount,
            "currency": item.currency,
            "quantity": item.quantity,
            "unit": item.data.unit,
            "weekday": local.isoweekday(),
            "hour": local.hour,
            "attributes": msgspec.to_builtins(item.attributes)
            if not isinstance(item.attributes, dict)
            else item.attributes,
        }
        # The plugins' views of the event and the member (and the earlier items they see) are built only for a
        # tenant with plugins: core's own types implement no per-event hook, and a batch of 1,000 spent a tenth of
        # its time building them. A tier move's hook builds its member view itself (tier_moves).
        item.member_tier, item.segments = tier, segments
        context: EventContext | None = None
        if plugin_hooks:
            view = EventView(
                item.event_uuid,
                item.data.event_id,
                item.data.type,
                item.data.occurred_at,
                item.amount,
                item.currency,
                item.quantity,
                item.data.unit,
                item.attributes,
                dict(item.data.attributes),
            )
            mview = member_view(member, tier, segments)
            context = EventContext(
                tenant=tenant,
                event=view,
                member=mview,
                session=ctx.session,
                now=ctx.now,
                services=services,
                simulate=simulate,
                earlier=tuple(e.context.event for e in earlier[member.id] if e.context is not None),
                earlier_results=tuple(
                    EarlierResult(
                        e.context.event,
                        e.status,  # type: ignore[arg-type]
                        tuple(all_awards(e, ctx.now)) if e.status == "awarded" else (),
                    )
                    for e in earlier[member.id]
                    if e.context is not None
                ),
                decision=ctx.decision if item.existing_id is not None else None,
            )
            item.context = context
        try:
            issues = await hooks.validate_event(context) if context is not None else []
            if issues:
                raise ValidationFailed(
                    f"{issues[0].field}: {issues[0].detail}",
                    field=issues[0].field,
                    errors=[{"field": i.field, "detail": i.detail} for i in issues],
                )
            if item.data.type == "return":
                await _plan_return(ctx, item, returned)
            if context is not None and item.existing_id is None and item.data.type != "return":
                screening = await hooks.screen_event(context)
                if screening is not None:
                    item.status = "held" if screening.action == "hold" else "rejected"
                    item.reason = f"{screening.code}: {screening.reason}"
            if item.status == "awarded" and item.data.type != "return":
                multiplier = tier.benefits.earning_multiplier if tier else None
                item.lines = engine.compute(
                    config.rules,
                    {"event": event_facts, **facts},
                    occurred_at=item.data.occurred_at,
                    program_currency=ctx.program.currency,
                    tier_multiplier=multiplier,
                    tier_name=tier.name if tier else None,
                    usage=caps.usage(member.id, item.local_day),
                )
                rule_awards = [_award_of(line, ctx.now) for line in item.lines]
                item.plugin_awards = await hooks.compute_awards(context, rule_awards) if context is not None else []
                item.awards = [*rule_awards, *item.plugin_awards]
                _check_points(item)
                plugin_credits = await hooks.qualifying_credits(context, item.awards) if context is not None else {}
                item.credits = _credits(item, plugin_credits, ctx.program.currency)
        except FealtyError as error:
            results[item.index].error = error
            continue
        # The item stands: what it takes and earns counts for the items after it.
        earlier[member.id].append(item)
        if item.original is not None:
            returned[item.original.id] += item.reverse_fraction or Decimal(0)
        if item.status != "awarded" or item.data.type == "return":
            continue
        for key, value in item.credits.items():  # this batch's later items and the tier check see them ...
            for window in {w for metric, w in wanted if metric == key}:
                start = window.start(today)
                if start is None or item.local_day >= start:  # ... in the windows the stored sums cover
                    member_sums[(key, window.key)] = member_sums.get((key, window.key), Decimal(0)) + value
            if past is not None:  # ... and in the windows of the batch's backdated items
                past.add(member.id, key, item.local_day, value)
        caps.add(member.id, item.local_day, item.lines)
        sums[member.id] = member_sums
        if config.tiers:
            qualifying = (
                past.sums(member.id, item.local_day, member_sums) if past is not None and in_the_past else member_sums
            )
            move = tier_rules.on_activity(
                config.tiers, tier, valid_until[member.id], qualifying, activity_at(item, ctx.now), tz
            )
            if move is not None:
                item.tier_before, item.tier_move = tier, move
                tier_of[member.id], valid_until[member.id] = move.to, move.valid_until


def _check_points(item: Item) -> None:
    """Refuse an event that would earn more than :data:`MAX_EVENT_POINTS` (naming the number that drove it)."""
    if sum(a.points for a in item.awards) > MAX_EVENT_POINTS:
        field_name = "amount" if item.amount is not None else "quantity" if item.quantity is not None else None
        raise ValidationFailed(
            f"This event would earn more than {MAX_EVENT_POINTS:,} points; check its amount and quantity.",
            field=field_name,
        )


def _award_of(line: engine.AwardLine, now: datetime) -> Award:
    available_at = now + timedelta(days=line.pending_days) if line.pending_days else None
    source = f"rule:{line.rule_id}" if line.rule_id else line.kind
    return Award(
        line.points,
        f"{line.rule_name} ({line.basis})",
        source,
        available_at,
        line.base,
        {
            "rule_id": str(line.rule_id) if line.rule_id else None,
            "kind": line.kind,
            "capped_from": line.capped_from,
            "campaign_id": str(line.campaign_id) if line.campaign_id else None,
        },
    )


def _credits(item: Item, plugin_credits: dict[str, Decimal], currency: str) -> dict[str, Decimal]:
    awards = [*item.lines]
    credits: dict[str, Decimal] = defaultdict(Decimal)
    credits["events"] += 1
    credits[f"count:{item.data.type}"] += 1
    if item.amount is not None and item.currency == currency:
        credits["spend"] += item.amount
    points = sum(line.points for line in awards) + sum(a.points for a in item.plugin_awards)
    base = sum(line.points for line in awards if line.base) + sum(a.points for a in item.plugin_awards if a.base)
    if points:
        credits["points"] += points
    if base:
        credits["base_points"] += base
    for name, value in plugin_credits.items():
        credits[name] += Decimal(value)
    return {k: v for k, v in credits.items() if v}


async def _plan_return(ctx: PipelineContext, item: Item, returned: Mapping[uuid.UUID, Decimal]) -> None:
    """A return reverses the same share of its purchase: return amount / purchase amount (capped at what is left,
    after ``returned``, what this batch's earlier returns take). It is in the purchase's currency (by default)."""
    original_id = item.attributes.original_event_id
    row = (
        await ctx.session.execute(
            select(events_table).where(
                events_table.c.tenant_id == ctx.tenant_id, events_table.c.event_id == original_id
            )
        )
    ).first()
    assert item.member is not None
    if row is None or row.member_id != item.member.id:
        raise ValidationFailed("No purchase of this member has that event_id.", field="attributes.original_event_id")
    if row.status != "awarded" or not row.amount:
        raise Conflict("Only an awarded event with an amount can be returned.", field="attributes.original_event_id")
    assert item.amount is not None
    if item.data.currency is None:
        item.currency = row.currency
    elif item.currency != row.currency:
        raise ValidationFailed(
            f"The purchase was in {row.currency}; its return must be in {row.currency} too.", field="currency"
        )
    left = Decimal(1) - row.reversed_fraction - returned.get(row.id, Decimal(0))
    if left <= 0:
        raise Conflict("That purchase has already been returned in full.", field="attributes.original_event_id")
    item.original = row
    item.reverse_fraction = min(left, item.amount / row.amount)
