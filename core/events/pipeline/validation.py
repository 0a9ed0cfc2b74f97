"""Validation: everything that can be checked of an item without the database."""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from core import validation
from core.errors import ValidationFailed, invalid
from core.events.pipeline.context import (
    MAX_AMOUNT,
    EventIn,
    Item,
    PipelineContext,
)


def _hash(item: EventIn) -> str:
    return hashlib.sha256(msgspec.json.encode(msgspec.to_builtins(item), order="sorted")).hexdigest()


def _decimal(value: Decimal | None, field_name: str, *, positive: bool) -> Decimal | None:
    if value is None:
        return None
    try:
        if not value.is_finite() or abs(value) >= MAX_AMOUNT:
            raise InvalidOperation
        if value.as_tuple().exponent < -4:  # type: ignore[operator]
            raise ValidationFailed(f"{field_name} has more than 4 decimal places.", field=field_name)
    except InvalidOperation:
        raise ValidationFailed(f"{field_name} is not a usable number.", field=field_name) from None
    if positive and value <= 0:
        raise ValidationFailed(f"{field_name} must be greater than zero.", field=field_name)
    if value < 0:
        raise ValidationFailed(f"{field_name} must not be negative.", field=field_name)
    return value


def validate(ctx: PipelineContext, index: int, data: EventIn) -> Item:
    """Everything that can be checked without the database (raises ValidationFailed naming the field)."""
    types = ctx.plugins.event_types()
    event_type = types.get(data.type)
    if event_type is None or (event_type.plugin and event_type.plugin not in ctx.program.enabled_plugins):
        known = sorted(n for n, t in types.items() if t.plugin is None or t.plugin in ctx.program.enabled_plugins)
        raise ValidationFailed(f"Unknown event type '{data.type}'; this program accepts {known}.", field="type")
    ref = data.member
    given = [name for name in ("member_id", "external_id", "card", "phone") if getattr(ref, name) is not None]
    if len(given) != 1:
        raise ValidationFailed(
            "Identify the member by exactly one of member_id, external_id, card, phone.", field="member"
        )
    if data.occurred_at > ctx.now + ctx.max_future:
        raise ValidationFailed("occurred_at is in the future.", field="occurred_at")
    amount = _decimal(data.amount, "amount", positive=event_type.requires_amount)
    quantity = _decimal(data.quantity, "quantity", positive=event_type.requires_quantity)
    if event_type.requires_amount and amount is None:
        raise ValidationFailed(f"Events of type '{data.type}' need an amount.", field="amount")
    if event_type.requires_quantity and quantity is None:
        raise ValidationFailed(f"Events of type '{data.type}' need a quantity.", field="quantity")
    currency = validation.currency(data.currency) if data.currency else (ctx.program.currency if amount else None)
    attributes: Any = dict(data.attributes)
    if event_type.attributes is not None:
        try:
            attributes = msgspec.convert(data.attributes, event_type.attributes)
        except msgspec.ValidationError as exc:
            raise invalid(str(exc), "attributes") from None
    return Item(index, data, event_type, attributes, _hash(data), amount, currency, quantity)
