"""Tier moves on the database: recalculation, closing expired status, manual tiers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.ids import new_id
from core.members.models import Member
from core.members.views import member_view
from core.metrics import service as metrics
from core.outbox.service import emit_many
from core.plugin.manager import TenantHooks, plugins_of
from core.plugin.types import TenantView
from core.plugin.types import TierChange as TierChangeView
from core.program.config import TenantConfig
from core.program.settings import ProgramSettings
from core.tiers import rules
from core.tiers.models import TierChange

members_table = table_of(Member)
changes_table = table_of(TierChange)


@dataclass(frozen=True)
class PlannedMove:
    member_id: uuid.UUID
    external_id: str
    from_tier: rules.TierSpec | None
    move: rules.Move


async def plan_moves(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    config: TenantConfig,
    program: ProgramSettings,
    members: Sequence[Member],
    now: datetime,
    *,
    expired_only: bool = False,
) -> list[PlannedMove]:
    """What should happen to each member's tier now: upgrades (and first tiers) at once; renewals and downgrades for
    members whose status validity has ended. One query for everyone's metric sums."""
    if not config.tiers or not members:
        return []
    tz = program.tz
    sums = await metrics.sums(
        session, tenant_id, [m.id for m in members], rules.metric_windows(config.tiers), metrics.local_day(now, tz)
    )
    planned: list[PlannedMove] = []
    for member in members:
        if member.status != "active":
            continue
        current = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
        member_sums = sums.get(member.id, {})
        expired = current is not None and member.tier_valid_until is not None and member.tier_valid_until <= now
        move: rules.Move | None
        if expired:
            assert current is not None
            floor = None
            if member.tier_floor_id and member.tier_floor_until and member.tier_floor_until > now:
                floor = config.tiers_by_id.get(member.tier_floor_id)
            move = rules.at_expiry(config.tiers, current, member_sums, now, tz, floor)
        elif expired_only:
            move = None
        else:
            move = rules.on_activity(config.tiers, current, member.tier_valid_until, member_sums, now, tz)
        if move is not None:
            planned.append(PlannedMove(member.id, member.external_id, current, move))
    return planned


