"""HTTP: tiers, a member's tier (with progress and history), manual tiers and recalculation."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import Conflict, ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.middleware import query_flag
from core.jobs.api import JobOut, accepted, get_task
from core.jobs.queue import start_task
from core.members.models import Member
from core.members.service import ensure_active, get_member
from core.program.config import bump_config_version, load_config, tier_spec
from core.qualification import service as metrics
from core.tiers import catalog, rules, service
from core.tiers.jobs import RECALCULATE_JOB
from core.tiers.models import Tier, TierChange
from core.validation import AwareDatetime


class TierOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    rank: int
    qualification: rules.Qualification
    benefits: rules.Benefits
    validity: rules.Validity
    downgrade: str
    members: int

    @classmethod
    def of(cls, tier: Tier, members: int = 0) -> TierOut:
        spec = _spec(tier)
        return cls(
            tier.id,
            tier.code,
            tier.name,
            tier.rank,
            spec.qualification,
            spec.benefits,
            spec.validity,
            tier.downgrade,
            members,
        )


class TierRef(msgspec.Struct):
    code: str
    name: str
    rank: int


class ProgressOut(msgspec.Struct):
    metric: str
    window: str
    current: Decimal
    required: Decimal
    remaining: Decimal

    @classmethod
    def of(cls, p: rules.Progress) -> ProgressOut:
        def plain(value: Decimal) -> Decimal:
            return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()

        return cls(p.metric, p.window, plain(p.current), plain(p.required), plain(p.remaining))


class NextTierOut(msgspec.Struct):
    tier: TierRef
    mode: str
    progress: list[ProgressOut]


class HistoryOut(msgspec.Struct):
    from_tier: str | None
    to_tier: str | None
    reason: str
    valid_until: datetime | None
    changed_at: datetime


class MemberTierOut(msgspec.Struct):
    member_id: uuid.UUID
    tier: TierRef | None
    since: datetime | None
    valid_until: datetime | None
    floor: TierRef | None
    floor_until: datetime | None
    benefits: rules.Benefits | None
    next: NextTierOut | None
    history: list[HistoryOut]


class ManualTierIn(msgspec.Struct, forbid_unknown_fields=True):
    #: The tier code; it also acts as a floor (no downgrade below it) until ``until``.
    tier: str
    reason: Annotated[str, Meta(min_length=1, max_length=300)]
    until: AwareDatetime | None = None


class MoveOut(msgspec.Struct):
    member_id: uuid.UUID
    external_id: str
    from_tier: str | None
    to_tier: str | None
    reason: str
    valid_until: datetime | None


class RecalculationOut(msgspec.Struct):
    preview: bool
    evaluated: int
    counts: dict[str, int]
    #: The first 1,000 moves.
    moves: list[MoveOut]


def _spec(tier: Tier) -> rules.TierSpec:
    return tier_spec(tier)


async def _tier(db: AsyncSession, tier_id: uuid.UUID) -> Tier:
    tier = await one_or_404(db, select(Tier).where(Tier.id == tier_id), "No such tier.", field="tier_id")
    return tier


class TiersController(Controller):
    path = "/v1/tiers"
    tags = ["tiers"]

    @post(operation_id="createTier")
    async def create(self, db: Db, data: JSONBody[catalog.TierIn]) -> TierOut:
        """A tier: rank, qualification (metrics over a window, any or all of them), benefits, validity, downgrade."""
        return TierOut.of(await catalog.add_tier(db, data))

    @get(operation_id="listTiers")
    async def list_tiers(self, db: Db) -> list[TierOut]:
        """Every tier, lowest first, with how many members hold it."""
        counts = dict((await db.execute(select(Member.tier_id, func.count()).group_by(Member.tier_id))).all())
        tiers = (await db.execute(select(Tier).order_by(Tier.rank))).scalars().all()
        return [TierOut.of(t, counts.get(t.id, 0)) for t in tiers]

    @get("/{tier_id:uuid}", operation_id="getTier")
    async def get_tier(self, db: Db, tier_id: FromPath[uuid.UUID]) -> TierOut:
        tier = await _tier(db, tier_id)
        count = (await db.execute(select(func.count(Member.id)).where(Member.tier_id == tier_id))).scalar_one()
        return TierOut.of(tier, count)

    @patch("/{tier_id:uuid}", operation_id="updateTier")
    async def update_tier(self, db: Db, tier_id: FromPath[uuid.UUID], data: JSONBody[catalog.TierUpdate]) -> TierOut:
        """Change a tier. Members move on their next activity, at status expiry, or with a recalculation."""
        tier = await _tier(db, tier_id)
        catalog.check(data)
        await catalog.check_unique(db, rank=None if data.rank is UNSET else data.rank, exclude=tier.id)
        catalog.store(tier, data)
        tier.updated_at = utcnow()
        await db.flush()
        await bump_config_version(db)
        return TierOut.of(tier)

    @delete("/{tier_id:uuid}", operation_id="deleteTier", status_code=200)
    async def delete_tier(self, db: Db, tier_id: FromPath[uuid.UUID]) -> TierOut:
        """Remove a tier that no member holds (move them first, e.g. by changing ranks and recalculating)."""
        tier = await _tier(db, tier_id)
        held = (
            await db.execute(
                select(func.count(Member.id)).where((Member.tier_id == tier_id) | (Member.tier_floor_id == tier_id))
            )
        ).scalar_one()
        if held:
            raise Conflict(f"{held} member(s) hold this tier.", field="tier_id")
        out = TierOut.of(tier)
        await db.delete(tier)
        await db.flush()
        await bump_config_version(db)
        return out

    # A preview writes nothing: it works while the tenant is suspended for billing; a real recalculation does not.
    @post(
        "/recalculate",
        operation_id="recalculateTiers",
        status_code=200,
        responses={202: ResponseSpec(data_container=JobOut, description="The recalculation, queued as a job")},
        opt={"allowed_when_suspended": query_flag("preview")},
    )
    async def recalculate(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        preview: FromQuery[bool] = False,
    ) -> Response[RecalculationOut | JobOut]:
        """Re-evaluate every member: upgrades for who qualifies, renewal or downgrade for expired status.

        Without ``preview`` the work is a job: the answer is 202 with it (``Location: /v1/jobs/{id}``), and the
        worker re-evaluates every member in batches; follow its progress and result at ``GET /v1/jobs/{id}``.
        With ``preview=true`` nothing is written: the answer (200) says who would move."""
        assert principal.tenant_id is not None
        if not preview:
            job_id = await start_task(db, RECALCULATE_JOB, tenant_id=principal.tenant_id)
            return cast(
                "Response[RecalculationOut | JobOut]", accepted(await get_task(db, principal.tenant_id, job_id))
            )
        config = await load_config(db, program.config_version)
        now = utcnow()
        counts: Counter[str] = Counter()
        moves: list[MoveOut] = []
        evaluated = 0
        last: uuid.UUID | None = None
        while True:
            query = select(Member).where(Member.status == "active").order_by(Member.id).limit(500)
            if last is not None:
                query = query.where(Member.id > last)
            chunk = (await db.execute(query)).scalars().all()
            if not chunk:
                break
            last = chunk[-1].id
            evaluated += len(chunk)
            planned = await service.plan_moves(db, principal.tenant_id, config, program, chunk, now)
            for p in planned:
                counts[p.move.reason] += 1
                if len(moves) < 1000:
                    moves.append(
                        MoveOut(
                            p.member_id,
                            p.external_id,
                            p.from_tier.code if p.from_tier else None,
                            p.move.to.code if p.move.to else None,
                            p.move.reason,
                            p.move.valid_until,
                        )
                    )
        return Response(RecalculationOut(preview, evaluated, dict(counts), moves), status_code=200)


class MemberTierController(Controller):
    path = "/v1/members/{member_id:uuid}/tier"
    tags = ["tiers"]

    @get(operation_id="getMemberTier", opt={"scope": "members:read"})
    async def member_tier(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, member_id: FromPath[uuid.UUID]
    ) -> MemberTierOut:
        """The member's tier, since and until when, any manual floor, progress to the next tier, and history."""
        assert principal.tenant_id is not None
        return await member_tier_out(db, principal.tenant_id, program, member_id)

    @put(operation_id="setMemberTier", status_code=200)
    async def set_tier(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[ManualTierIn],
    ) -> MemberTierOut:
        """Put the member in a tier by hand (a goodwill upgrade, a status match). It is also a floor until ``until``:
        no downgrade below it before then."""
        assert principal.tenant_id is not None
        member = await get_member(db, member_id, for_update=True)
        ensure_active(member)
        config = await load_config(db, program.config_version)
        target = config.tiers_by_code.get(data.tier)
        if target is None:
            raise ValidationFailed(f"Unknown tier '{data.tier}'.", field="tier")
        now = utcnow()
        if data.until is not None and data.until <= now:
            raise ValidationFailed("until must be in the future.", field="until")
        current = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
        until = data.until or rules.valid_until(target, now, program.tz)
        move = rules.Move(target, until, "upgrade" if current is None or target.rank > current.rank else "downgrade")
        planned = service.PlannedMove(member.id, member.external_id, current, move)
        await service.apply_moves(
            db,
            principal.tenant_id,
            [planned],
            now,
            hooks=program.hooks(runtime.plugins),
            tenant=program.tenant_view(principal.tenant_id, runtime.plugins),
            reason_prefix="manual:",
        )
        member.tier_floor_id, member.tier_floor_until = target.id, data.until  # type: ignore[assignment]
        await db.flush()
        await db.refresh(member)
        return await member_tier_out(db, principal.tenant_id, program, member_id)


