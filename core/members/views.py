"""The read-only view of a member that plugin hooks receive."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from core.members.models import Member
from core.plugin_types import MemberView


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
