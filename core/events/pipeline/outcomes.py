"""Outcomes: the stored event row, the answer the API gives (stored too, so a retry gets the very same) and the
domain events for the outbox."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from core.events.pipeline.context import (
    Item,
    PipelineContext,
    all_awards,
)
from core.plugin.types import (
    Award,
)


def event_row(ctx: PipelineContext, item: Item) -> dict[str, Any]:
    assert item.member is not None
    outcome = item.outcome = outcome_of(ctx, item, simulate=False)
    return {
        "tenant_id": ctx.tenant_id,
        "id": item.event_uuid,
        "event_id": item.data.event_id,
        "type": item.data.type,
        "member_id": item.member.id,
        "occurred_at": item.data.occurred_at,
        "received_at": ctx.now,
        "local_day": item.local_day,
        "amount": item.amount,
        "currency": item.currency,
        "quantity": item.quantity,
        "unit": item.data.unit,
        "attributes": dict(item.data.attributes),
        "status": item.status,
        "status_reason": item.reason,
        "points": outcome["points"],
        "reversed_points": 0,
        "reversed_fraction": Decimal(0),
        "request_hash": item.request_hash,
        "outcome": outcome,
        "original_event_id": item.original.id if item.original is not None else None,
        "decided_by": None,
        "decided_at": None,
    }


def outcome_of(ctx: PipelineContext, item: Item, simulate: bool) -> dict[str, Any]:
    """What the API answers for an event (and stores, so a retry gets the very same answer)."""
    assert item.member is not None
    awards = [
        {
            "source": a.source,
            "reason": a.reason,
            "points": a.points,
            "base": a.base,
            "available_at": a.available_at.isoformat() if a.available_at else None,
        }
        | {k: v for k, v in a.detail.items() if v is not None and k in RULE_AWARD_FIELDS}
        | _plugin_detail(a)
        for a in all_awards(item, ctx.now)
    ]
    points = sum(a.points for a in all_awards(item, ctx.now))
    move = item.tier_move
    return {
        "id": str(item.event_uuid),
        "event_id": item.data.event_id,
        "type": item.data.type,
        "member_id": str(item.member.id),
        "occurred_at": item.data.occurred_at.isoformat(),
        "status": item.status,
        "reason": item.reason,
        "points": points if item.status == "awarded" else 0,
        "awards": awards if item.status == "awarded" else [],
        "credits": {k: str(v) for k, v in sorted(item.credits.items())},
        "tier": None
        if move is None
        else {
            "from": item.tier_before.code if item.tier_before else None,
            "to": move.to.code if move.to else None,
            "reason": move.reason,
            "valid_until": move.valid_until.isoformat() if move.valid_until else None,
        },
        "returns": None
        if item.original is None
        else {
            "original_event_id": item.original.event_id,
            "fraction": str(item.reverse_fraction),
        },
        "simulated": simulate,
    }


#: What a rule's award says of itself (listed as fields of each award); anything else an award carries is the
#: plugin's own ``detail`` (eligible amount, rate...), answered under ``detail``.
RULE_AWARD_FIELDS = frozenset({"rule_id", "kind", "capped_from", "campaign_id"})


def _plugin_detail(award: Award) -> dict[str, Any]:
    extra = {k: v for k, v in award.detail.items() if v is not None and k not in RULE_AWARD_FIELDS}
    return {"detail": extra} if extra else {}


def domain_events(ctx: PipelineContext, item: Item) -> list[tuple[str, dict[str, Any], uuid.UUID | None]]:
    assert item.member is not None
    member_id = item.member.id
    data = {
        "event_id": item.data.event_id,
        "id": str(item.event_uuid),
        "member_id": str(member_id),
        "type": item.data.type,
        "status": item.status,
    }
    kind = "event.processed" if item.status == "awarded" else f"event.{item.status}"
    out: list[tuple[str, dict[str, Any], uuid.UUID | None]] = [(kind, data, member_id)]
    points = sum(a.points for a in all_awards(item, ctx.now)) if item.status == "awarded" else 0
    if points:
        out.append(("points.earned", data | {"points": points}, member_id))
    if item.tier_move is not None and item.tier_move.reason != "renewal":
        out.append(
            (
                "tier.changed",
                {
                    "member_id": str(member_id),
                    "from": item.tier_before.code if item.tier_before else None,
                    "to": item.tier_move.to.code if item.tier_move.to else None,
                    "reason": item.tier_move.reason,
                },
                member_id,
            )
        )
    return out
