"""The program's tiers as a service: the tier definitions and their checks, which tiers exist, and creating one
with exactly the checks of ``POST /v1/tiers`` (which calls it, as plugins setting up their defaults do)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, ValidationFailed, invalid
from core.program.config import bump_config_version
from core.tiers import rules
from core.tiers.models import Tier

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class TierIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=40, pattern=CODE.pattern)]
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    #: 0 is the entry level; higher is better.
    rank: Annotated[int, Meta(ge=0, le=100)]
    qualification: rules.Qualification = msgspec.field(default_factory=rules.Qualification)
    benefits: rules.Benefits = msgspec.field(default_factory=rules.Benefits)
    validity: rules.Validity = msgspec.field(default_factory=rules.Validity)
    downgrade: Literal["one_step", "to_qualified"] = "one_step"


class TierUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)] | UnsetType = UNSET
    rank: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET
    qualification: rules.Qualification | UnsetType = UNSET
    benefits: rules.Benefits | UnsetType = UNSET
    validity: rules.Validity | UnsetType = UNSET
    downgrade: Literal["one_step", "to_qualified"] | UnsetType = UNSET


async def tier_codes(session: AsyncSession) -> list[str]:
    """The codes of the current tenant's tiers, lowest rank first (empty: the program has no tiers)."""
    return list((await session.execute(select(Tier.code).order_by(Tier.rank))).scalars())


async def create_tier(session: AsyncSession, definition: Mapping[str, Any]) -> uuid.UUID:
    """Create a tier for the current tenant from a ``POST /v1/tiers`` body (``code``, ``name``, ``rank``,
    ``qualification``, ``benefits``, ``validity``, ``downgrade``), validated the same way: bad input is a 422 naming
    the field, another tier with the code or rank a 409. In the caller's transaction; returns the tier's id."""
    try:
        data = msgspec.convert(dict(definition), TierIn)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None
    return (await add_tier(session, data)).id


async def add_tier(session: AsyncSession, data: TierIn) -> Tier:
    """Store a new tier after the checks every way of creating one shares (code, qualification, validity, a unique
    code and rank), and bump the program's configuration version."""
    if not CODE.match(data.code):
        raise ValidationFailed("code: lower-case letters, digits, - and _.", field="code")
    check(data)
    await check_unique(session, code=data.code, rank=data.rank)
    tier = Tier(id=uuid.uuid4(), code=data.code)
    store(tier, data)
    session.add(tier)
    await session.flush()
    await bump_config_version(session)
    return tier


def check(data: TierIn | TierUpdate) -> None:
    qualification = data.qualification
    if isinstance(qualification, rules.Qualification):
        window = qualification.window
        if window.kind == "rolling_days" and window.days is None:
            raise ValidationFailed("A rolling window needs days.", field="qualification.window.days")
        for i, criterion in enumerate(qualification.criteria):
            if not criterion.min.is_finite() or criterion.min <= 0:
                raise ValidationFailed("min must be a positive number.", field=f"qualification.criteria[{i}].min")
    validity = data.validity
    if isinstance(validity, rules.Validity) and validity.kind == "days" and validity.days is None:
        raise ValidationFailed("A validity of kind 'days' needs days.", field="validity.days")
    benefits = data.benefits
    if isinstance(benefits, rules.Benefits) and benefits.earning_multiplier is not None:
        m = benefits.earning_multiplier
        if not m.is_finite() or not Decimal(0) < m <= 10:
            raise ValidationFailed(
                "earning_multiplier must be more than 0 and at most 10.", field="benefits.earning_multiplier"
            )


async def check_unique(
    db: Any, *, code: str | None = None, rank: int | None = None, exclude: uuid.UUID | None = None
) -> None:
    for field, value in (("code", code), ("rank", rank)):
        if value is None:
            continue
        query = select(Tier.id).where(getattr(Tier, field) == value)
        if exclude:
            query = query.where(Tier.id != exclude)
        if (await db.execute(query)).first():
            raise Conflict(f"Another tier already has this {field}.", field=field)


def store(tier: Tier, data: TierIn | TierUpdate) -> None:
    for name in ("name", "rank", "downgrade"):
        value = getattr(data, name)
        if value is not UNSET:
            setattr(tier, name, value)
    for name in ("qualification", "benefits", "validity"):
        value = getattr(data, name)
        if value is not UNSET:
            setattr(tier, name, msgspec.to_builtins(value))
