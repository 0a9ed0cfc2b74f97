"""Tier moves decided while computing: the members' new tiers, the tier history and the ``tier_changed`` hooks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, update

from core.events.pipeline.context import (
    Item,
    PipelineContext,
    members_table,
    tier_changes_table,
)
from core.ids import new_id
from core.plugin.types import (
    TierChange,
)


async def write_tier_moves(ctx: PipelineContext, items: list[Item]) -> None:
    if not items:
        return
    final: dict[uuid.UUID, Item] = {}
    for item in items:
        assert item.member is not None
        final[item.member.id] = item
    for member_id, item in final.items():
        move = item.tier_move
        assert move is not None and item.member is not None
        values: dict[str, Any] = {"tier_valid_until": move.valid_until}
        if move.reason != "renewal":
            values |= {"tier_id": move.to.id if move.to else None, "tier_since": ctx.now}
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
                "changed_at": ctx.now,
                "details": {"event_id": i.data.event_id},
            }
            for i in items
        ],
    )
    tenant = ctx.tenant_view()
    for item in items:
        if item.tier_move and item.tier_move.reason != "renewal":
            assert item.context is not None
            change = TierChange(
                item.context.member,
                item.tier_before.code if item.tier_before else None,
                item.tier_move.to.code if item.tier_move.to else None,
                item.tier_move.reason,
            )
            await ctx.hooks.tier_changed(tenant, change, ctx.session, ctx.now)
