"""Core's own event types, registered through the same hook as the plugins' (core is its contract's first user: the
plugin manager registers this module first, as the plugin ``core``)."""

from __future__ import annotations

import msgspec

from core.plugin import hookimpl
from core.plugin.types import EventType


class ReturnAttributes(msgspec.Struct, forbid_unknown_fields=False):
    #: The ``event_id`` of the purchase being (partly) returned.
    original_event_id: str
    reason: str | None = None


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return [
        EventType(
            "purchase", "A purchase: earns on its amount (and quantity) by the earning rules.", requires_amount=True
        ),
        EventType(
            "return",
            "A refund of (part of) an earlier purchase: removes the same share of what it earned.",
            attributes=ReturnAttributes,
            requires_amount=True,
        ),
        EventType("custom", "Any other activity; earns by rules that name it in their conditions."),
    ]
