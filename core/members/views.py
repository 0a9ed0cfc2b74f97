"""The read-only view of a member that plugin hooks receive."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.lookup import one_or_404
from core.members.models import Member
from core.plugin.types import MemberView
from core.tiers.models import Tier


class HasCodeAndRank(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def rank(self) -> int: ...


def member_view(member: Member | Any, tier: HasCodeAndRank | None = None, segments: Iterable[str] = ()) -> MemberView:
    """``member``: a Member, or any row with its columns (the event pipeline reads plain rows)."""
    return MemberView(
        id=member.id,
        external_id=member.external_id,
        enrolled_at=member.created_at,
        tier=tier.code if tier else None,
        tier_rank=tier.rank if tier else None,
        attributes=dict(member.attributes or {}),
        timezone=member.timezone,
        locale=member.locale,
        birthday=member.birthday,
        segments=frozenset(segments),
    )


async def load_member_view(session: AsyncSession, member_id: uuid.UUID) -> MemberView:
    """The member as plugin hooks see it (with its tier's code and rank), for a plugin's routes and jobs.
    Raises ``not-found`` for an unknown member (or another tenant's)."""
    member = await one_or_404(
        session, select(Member).where(Member.id == member_id), "No such member.", field="member_id"
    )
    tier = None
    if member.tier_id is not None:
        tier = (await session.execute(select(Tier).where(Tier.id == member.tier_id))).scalar_one_or_none()
    return member_view(member, tier)
