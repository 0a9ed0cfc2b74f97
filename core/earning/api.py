"""HTTP: earning rules (the tenant's rules as data)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.clock import utcnow
from core.db.lookup import one_or_404
from core.decimals import decimal_bounds
from core.earning.conditions import Condition, ConditionError
from core.earning.engine import Caps, Rounding, RuleDefinition, RuleKind, Stacking, validate_definition
from core.earning.models import EarningRule
from core.errors import ValidationFailed, invalid
from core.http.deps import CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.program.config import bump_config_version
from core.runtime import Runtime
from core.validation import AwareDatetime


class RuleOut(msgspec.Struct):
    id: uuid.UUID
    active: bool
    campaign_id: uuid.UUID | None
    definition: RuleDefinition
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: EarningRule) -> RuleOut:
        return cls(
            rule.id,
            rule.active,
            rule.campaign_id,
            msgspec.convert(rule.definition, RuleDefinition),
            rule.created_at,
            rule.updated_at,
        )


def checked_definition(definition: RuleDefinition, runtime: Runtime, path: str = "") -> dict[str, Any]:
    """Validate a rule beyond its schema and return it as stored (raises 422 naming the field)."""
    prefix = f"{path}." if path else ""
    try:
        validate_definition(definition)
    except ConditionError as exc:
        raise ValidationFailed(f"{prefix}{exc}", field=f"{prefix}{exc.path}") from None
    if definition.currency is not None:
        definition.currency = validation.currency(definition.currency, field=f"{prefix}currency")
    known = runtime.plugins.event_types()
    unknown = [t for t in definition.event_types if t not in known]
    if unknown:
        raise ValidationFailed(f"Unknown event type(s) {unknown}.", field=f"{prefix}event_types")
    built: dict[str, Any] = msgspec.to_builtins(definition)
    return built


async def _rule(db: AsyncSession, rule_id: uuid.UUID) -> EarningRule:
    rule = await one_or_404(
        db, select(EarningRule).where(EarningRule.id == rule_id), "No such earning rule.", field="rule_id"
    )
    return rule


class RulePatch(msgspec.Struct, forbid_unknown_fields=True):
    """A ``PATCH /v1/earning-rules/{id}`` body: any field of a rule's definition (see ``RuleDefinition``), and
    ``active``; what is not given stays as it is."""

    active: bool | UnsetType = UNSET
    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    kind: RuleKind | UnsetType = UNSET
    points: Decimal | UnsetType = UNSET
    per: Annotated[Decimal, decimal_bounds(gt=0, le=1_000_000, places=4)] | UnsetType = UNSET
    rounding: Rounding | UnsetType = UNSET
    whole_units: bool | UnsetType = UNSET
    currency: str | UnsetType | None = UNSET
    applies_to: Literal["base", "all"] | UnsetType = UNSET
    event_types: list[str] | UnsetType = UNSET
    conditions: list[Condition] | UnsetType = UNSET
    match: Literal["all", "any"] | UnsetType = UNSET
    valid_from: AwareDatetime | UnsetType | None = UNSET
    valid_until: AwareDatetime | UnsetType | None = UNSET
    caps: Caps | UnsetType | None = UNSET
    priority: int | UnsetType = UNSET
    stacking: Stacking | UnsetType | None = UNSET
    base: bool | UnsetType | None = UNSET
    pending_days: Annotated[int, Meta(ge=0, le=3650)] | UnsetType = UNSET


class EarningRulesController(Controller):
    path = "/v1/earning-rules"
    tags = ["earning-rules"]

    @post(operation_id="createEarningRule")
    async def create(self, db: Db, runtime: CurrentRuntime, data: JSONBody[RuleDefinition]) -> RuleOut:
        """A rule: per currency unit, per unit of quantity, a fixed bonus or a multiplier, with conditions, a validity
        window, caps, priority and stacking. It applies to events from the next request on."""
        rule = EarningRule(id=uuid.uuid4(), definition=checked_definition(data, runtime), active=True)
        db.add(rule)
        await db.flush()
        await bump_config_version(db)
        return RuleOut.of(rule)

    @get(operation_id="listEarningRules")
    async def list_rules(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        active: FromQuery[bool | None] = None,
        campaign_id: FromQuery[uuid.UUID | None] = None,
    ) -> Page[RuleOut]:
        check_limit(limit)
        query = select(EarningRule).order_by(EarningRule.id).limit(limit + 1)
        if cursor:
            query = query.where(EarningRule.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        if active is not None:
            query = query.where(EarningRule.active.is_(active))
        if campaign_id is not None:
            query = query.where(EarningRule.campaign_id == campaign_id)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([RuleOut.of(r) for r in items], next_cursor)

    @get("/{rule_id:uuid}", operation_id="getEarningRule")
    async def get_rule(self, db: Db, rule_id: FromPath[uuid.UUID]) -> RuleOut:
        return RuleOut.of(await _rule(db, rule_id))

    @patch("/{rule_id:uuid}", operation_id="updateEarningRule")
    async def update_rule(
        self, db: Db, runtime: CurrentRuntime, rule_id: FromPath[uuid.UUID], data: JSONBody[RulePatch]
    ) -> RuleOut:
        """Change some fields of the rule (``active`` switches it on or off); the result is validated whole. Unknown
        fields are refused, like everywhere."""
        rule = await _rule(db, rule_id)
        changes = {
            name: msgspec.to_builtins(value)
            for name in RulePatch.__struct_fields__
            if (value := getattr(data, name)) is not UNSET
        }
        if "active" in changes:
            rule.active = bool(changes.pop("active"))
        if changes:
            merged = {**rule.definition, **changes}
            try:
                definition = msgspec.convert(merged, RuleDefinition)
            except msgspec.ValidationError as exc:
                raise invalid(str(exc)) from None
            rule.definition = checked_definition(definition, runtime)
        rule.updated_at = utcnow()
        await db.flush()
        await bump_config_version(db)
        return RuleOut.of(rule)

    @delete("/{rule_id:uuid}", operation_id="deleteEarningRule", status_code=200)
    async def delete_rule(self, db: Db, rule_id: FromPath[uuid.UUID]) -> RuleOut:
        """Switch the rule off for good. It stays stored: past awards keep naming it."""
        rule = await _rule(db, rule_id)
        rule.active = False
        rule.updated_at = utcnow()
        await db.flush()
        await bump_config_version(db)
        return RuleOut.of(rule)
