"""Tier moves decided while computing: the members' new tiers, the tier history and the ``tier_changed`` hooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update

from core.events.pipeline.context import (
    Item,
    PipelineContext,
    activity_at,
    members_table,
    tier_changes_table,
)
from core.ids import new_id
from core.members.views import member_view
from core.plugin.types import (
    TierChange,
)


async def write_tier_moves(ctx: PipelineContext, items: list[Item]) -> None:
    """Moves are dated when the activity that caused them happened (never later than now), and never before the
    member's previous move, so a backfill writes the history live traffic would have written."""
    if not items:
        return
    #: Per member: the values its row ends with after the batch's moves, in order (an upgrade then a renewal in one
    #: batch leaves the upgraded tier, since the upgrade, valid as the renewal says).
    final: dict[uuid.UUID, dict[str, Any]] = {}
    moved_at: dict[int, datetime] = {}
    latest: dict[uuid.UUID, datetime] = {}
    for item in items:
        move = item.tier_move
        assert move is not None and item.member is not None
        at = activity_at(item, ctx.now)
        for earlier in (latest.get(item.member.id), getattr(item.member, "tier_since", None)):
            if earlier is not None and earlier > at:
                at = earlier
        moved_at[item.index] = latest[item.member.id] = at
        values = final.setdefault(item.member.id, {})
        values["tier_valid_until"] = move.valid_until
        if move.reason != "renewal":
            values |= {"tier_id": move.to.id if move.to else None, "tier_since": at}
    for member_id, values in final.items():
        await ctx.session.execute(
            update(members_table)
            .where(members_table.c.tenant_id == ctx.tenant_id, members_table.c.id == member_id)
            .values(values)
        )
    await ctx.session.execute(
        insert(tier_changes_table),
        [
            {
                "tenant_id": ctx.tenant_id,
                "id": new_id(),
                "member_id": i.member.id,
                "from_tier_id": i.tier_before.id if i.tier_before else None,
                "to_tier_id": i.tier_move.to.id if i.tier_move and i.tier_move.to else None,
                "reason": i.tier_move.reason if i.tier_move else "upgrade",
                "valid_until": i.tier_move.valid_until if i.tier_move else None,
                "changed_at": moved_at[i.index],
                "details": {"event_id": i.data.event_id},
            }
            for i in items
        ],
    )
    tenant = ctx.tenant_view()
    for item in items:
        if item.tier_move and item.tier_move.reason != "renewal":
            assert item.member is not None
            member = (
                item.context.member
                if item.context is not None
                else member_view(item.member, item.member_tier, item.segments)
            )
            change = TierChange(
                member,
                item.tier_before.code if item.tier_before else None,
                item.tier_move.to.code if item.tier_move.to else None,
                item.tier_move.reason,
            )
            await ctx.hooks.tier_changed(tenant, change, ctx.session, ctx.now)
