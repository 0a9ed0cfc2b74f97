"""Working out which segments a member is in (pure, from facts and metric sums)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.lookup import one_or_404
from core.earning.conditions import Condition, all_hold
from core.http.pagination import encode_cursor
from core.ledger.models import PointBalance
from core.measurement.facts import loyalty_facts, reads_loyalty
from core.members.models import Member
from core.program.config import SegmentSpec, TenantConfig
from core.program.settings import ProgramSettings
from core.qualification import service as metrics
from core.qualification.service import Window, flatten
from core.segments.models import Segment
from core.tiers.rules import TierSpec


class MemberFields(Protocol):
    """What :func:`member_facts` reads of a member: a stored row, or a view of one with the same names."""

    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def birthday(self) -> date | None: ...


def member_facts(
    member: MemberFields,
    *,
    tier: TierSpec | None,
    last_activity_at: datetime | None,
    now: datetime,
    segments: Iterable[str] = (),
    sums: Mapping[tuple[str, str], Decimal] | None = None,
    loyalty: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``member.*``, ``metric.*`` and ``loyalty.*`` facts conditions read, of ``member`` in ``tier`` at ``now``."""
    return {
        "member": {
            "tier": tier.code if tier else None,
            "tier_rank": tier.rank if tier else None,
            "attributes": dict(member.attributes or {}),
            "locale": member.locale,
            "timezone": member.timezone,
            "days_enrolled": (now - member.created_at).days,
            "days_since_last_activity": (now - last_activity_at).days if last_activity_at else None,
            "birthday_month": member.birthday.month if member.birthday else None,
            "segments": sorted(segments),
        },
        "metric": flatten(sums or {}),
        "loyalty": dict(loyalty or {}),
    }


def metric_windows(segments: Iterable[SegmentSpec]) -> set[tuple[str, Window]]:
    return {(metric, Window.parse(window)) for s in segments for metric, window in s.metric_fields}


def segments_of(segments: Iterable[SegmentSpec], facts: Mapping[str, Any]) -> set[str]:
    return {s.code for s in segments if all_hold(s.conditions, facts, s.match)}  # type: ignore[arg-type]


#: Members examined per page of a segment listing at most (the cursor continues from there).
SCAN_LIMIT = 5000


async def scan_segment(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    program: ProgramSettings,
    config: TenantConfig,
    spec: SegmentSpec,
    *,
    after: uuid.UUID | None,
    limit: int,
    where: Sequence[Any] = (),
) -> tuple[list[Member], str | None]:
    """Members in ``spec`` now, in id order after ``after`` (and matching ``where``), evaluated on the spot.

    Examines at most ``SCAN_LIMIT`` members per call; the returned cursor continues the scan (None at the end).
    """
    windows = {(metric, Window.parse(w)) for metric, w in spec.metric_fields}
    needs_loyalty = reads_loyalty(c.field for c in spec.conditions)
    now = utcnow()
    today = metrics.local_day(now, program.tz)
    found: list[Member] = []
    scanned = 0
    last = after
    exhausted = False
    while len(found) < limit and scanned < SCAN_LIMIT:
        query = (
            select(Member, PointBalance.last_activity_at)
            .join(PointBalance, PointBalance.member_id == Member.id)
            .where(*where)
            .order_by(Member.id)
            .limit(min(500, SCAN_LIMIT - scanned))
        )
        if last is not None:
            query = query.where(Member.id > last)
        chunk = (await db.execute(query)).all()
        if not chunk:
            exhausted = True
            break
        sums = await metrics.sums(db, tenant_id, [m.id for m, _ in chunk], windows, today)
        loyalty = await loyalty_facts(db, tenant_id, [m.id for m, _ in chunk]) if needs_loyalty else {}
        for member, last_activity in chunk:
            scanned += 1
            last = member.id
            tier = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
            facts = member_facts(
                member,
                tier=tier,
                last_activity_at=last_activity,
                now=now,
                sums=sums.get(member.id, {}),
                loyalty=loyalty.get(member.id),
            )
            if segments_of([spec], facts):
                found.append(member)
                if len(found) == limit:
                    break
    return found, None if exhausted or last is None else encode_cursor(last)


async def segment_spec(
    db: AsyncSession, *, segment_id: uuid.UUID | None = None, code: str | None = None
) -> SegmentSpec:
    query = (
        select(Segment).where(Segment.id == segment_id) if segment_id else select(Segment).where(Segment.code == code)
    )
    row = await one_or_404(db, query, "No such segment.", field="segment_id" if segment_id else "segment")
    return SegmentSpec(row.id, row.code, tuple(msgspec.convert(row.conditions, list[Condition])), row.match)
