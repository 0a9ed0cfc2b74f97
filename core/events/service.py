"""The events' use cases outside the pipeline itself: a pipeline run's context, and the decisions on held events
(``POST /v1/events/{id}/approve|reject`` and any plugin's own review queue call the same two functions)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import Conflict
from core.events import pipeline
from core.events.models import Event
from core.members.models import Member
from core.outbox.service import emit
from core.plugin.types import Decision
from core.program.settings import ProgramSettings
from core.runtime import Runtime


async def pipeline_context(
    session: AsyncSession, runtime: Runtime, program: ProgramSettings, *, tenant_id: uuid.UUID, actor: str
) -> pipeline.PipelineContext:
    """What a pipeline run for this tenant needs (its compiled configuration read through the runtime's cache)."""
    config = await runtime.configs.get(session, tenant_id, program.config_version)
    return pipeline.PipelineContext(
        session=session,
        tenant_id=tenant_id,
        program=program,
        config=config,
        plugins=runtime.plugins,
        now=utcnow(),
        actor=actor,
        max_future=runtime.settings.max_event_future,
    )


async def get_event(session: AsyncSession, event_id: uuid.UUID, *, lock: bool = False) -> Event:
    """The tenant's event ``event_id`` (404 problem if none)."""
    query = select(Event).where(Event.id == event_id)
    if lock:
        query = query.with_for_update()
    event = await one_or_404(session, query, "No such event.", field="id")
    return event


async def _claim_held(session: AsyncSession, event_id: uuid.UUID) -> Event:
    """Take the held event for a decision: one atomic status change, so two deciders never both decide."""
    await get_event(session, event_id)
    claimed = (
        await session.execute(
            update(Event)
            .where(Event.id == event_id, Event.status == "held")
            .values(status="processing")
            .returning(Event.id)
        )
    ).first()
    if claimed is None:
        event = await get_event(session, event_id)
        raise Conflict(f"This event is not held for review (it is {event.status}).", field="id")
    return await get_event(session, event_id)


async def approve_held(
    session: AsyncSession,
    runtime: Runtime,
    program: ProgramSettings,
    event_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    reason: str,
) -> Event:
    """Approve an event held for review: it earns now (the pipeline runs it again, with the decision handed to the
    plugins' hooks), exactly once however often this is called. Returns the event as stored."""
    event = await _claim_held(session, event_id)
    member = (await session.execute(select(Member).where(Member.id == event.member_id))).scalar_one()
    data = pipeline.EventIn(
        type=event.type,
        event_id=event.event_id,
        member=pipeline.MemberRef(member_id=member.id),
        occurred_at=event.occurred_at,
        amount=event.amount,
        currency=event.currency,
        quantity=event.quantity,
        unit=event.unit,
        attributes=dict(event.attributes),
    )
    ctx = await pipeline_context(session, runtime, program, tenant_id=tenant_id, actor=actor)
    ctx.decision = Decision("approved", reason, actor, ctx.now)
    result = (await pipeline.process(ctx, [data], existing={0: event.id}))[0]
    if result.error is not None:
        raise result.error
    await session.execute(update(Event).where(Event.id == event.id).values(status_reason=f"approved: {reason}"))
    await session.refresh(event)
    return event


async def reject_held(
    session: AsyncSession,
    runtime: Runtime,
    program: ProgramSettings,
    event_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    reason: str,
) -> Event:
    """Reject an event held for review: it never earns. The enabled plugins' ``fealty_event_processed`` hears of it
    (status ``rejected``, with the decision), in this transaction, as it heard of the hold. Returns the event."""
    event = await _claim_held(session, event_id)
    ctx = await pipeline_context(session, runtime, program, tenant_id=tenant_id, actor=actor)
    await session.execute(
        update(Event)
        .where(Event.id == event.id)
        .values(status="rejected", status_reason=f"rejected: {reason}", decided_by=actor, decided_at=ctx.now)
    )
    if program.enabled_plugins:
        hook_ctx = replace(
            await pipeline.stored_event_context(ctx, event), decision=Decision("rejected", reason, actor, ctx.now)
        )
        await ctx.hooks.event_processed(hook_ctx, "rejected", [], {})
    data: dict[str, Any] = {
        "id": str(event.id),
        "event_id": event.event_id,
        "member_id": str(event.member_id),
        "reason": reason,
    }
    await emit(session, tenant_id, "event.rejected", data, event.member_id)
    await session.refresh(event)
    return event
