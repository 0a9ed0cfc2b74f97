"""HTTP: the rewards catalogue, redemptions (redeem, use, cancel) and what a member can redeem now."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import and_, or_, select

from core.clock import as_utc, utcnow
from core.errors import ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.ledger.queries import balance_row
from core.members.service import get_member
from core.rewards import rules, service
from core.rewards.models import Reward
from core.validation import AwareDatetime

MAX_POINTS = 10**12
Code = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=2000)]
#: ``voucher`` (core issues the code and nothing else), or a kind a plugin fulfils (``free_night``, ``fuel.cents_off``).
Kind = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_.-]*$")]
PointsCost = Annotated[int, Meta(ge=1, le=MAX_POINTS)]
Stock = Annotated[int, Meta(ge=0, le=10**9)]
Limit = Annotated[int, Meta(ge=1, le=10**6)]
Rank = Annotated[int, Meta(ge=0, le=10**4)]
TierCode = Annotated[str, Meta(min_length=1, max_length=40)]
Moment = AwareDatetime
Days = Annotated[int, Meta(ge=1, le=3660)]
Status = Literal["issued", "used", "cancelled", "expired"]
Note = Annotated[str, Meta(min_length=1, max_length=200)]

REWARD_FIELDS = (
    "code",
    "name",
    "description",
    "kind",
    "points_cost",
    "stock",
    "per_member_limit",
    "min_tier_rank",
    "tier_codes",
    "valid_from",
    "valid_until",
    "voucher_valid_days",
    "refund_on_expiry",
    "attributes",
    "active",
)


#: A voucher code as typed or scanned: its 12 characters of the code alphabet (I and L read as 1, O as 0; no U), in any
#: case, with hyphens or spaces anywhere (``ABCD-EFGH-JKMN``).
VoucherCodeQuery = Annotated[
    str,
    Meta(
        pattern=r"^[- ]*([0-9A-TV-Za-tv-z][- ]*){12}$",
        max_length=64,
        description="A voucher code as typed or scanned: XXXX-XXXX-XXXX, any case, hyphens and spaces optional.",
    ),
]


class RewardCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    points_cost: PointsCost
    description: Description | None = None
    kind: Kind = "voucher"
    #: Units to redeem; null: unlimited.
    stock: Stock | None = None
    #: Redemptions per member (cancelled ones do not count); null: no limit.
    per_member_limit: Limit | None = None
    #: Only members whose tier rank is at least this.
    min_tier_rank: Rank | None = None
    #: Only members in one of these tiers (by code); empty: any tier.
    tier_codes: list[TierCode] = msgspec.field(default_factory=list)
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    #: Days an issued voucher can be used; null: it never expires.
    voucher_valid_days: Days | None = None
    #: An expired voucher gives its points and its stock unit back.
    refund_on_expiry: bool = False
    #: Free-form details for the tenant's apps and plugins (category, step, image...).
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    active: bool = True


class RewardUpdate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    points_cost: PointsCost | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    kind: Kind | UnsetType = UNSET
    #: Sets the units left (null: unlimited). To add units while redemptions run, use ``add_stock``.
    stock: Stock | UnsetType | None = UNSET
    #: Adds (or, negative, removes) units atomically.
    add_stock: Annotated[int, Meta(ge=-(10**9), le=10**9)] | UnsetType = UNSET
    per_member_limit: Limit | UnsetType | None = UNSET
    min_tier_rank: Rank | UnsetType | None = UNSET
    tier_codes: list[TierCode] | UnsetType = UNSET
    valid_from: Moment | UnsetType | None = UNSET
    valid_until: Moment | UnsetType | None = UNSET
    voucher_valid_days: Days | UnsetType | None = UNSET
    refund_on_expiry: bool | UnsetType = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class RewardOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    kind: str
    points_cost: int
    stock: int | None
    per_member_limit: int | None
    min_tier_rank: int | None
    tier_codes: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    voucher_valid_days: int | None
    refund_on_expiry: bool
    attributes: dict[str, Any]
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Reward) -> RewardOut:
        return cls(
            id=r.id,
            code=r.code,
            name=r.name,
            description=r.description,
            kind=r.kind,
            points_cost=r.points_cost,
            stock=r.stock,
            per_member_limit=r.per_member_limit,
            min_tier_rank=r.min_tier_rank,
            tier_codes=list(r.tier_codes or []),
            valid_from=r.valid_from,
            valid_until=r.valid_until,
            voucher_valid_days=r.voucher_valid_days,
            refund_on_expiry=r.refund_on_expiry,
            attributes=dict(r.attributes or {}),
            active=r.active,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class RedeemIn(msgspec.Struct, forbid_unknown_fields=True):
    member_id: uuid.UUID
    reward_id: uuid.UUID


class UseIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Where it was used (store, hotel, station...).
    location: Note | None = None
    #: The tenant's own reference (receipt, folio, order number).
    reference: Note | None = None


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Note | None = None


class RewardSummary(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    kind: str


class RedemptionOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    reward: RewardSummary
    points: int
    #: ``issued`` (usable), ``used``, ``cancelled`` (points returned) or ``expired``.
    status: str
    voucher_code: str
    issued_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    cancelled_at: datetime | None
    expired_at: datetime | None
    #: The ledger entry that took the points, and the one that gave them back (cancelled, or expired with refund).
    debit_entry_id: uuid.UUID
    restore_entry_id: uuid.UUID | None
    fulfilment: dict[str, Any]
    details: dict[str, Any]


class MemberRewardOut(msgspec.Struct):
    reward: RewardOut
    redeemable: bool
    #: Why not, as a problem type (``.../insufficient-points``, ``.../not-eligible``...), with a human detail.
    reason: str | None = None
    detail: str | None = None


class MemberRewardsOut(msgspec.Struct):
    member_id: uuid.UUID
    available: int
    items: list[MemberRewardOut]


def _redemption_out(row: Any, reward: Reward, now: datetime) -> RedemptionOut:
    return RedemptionOut(
        id=row.id,
        member_id=row.member_id,
        reward=RewardSummary(reward.id, reward.code, reward.name, reward.kind),
        points=row.points,
        status=rules.effective_status(row.status, row.expires_at, now),
        voucher_code=row.voucher_code,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        cancelled_at=row.cancelled_at,
        expired_at=row.expired_at,
        debit_entry_id=row.debit_entry_id,
        restore_entry_id=row.restore_entry_id,
        fulfilment=dict(row.fulfilment or {}),
        details=dict(row.details or {}),
    )


def _outcome_out(outcome: service.Outcome, now: datetime) -> RedemptionOut:
    return _redemption_out(outcome.redemption, outcome.reward, now)


def _check_validity(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValidationFailed("valid_until must be later than valid_from.", field="valid_until")


def _in_utc(fields: dict[str, Any]) -> dict[str, Any]:
    """Times as stored (UTC), so that the answer to a write reads the same as any later read."""
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in fields.items()}


def _check_tier_codes(codes: list[str]) -> None:
    if len(set(codes)) != len(codes):
        raise ValidationFailed("tier_codes lists a tier twice.", field="tier_codes")


class RewardsController(Controller):
    path = "/v1/rewards"
    tags = ["rewards"]

    @post(operation_id="createReward", opt={"scope": "admin"})
    async def create_reward(self, db: Db, principal: CurrentPrincipal, data: JSONBody[RewardCreate]) -> RewardOut:
        """Add a reward to the catalogue. ``code`` is unique within the tenant."""
        assert principal.tenant_id is not None
        _check_validity(data.valid_from, data.valid_until)
        _check_tier_codes(data.tier_codes)
        fields = _in_utc({name: getattr(data, name) for name in REWARD_FIELDS})
        reward = await service.create_reward(db, tenant_id=principal.tenant_id, fields=fields, now=utcnow())
        return RewardOut.of(reward)

    # The catalogue is no secret: any key of the tenant may read it (a POS, the member app, an integration).
    @get(operation_id="listRewards", opt={"scope": None})
    async def list_rewards(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        active: FromQuery[bool | None] = None,
        kind: FromQuery[str | None] = None,
        code: FromQuery[str | None] = None,
    ) -> Page[RewardOut]:
        """The catalogue, oldest first; ``active=true`` for what is offered."""
        check_limit(limit)
        query = select(Reward).order_by(Reward.id).limit(limit + 1)
        if cursor:
            query = query.where(Reward.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        if active is not None:
            query = query.where(Reward.active.is_(active))
        if kind is not None:
            query = query.where(Reward.kind == kind)
        if code is not None:
            query = query.where(Reward.code == code)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page([RewardOut.of(r) for r in items], next_cursor)

    @get("/{reward_id:uuid}", operation_id="getReward", opt={"scope": None})
    async def get_reward(self, db: Db, reward_id: FromPath[uuid.UUID]) -> RewardOut:
        return RewardOut.of(await service.get_reward(db, reward_id))

    @patch("/{reward_id:uuid}", operation_id="updateReward", opt={"scope": "admin"})
    async def update_reward(self, db: Db, reward_id: FromPath[uuid.UUID], data: JSONBody[RewardUpdate]) -> RewardOut:
        """Change any field; absent fields stay, ``null`` clears one. Vouchers already issued keep their terms."""
        fields = _in_utc({name: getattr(data, name) for name in REWARD_FIELDS if getattr(data, name) is not UNSET})
        add_stock = None if data.add_stock is UNSET else data.add_stock
        if add_stock is not None and "stock" in fields:
            raise ValidationFailed("Give stock or add_stock, not both.", field="add_stock")
        if "tier_codes" in fields:
            _check_tier_codes(fields["tier_codes"])
        reward = await service.get_reward(db, reward_id)
        _check_validity(fields.get("valid_from", reward.valid_from), fields.get("valid_until", reward.valid_until))
        reward = await service.update_reward(db, reward, fields=fields, add_stock=add_stock, now=utcnow())
        return RewardOut.of(reward)

    @delete("/{reward_id:uuid}", operation_id="deactivateReward", opt={"scope": "admin"}, status_code=200)
    async def deactivate_reward(self, db: Db, reward_id: FromPath[uuid.UUID]) -> RewardOut:
        """Withdraw the reward from the catalogue. Nothing is deleted: its redemptions stay readable, issued
        vouchers stay usable, and ``PATCH {"active": true}`` offers it again."""
        reward = await service.get_reward(db, reward_id)
        reward = await service.update_reward(db, reward, fields={"active": False}, add_stock=None, now=utcnow())
        return RewardOut.of(reward)


class RedemptionsController(Controller):
    path = "/v1/redemptions"
    tags = ["rewards"]

    @post(operation_id="createRedemption", opt={"scope": "rewards:write"})
    async def redeem(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        data: JSONBody[RedeemIn],
    ) -> RedemptionOut:
        """Redeem a reward for a member: takes one unit of stock and the points, issues a unique voucher code.
        Refusals (409) write nothing: ``insufficient-points``, ``out-of-stock``, ``redemption-limit-reached``,
        ``not-eligible`` (tier), ``reward-unavailable`` (inactive, outside its validity), ``reward-not-fulfilled``."""
        assert principal.tenant_id is not None
        now = utcnow()
        outcome = await service.redeem(
            db,
            tenant_id=principal.tenant_id,
            member_id=data.member_id,
            reward_id=data.reward_id,
            program=program,
            plugins=runtime.plugins,
            actor=principal.actor,
            now=now,
        )
        return _outcome_out(outcome, now)

    @get(operation_id="listRedemptions", opt={"scope": "members:read"})
    async def list_redemptions(
        self,
        db: Db,
        principal: CurrentPrincipal,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        member_id: FromQuery[uuid.UUID | None] = None,
        reward_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[Status | None] = None,
        voucher_code: FromQuery[VoucherCodeQuery | None] = None,
        issued_after: FromQuery[AwareDatetime | None] = None,
        issued_before: FromQuery[AwareDatetime | None] = None,
    ) -> Page[RedemptionOut]:
        """Redemptions, newest first. ``voucher_code`` finds a voucher as scanned or typed (any case, hyphens
        optional)."""
        assert principal.tenant_id is not None
        check_limit(limit)
        now = utcnow()
        table = service.redemptions
        query = (
            select(table).where(table.c.tenant_id == principal.tenant_id).order_by(table.c.id.desc()).limit(limit + 1)
        )
        if cursor:
            query = query.where(table.c.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        if member_id is not None:
            query = query.where(table.c.member_id == member_id)
        if reward_id is not None:
            query = query.where(table.c.reward_id == reward_id)
        if voucher_code is not None:
            code = rules.normalise_voucher_code(voucher_code)
            if code is None:
                raise ValidationFailed("This is not a voucher code (XXXX-XXXX-XXXX).", field="voucher_code")
            query = query.where(table.c.voucher_code == code)
        if status is not None:
            # The status a client sees: an issued voucher past its expiry is already expired.
            lapsed = and_(table.c.status == "issued", table.c.expires_at <= now)
            if status == "issued":
                query = query.where(
                    table.c.status == "issued", or_(table.c.expires_at.is_(None), table.c.expires_at > now)
                )
            elif status == "expired":
                query = query.where(or_(table.c.status == "expired", lapsed))
            else:
                query = query.where(table.c.status == status)
        if issued_after is not None:
            query = query.where(table.c.issued_at >= issued_after)
        if issued_before is not None:
            query = query.where(table.c.issued_at < issued_before)
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        catalogue = await service.rewards_by_id(db, [r.reward_id for r in items])
        return Page([_redemption_out(r, catalogue[r.reward_id], now) for r in items], next_cursor)

    @get("/{redemption_id:uuid}", operation_id="getRedemption", opt={"scope": "members:read"})
    async def get_redemption(
        self, db: Db, principal: CurrentPrincipal, redemption_id: FromPath[uuid.UUID]
    ) -> RedemptionOut:
        assert principal.tenant_id is not None
        row = await service.get_redemption(db, principal.tenant_id, redemption_id)
        return _redemption_out(row, await service.get_reward(db, row.reward_id), utcnow())

    @post("/{redemption_id:uuid}/use", operation_id="useRedemption", opt={"scope": "rewards:write"}, status_code=200)
    async def use(
        self,
        db: Db,
        principal: CurrentPrincipal,
        redemption_id: FromPath[uuid.UUID],
        data: JSONBody[UseIn | None] = None,
    ) -> RedemptionOut:
        """Mark the voucher used (the body is optional). Only an issued, unexpired voucher: a second use is a 409
        ``redemption-closed`` naming its status."""
        assert principal.tenant_id is not None
        now = utcnow()
        outcome = await service.use(
            db,
            tenant_id=principal.tenant_id,
            redemption_id=redemption_id,
            actor=principal.actor,
            now=now,
            location=data.location if data else None,
            reference=data.reference if data else None,
        )
        return _outcome_out(outcome, now)

    @post(
        "/{redemption_id:uuid}/cancel",
        operation_id="cancelRedemption",
        opt={"scope": "rewards:write"},
        status_code=200,
    )
    async def cancel(
        self,
        db: Db,
        principal: CurrentPrincipal,
        redemption_id: FromPath[uuid.UUID],
        data: JSONBody[CancelIn | None] = None,
    ) -> RedemptionOut:
        """Cancel an issued voucher: the points return to the member (to the lots they came from) and the unit to
        the stock. Cancelling again answers the cancelled redemption and changes nothing; a used or expired voucher
        is a 409 ``redemption-closed``."""
        assert principal.tenant_id is not None
        now = utcnow()
        outcome = await service.cancel(
            db,
            tenant_id=principal.tenant_id,
            redemption_id=redemption_id,
            actor=principal.actor,
            now=now,
            reason=data.reason if data else None,
        )
        return _outcome_out(outcome, now)


class MemberRewardsController(Controller):
    path = "/v1/members/{member_id:uuid}/rewards"
    tags = ["rewards"]

    @get(operation_id="listMemberRewards", opt={"scope": "members:read"})
    async def member_rewards(
        self,
        db: Db,
        principal: CurrentPrincipal,
        member_id: FromPath[uuid.UUID],
        only_redeemable: FromQuery[bool] = True,
    ) -> MemberRewardsOut:
        """What the member can redeem now: active, within validity, in stock, allowed by tier and limit, and
        affordable, cheapest first. ``only_redeemable=false`` lists every active reward not yet ended, each with
        the reason it cannot be redeemed (a problem type), for apps that show what is within reach."""
        assert principal.tenant_id is not None
        member = await get_member(db, member_id)
        available = (await balance_row(db, principal.tenant_id, member_id)).available
        offers = await service.offers_for(db, member=member, available=available, now=utcnow())
        items = [
            MemberRewardOut(
                RewardOut.of(o.reward),
                o.refusal is None,
                o.refusal.type if o.refusal else None,
                o.refusal.detail if o.refusal else None,
            )
            for o in offers
            if o.refusal is None or not only_redeemable
        ]
        return MemberRewardsOut(member_id, available, items)