async def apply_moves(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    planned: Sequence[PlannedMove],
    now: datetime,
    *,
    hooks: TenantHooks | None = None,
    tenant: TenantView | None = None,
    reason_prefix: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Write the moves: member rows, tier history (with ``details``), outbox events and plugin notifications."""
    if not planned:
        return
    for p in planned:
        values: dict[str, Any] = {"tier_valid_until": p.move.valid_until}
        if p.move.reason != "renewal":
            values |= {"tier_id": p.move.to.id if p.move.to else None, "tier_since": now}
        await session.execute(
            update(members_table)
            .where(members_table.c.tenant_id == tenant_id, members_table.c.id == p.member_id)
            .values(values)
        )
    await session.execute(
        insert(changes_table),
        [
            {
                "tenant_id": tenant_id,
                "id": new_id(),
                "member_id": p.member_id,
                "from_tier_id": p.from_tier.id if p.from_tier else None,
                "to_tier_id": p.move.to.id if p.move.to else None,
                "reason": f"{reason_prefix}{p.move.reason}"[:32],
                "valid_until": p.move.valid_until,
                "changed_at": now,
                "details": details or {},
            }
            for p in planned
        ],
    )
    changed = [p for p in planned if p.move.reason != "renewal"]
    await emit_many(
        session,
        tenant_id,
        [
            (
                "tier.changed",
                {
                    "member_id": str(p.member_id),
                    "from": p.from_tier.code if p.from_tier else None,
                    "to": p.move.to.code if p.move.to else None,
                    "reason": p.move.reason,
                },
                p.member_id,
            )
            for p in changed
        ],
        now,
    )
    if hooks is not None and tenant is not None and changed:
        rows = {
            m.id: m
            for m in (
                await session.execute(select(Member).where(Member.id.in_([p.member_id for p in changed])))
            ).scalars()
        }
        for p in changed:
            view = member_view(rows[p.member_id])
            await hooks.tier_changed(
                tenant,
                TierChangeView(
                    view,
                    p.from_tier.code if p.from_tier else None,
                    p.move.to.code if p.move.to else None,
                    p.move.reason,
                ),
                session,
                now,
            )


async def after_reversal(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    config: TenantConfig,
    program: ProgramSettings,
    member_id: uuid.UUID,
    now: datetime,
    *,
    hooks: TenantHooks | None,
    tenant: TenantView | None,
    details: dict[str, Any] | None = None,
) -> PlannedMove | None:
    """After a reversal took credits back (they are already out of the metrics): move the member down when the tier
    an automatic upgrade gave them in a still-open window no longer qualifies (:func:`rules.on_reversal`), with
    reason ``reversal``, a history row, ``tier.changed`` and ``fealty_tier_changed``. A few reads, on reversals only."""
    member = (
        await session.execute(
            select(
                members_table.c.id,
                members_table.c.external_id,
                members_table.c.status,
                members_table.c.tier_id,
                members_table.c.tier_floor_id,
                members_table.c.tier_floor_until,
            )
            .where(members_table.c.tenant_id == tenant_id, members_table.c.id == member_id)
            .with_for_update()
        )
    ).one()
    current = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
    if member.status != "active" or current is None or not current.qualification.criteria:
        return None
    rows = await session.execute(
        select(
            changes_table.c.from_tier_id,
            changes_table.c.to_tier_id,
            changes_table.c.reason,
            changes_table.c.valid_until,
            changes_table.c.changed_at,
        )
        .where(changes_table.c.tenant_id == tenant_id, changes_table.c.member_id == member_id)
        .order_by(changes_table.c.changed_at.desc(), changes_table.c.id.desc())
        .limit(50)
    )
    history = [rules.HistoryEntry(r.from_tier_id, r.to_tier_id, r.reason, r.valid_until, r.changed_at) for r in rows]
    reached = rules.reached_by(history, current, config.tiers_by_id)
    if reached is None:
        return None
    tz = program.tz
    sums = await metrics.sums(
        session, tenant_id, [member_id], rules.metric_windows(config.tiers), metrics.local_day(now, tz)
    )
    floor = None
    if member.tier_floor_id and member.tier_floor_until and member.tier_floor_until > now:
        floor = config.tiers_by_id.get(member.tier_floor_id)
    move = rules.on_reversal(config.tiers, current, reached, sums[member_id], now, tz, floor)
    if move is None:
        return None
    planned = PlannedMove(member.id, member.external_id, current, move)
    await apply_moves(session, tenant_id, [planned], now, hooks=hooks, tenant=tenant, details=details)
    return planned


async def assign_tier(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    tier_code: str,
    *,
    until: datetime | None,
    reason: str,
    now: datetime,
) -> None:
    """Put a member in a tier now, as a floor until ``until`` (a status match, a welcome level for new members).

    For plugins and admins alike; the member moves on normally once the floor ends. Without ``until`` the status
    lasts the tier's validity, counted in the program's time zone. A move to another tier is announced like any
    other: ``tier.changed`` in the outbox and the enabled plugins' ``fealty_tier_changed``.
    """
    from core.errors import ValidationFailed
    from core.program.config import load_config
    from core.program.models import Program

    program_row = (
        (await session.execute(select(table_of(Program)).where(table_of(Program).c.tenant_id == tenant_id)))
        .mappings()
        .one()
    )
    program = ProgramSettings.from_mapping(program_row)
    config = await load_config(session, program.config_version)
    target = config.tiers_by_code.get(tier_code)
    if target is None:
        raise ValidationFailed(f"Unknown tier '{tier_code}'.", field="tier")
    member = (await session.execute(select(Member).where(Member.id == member_id).with_for_update())).scalar_one()
    current = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
    valid = until or rules.valid_until(target, now, program.tz)
    kind: Literal["upgrade", "downgrade", "renewal"] = (
        "renewal"
        if current is not None and current.id == target.id
        else "upgrade"
        if current is None or target.rank > current.rank
        else "downgrade"
    )
    plugins = plugins_of(session)
    await apply_moves(
        session,
        tenant_id,
        [PlannedMove(member.id, member.external_id, current, rules.Move(target, valid, kind))],
        now,
        hooks=program.hooks(plugins) if plugins is not None else None,
        tenant=program.tenant_view(tenant_id, plugins) if plugins is not None else None,
        reason_prefix=f"{reason[:20]}:" if reason else "",
    )
    member.tier_floor_id, member.tier_floor_until = target.id, until  # type: ignore[assignment]
    await session.flush()