async def member_tier_out(db: AsyncSession, tenant_id: uuid.UUID, program: Any, member_id: uuid.UUID) -> MemberTierOut:
    member = await get_member(db, member_id)
    config = await load_config(db, program.config_version)
    current = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
    floor = config.tiers_by_id.get(member.tier_floor_id) if member.tier_floor_id else None
    higher = [t for t in config.tiers if current is None or t.rank > current.rank]
    next_out = None
    if higher:
        nxt = higher[0]
        sums = await metrics.sums(
            db, tenant_id, [member.id], rules.metric_windows([nxt]), metrics.local_day(utcnow(), program.tz)
        )
        progress = rules.progress_to(nxt, sums[member.id])
        next_out = NextTierOut(
            TierRef(nxt.code, nxt.name, nxt.rank),
            nxt.qualification.mode,
            [ProgressOut.of(p) for p in progress],
        )
    rows = (
        (
            await db.execute(
                select(TierChange)
                .where(TierChange.member_id == member_id)
                .order_by(TierChange.changed_at.desc())
                .limit(100)
            )
        )
        .scalars()
        .all()
    )
    codes = {t.id: t.code for t in config.tiers}
    history = [
        HistoryOut(
            codes.get(r.from_tier_id),
            codes.get(r.to_tier_id),
            r.reason,
            r.valid_until,
            r.changed_at,
        )
        for r in rows
    ]

    def ref(tier: rules.TierSpec | None) -> TierRef | None:
        return TierRef(tier.code, tier.name, tier.rank) if tier else None

    return MemberTierOut(
        member.id,
        ref(current),
        member.tier_since,
        member.tier_valid_until,
        ref(floor),
        member.tier_floor_until,
        current.benefits if current else None,
        next_out,
        history,
    )
