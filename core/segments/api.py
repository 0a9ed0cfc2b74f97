"""HTTP: segments (rule-based groups of members) and who is in them now."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.lookup import one_or_404
from core.earning.conditions import Condition, ConditionError, check, metric_fields
from core.errors import Conflict, ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentProgram, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor
from core.measurement.facts import SEGMENT_FACTS
from core.members.models import Member
from core.program.config import bump_config_version, load_config
from core.qualification.service import Window
from core.segments.models import Segment
from core.segments.service import scan_segment, segment_spec

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
#: Members examined per page of GET /segments/{id}/members at most (the cursor continues from there).
SCAN_LIMIT = 5000


class SegmentIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=60, pattern=CODE.pattern)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    conditions: list[Condition]
    match: Literal["all", "any"] = "all"
    description: Annotated[str, Meta(max_length=1000)] | None = None


class SegmentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    conditions: list[Condition] | UnsetType = UNSET
    match: Literal["all", "any"] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=1000)] | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class SegmentOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    conditions: list[Condition]
    match: str
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, s: Segment) -> SegmentOut:
        return cls(
            s.id,
            s.code,
            s.name,
            s.description,
            msgspec.convert(s.conditions, list[Condition]),
            s.match,
            s.active,
            s.created_at,
        )


class SegmentMember(msgspec.Struct):
    id: uuid.UUID
    external_id: str
    tier: str | None


def _check_conditions(conditions: list[Condition]) -> list[Any]:
    if not conditions:
        raise ValidationFailed("A segment needs at least one condition.", field="conditions")
    for i, condition in enumerate(conditions):
        path = f"conditions[{i}]"
        try:
            check(condition, path)
        except ConditionError as exc:
            raise ValidationFailed(str(exc), field=exc.path) from None
        if condition.field.startswith("event."):
            raise ValidationFailed(
                "Segments are about members: use member.* or metric.* fields.", field=f"{path}.field"
            )
        if condition.field == "member.segments":
            raise ValidationFailed("A segment cannot depend on segments.", field=f"{path}.field")
        if condition.field.startswith("loyalty.") and condition.field.removeprefix("loyalty.") not in SEGMENT_FACTS:
            raise ValidationFailed(f"loyalty.* facts: {', '.join(SEGMENT_FACTS)}.", field=f"{path}.field")
    for _metric, window in metric_fields(conditions):
        try:
            Window.parse(window)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="conditions") from None
    return [msgspec.to_builtins(c) for c in conditions]


async def _segment(db: AsyncSession, segment_id: uuid.UUID) -> Segment:
    segment = await one_or_404(
        db, select(Segment).where(Segment.id == segment_id), "No such segment.", field="segment_id"
    )
    return segment


class SegmentsController(Controller):
    path = "/v1/segments"
    tags = ["segments"]

    @post(operation_id="createSegment")
    async def create(self, db: Db, data: JSONBody[SegmentIn]) -> SegmentOut:
        """A segment: conditions on member fields (``member.tier``, ``member.attributes.*``, ``member.locale``,
        ``member.days_enrolled``, ``member.days_since_last_activity``) and metrics (``metric.spend.90d``,
        ``metric.count:purchase.year``, ``metric.points.lifetime``)."""
        if not CODE.match(data.code):
            raise ValidationFailed("code: lower-case letters, digits, - and _.", field="code")
        if (await db.execute(select(Segment.id).where(Segment.code == data.code))).first():
            raise Conflict("Another segment already has this code.", field="code")
        segment = Segment(
            id=uuid.uuid4(),
            code=data.code,
            name=data.name,
            description=data.description,
            conditions=_check_conditions(data.conditions),
            match=data.match,
            active=True,
        )
        db.add(segment)
        await db.flush()
        await bump_config_version(db)
        return SegmentOut.of(segment)

    @get(operation_id="listSegments")
    async def list_segments(self, db: Db) -> list[SegmentOut]:
        return [SegmentOut.of(s) for s in (await db.execute(select(Segment).order_by(Segment.code))).scalars()]

    @get("/{segment_id:uuid}", operation_id="getSegment")
    async def get_segment(self, db: Db, segment_id: FromPath[uuid.UUID]) -> SegmentOut:
        return SegmentOut.of(await _segment(db, segment_id))

    @patch("/{segment_id:uuid}", operation_id="updateSegment")
    async def update_segment(
        self, db: Db, segment_id: FromPath[uuid.UUID], data: JSONBody[SegmentUpdate]
    ) -> SegmentOut:
        segment = await _segment(db, segment_id)
        if data.conditions is not UNSET:
            segment.conditions = _check_conditions(data.conditions)
        for name in ("name", "match", "description", "active"):
            value = getattr(data, name)
            if value is not UNSET:
                setattr(segment, name, value)
        segment.updated_at = utcnow()
        await db.flush()
        await bump_config_version(db)
        return SegmentOut.of(segment)

    @delete("/{segment_id:uuid}", operation_id="deleteSegment", status_code=200)
    async def delete_segment(self, db: Db, segment_id: FromPath[uuid.UUID]) -> SegmentOut:
        """Switch the segment off (campaigns that name it no longer match anyone through it)."""
        segment = await _segment(db, segment_id)
        segment.active = False
        await db.flush()
        await bump_config_version(db)
        return SegmentOut.of(segment)

    @get("/{segment_id:uuid}/members", operation_id="listSegmentMembers", opt={"scope": "members:read"})
    async def members(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        segment_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[SegmentMember]:
        """Members in the segment right now, evaluated on the spot (never stale). Each page examines at most 5,000
        members; follow ``next_cursor`` until it is null."""
        assert principal.tenant_id is not None
        check_limit(limit)
        spec = await segment_spec(db, segment_id=segment_id)
        config = await load_config(db, program.config_version)
        after = cursor_uuid(decode_cursor(cursor, 1)[0]) if cursor else None
        members, next_cursor = await scan_segment(
            db, principal.tenant_id, program, config, spec, after=after, limit=limit, where=[Member.status == "active"]
        )
        codes = {t.id: t.code for t in config.tiers}
        found = [SegmentMember(m.id, m.external_id, codes.get(m.tier_id) if m.tier_id else None) for m in members]
        return Page(found, next_cursor)
