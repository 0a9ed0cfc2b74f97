"""The program's tiers as a service (for plugins setting up their defaults): which tiers exist, and creating one
with exactly the checks of ``POST /v1/tiers``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ValidationFailed, invalid
from core.program.config import bump_config_version
from core.tiers.models import Tier

if TYPE_CHECKING:
    from core.tiers.api import TierIn


async def tier_codes(session: AsyncSession) -> list[str]:
    """The codes of the current tenant's tiers, lowest rank first (empty: the program has no tiers)."""
    return list((await session.execute(select(Tier.code).order_by(Tier.rank))).scalars())


async def create_tier(session: AsyncSession, definition: Mapping[str, Any]) -> uuid.UUID:
    """Create a tier for the current tenant from a ``POST /v1/tiers`` body (``code``, ``name``, ``rank``,
    ``qualification``, ``benefits``, ``validity``, ``downgrade``), validated the same way: bad input is a 422 naming
    the field, another tier with the code or rank a 409. In the caller's transaction; returns the tier's id."""
    from core.tiers.api import TierIn

    try:
        data = msgspec.convert(dict(definition), TierIn)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None
    return (await add_tier(session, data)).id


async def add_tier(session: AsyncSession, data: TierIn) -> Tier:
    """Store a new tier after the checks every way of creating one shares (code, qualification, validity, a unique
    code and rank), and bump the program's configuration version."""
    from core.tiers.api import CODE, _check, _store, _unique

    if not CODE.match(data.code):
        raise ValidationFailed("code: lower-case letters, digits, - and _.", field="code")
    _check(data)
    await _unique(session, code=data.code, rank=data.rank)
    tier = Tier(id=uuid.uuid4(), code=data.code)
    _store(tier, data)
    session.add(tier)
    await session.flush()
    await bump_config_version(session)
    return tier
