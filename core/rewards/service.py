"""Rewards use cases: the catalogue, redeeming, using, cancelling and expiring vouchers.

Everything runs in the caller's transaction. Locks are always taken in the same order, so concurrent requests and
the expiry job never deadlock: the member's balance row (the ledger's lock protocol), then the redemption row, then
the reward row. Stock is taken with one conditional ``UPDATE ... WHERE stock > 0 RETURNING``, the only statement that
decides who gets the last unit; everything after it rolls back with the transaction if anything fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.usage import record_activity
from core.db.base import table_of
from core.db.lookup import one_or_404, row_or_404
from core.errors import (
    AlreadyExists,
    Conflict,
    FealtyError,
    OutOfStock,
    RedemptionClosed,
    RewardNotFulfilled,
)
from core.ids import new_id
from core.ledger import service as ledger
from core.ledger.service import Cause
from core.members.models import Member
from core.members.service import ensure_active, get_member
from core.outbox.service import emit, emit_many
from core.plugin.manager import PluginManager
from core.plugin.types import RedemptionView, RewardView
from core.program.settings import ProgramSettings
from core.rewards import rules
from core.rewards.models import VOUCHER, Redemption, Reward
from core.tiers.models import Tier

rewards = table_of(Reward)
redemptions = table_of(Redemption)
#: A fresh 60-bit code colliding with an existing one is rare; this many in a row means something is wrong.
CODE_ATTEMPTS = 5


# --- the catalogue --------------------------------------------------------------------------------------------------


async def get_reward(session: AsyncSession, reward_id: uuid.UUID) -> Reward:
    reward = await one_or_404(
        session, select(Reward).where(Reward.id == reward_id), "No such reward.", field="reward_id"
    )
    return reward


async def _check_code_free(session: AsyncSession, code: str, exclude: uuid.UUID | None = None) -> None:
    query = select(Reward.id).where(Reward.code == code)
    if exclude is not None:
        query = query.where(Reward.id != exclude)
    if (await session.execute(query)).first() is not None:
        raise AlreadyExists("Another reward already has this code.", field="code")


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with another request creating the same code.
        raise AlreadyExists("Another reward already has this code.", field="code") from None


async def create_reward(
    session: AsyncSession, *, tenant_id: uuid.UUID, fields: dict[str, Any], now: datetime
) -> Reward:
    await _check_code_free(session, fields["code"])
    reward = Reward(tenant_id=tenant_id, id=new_id(), created_at=now, updated_at=now, **fields)
    session.add(reward)
    await _flush(session)
    return reward


async def update_reward(
    session: AsyncSession, reward: Reward, *, fields: dict[str, Any], add_stock: int | None, now: datetime
) -> Reward:
    """Change the given fields; ``add_stock`` adds (or removes) units atomically, whatever redemptions run now."""
    if "code" in fields and fields["code"] != reward.code:
        await _check_code_free(session, fields["code"], exclude=reward.id)
    for name, value in fields.items():
        setattr(reward, name, value)
    reward.updated_at = now
    await _flush(session)
    if add_stock:
        row = (
            await session.execute(
                update(rewards)
                .where(
                    rewards.c.tenant_id == reward.tenant_id,
                    rewards.c.id == reward.id,
                    rewards.c.stock.is_not(None),
                    rewards.c.stock + add_stock >= 0,
                )
                .values(stock=rewards.c.stock + add_stock)
                .returning(rewards.c.stock)
            )
        ).first()
        if row is None:
            if reward.stock is None:
                raise Conflict("The reward's stock is unlimited; set stock first.", field="add_stock")
            raise Conflict(f"Only {reward.stock} units are left to remove.", field="add_stock", stock=reward.stock)
        await session.refresh(reward)
    return reward


def terms_of(reward: Reward) -> rules.Terms:
    return rules.Terms(
        active=reward.active,
        points_cost=reward.points_cost,
        stock=reward.stock,
        per_member_limit=reward.per_member_limit,
        min_tier_rank=reward.min_tier_rank,
        tier_codes=tuple(reward.tier_codes or ()),
        valid_from=reward.valid_from,
        valid_until=reward.valid_until,
    )


async def tier_of(session: AsyncSession, member: Member) -> tuple[str | None, int | None]:
    """The member's current tier code and rank (None, None without a tier)."""
    if member.tier_id is None:
        return None, None
    row = (await session.execute(select(Tier.code, Tier.rank).where(Tier.id == member.tier_id))).first()
    return (row.code, row.rank) if row else (None, None)


async def redeemed_counts(
    session: AsyncSession, member_id: uuid.UUID, reward_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    """How many times the member redeemed each reward, cancelled redemptions not counted."""
    query = (
        select(Redemption.reward_id, func.count())
        .where(Redemption.member_id == member_id, Redemption.status != "cancelled")
        .group_by(Redemption.reward_id)
    )
    if reward_ids is not None:
        query = query.where(Redemption.reward_id.in_(list(reward_ids)))
    return {reward_id: count for reward_id, count in (await session.execute(query)).all()}


@dataclass(frozen=True)
class Offer:
    reward: Reward
    refusal: FealtyError | None


async def offers_for(session: AsyncSession, *, member: Member, available: int, now: datetime) -> list[Offer]:
    """Every active reward not yet ended, with why the member (with ``available`` points) cannot redeem it now
    (None: they can). Three queries whatever the size of the catalogue."""
    catalogue = (
        (
            await session.execute(
                select(Reward)
                .where(Reward.active.is_(True), or_(Reward.valid_until.is_(None), Reward.valid_until > now))
                .order_by(Reward.points_cost, Reward.id)
            )
        )
        .scalars()
        .all()
    )
    if not catalogue:
        return []
    try:
        ensure_active(member)
    except Conflict as anonymized:
        return [Offer(reward, anonymized) for reward in catalogue]
    tier_code, tier_rank = await tier_of(session, member)
    counts = await redeemed_counts(session, member.id)
    return [
        Offer(
            reward,
            rules.refusal(
                terms_of(reward), rules.Standing(tier_code, tier_rank, counts.get(reward.id, 0), available), now
            ),
        )
        for reward in catalogue
    ]


# --- redeeming ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A redemption row as it is now, and its reward."""

    redemption: Row[Any]
    reward: Reward


def _insert(session: AsyncSession) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(redemptions)


async def _take_stock(session: AsyncSession, reward: Reward) -> None:
    """One unit, or ``out-of-stock``: the conditional UPDATE is atomic, so concurrent redemptions queue on the
    reward's row and the first ones take the units left; the rest find ``stock > 0`` false."""
    if reward.stock is None:
        return
    taken = (
        await session.execute(
            update(rewards)
            .where(rewards.c.tenant_id == reward.tenant_id, rewards.c.id == reward.id, rewards.c.stock > 0)
            .values(stock=rewards.c.stock - 1)
            .returning(rewards.c.stock)
        )
    ).first()
    if taken is None:
        raise OutOfStock("This reward is out of stock.", field="reward_id")


async def _insert_redemption(session: AsyncSession, values: dict[str, Any], new_code: Callable[[], str]) -> Row[Any]:
    """Insert with a fresh voucher code; a code already taken in the tenant is skipped by ``ON CONFLICT DO
    NOTHING`` (no exception, so no savepoint is needed) and another one is drawn."""
    for _ in range(CODE_ATTEMPTS):
        statement = (
            _insert(session)
            .values(values | {"voucher_code": new_code()})
            .on_conflict_do_nothing(index_elements=["tenant_id", "voucher_code"])
            .returning(*redemptions.c)
        )
        row = (await session.execute(statement)).first()
        if row is not None:
            return row
    raise RuntimeError(f"no free voucher code after {CODE_ATTEMPTS} attempts")


def reward_view(reward: Reward) -> RewardView:
    return RewardView(reward.id, reward.name, reward.points_cost, reward.kind, dict(reward.attributes or {}))


def redemption_view(row: Any, reward: Reward) -> RedemptionView:
    return RedemptionView(row.id, row.member_id, reward_view(reward), row.voucher_code, row.points, row.expires_at)


def _event(row: Any, reward: Reward) -> dict[str, Any]:
    return {
        "redemption_id": str(row.id),
        "member_id": str(row.member_id),
        "reward_id": str(reward.id),
        "reward_code": reward.code,
        "points": row.points,
        "voucher_code": row.voucher_code,
        "status": row.status,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }


def _not_fulfilled(reward: Reward) -> RewardNotFulfilled:
    return RewardNotFulfilled(
        f"No plugin enabled for this program fulfils rewards of kind '{reward.kind}'.", field="reward_id"
    )


async def redeem(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    reward_id: uuid.UUID,
    program: ProgramSettings,
    plugins: PluginManager,
    actor: str,
    now: datetime,
    new_code: Callable[[], str] = rules.new_voucher_code,
) -> Outcome:
    """Issue a voucher: every check under the member's lock, then stock, points, voucher, fulfilment, events."""
    balance = await ledger.lock_member_balance(session, tenant_id, member_id)
    member = await get_member(session, member_id)
    ensure_active(member)
    reward = await get_reward(session, reward_id)
    tier_code, tier_rank = await tier_of(session, member)
    # Counting is safe: every redemption of this member waits for the lock held above.
    redeemed = (await redeemed_counts(session, member_id, [reward.id])).get(reward.id, 0)
    standing = rules.Standing(tier_code, tier_rank, redeemed, balance.available)
    # Stock and points as read now: a member who cannot have the reward never queues on the reward's row. The
    # atomic UPDATE below decides the stock for good, and the debit re-checks the points.
    problem = rules.refusal(terms_of(reward), standing, now)
    if problem is not None:
        raise problem
    hooks = program.hooks(plugins)
    if reward.kind != VOUCHER and not hooks.implements("fealty_fulfil_reward"):
        raise _not_fulfilled(reward)
    await _take_stock(session, reward)
    redemption_id = new_id()
    cause = Cause("redemption", id=str(redemption_id), reason=f"reward {reward.code}", actor=actor)
    posted = await ledger.debit(
        session,
        tenant_id=tenant_id,
        member_id=member_id,
        points=reward.points_cost,
        kind="redeem",
        cause=cause,
        now=now,
        details={"reward_id": str(reward.id), "reward_code": reward.code},
    )
    values = {
        "tenant_id": tenant_id,
        "id": redemption_id,
        "member_id": member_id,
        "reward_id": reward.id,
        "points": reward.points_cost,
        "status": "issued",
        "debit_entry_id": posted.entry_id,
        "restore_entry_id": None,
        "issued_at": now,
        "expires_at": now + timedelta(days=reward.voucher_valid_days) if reward.voucher_valid_days else None,
        "fulfilment": {},
        "details": {"issued_by": actor},
    }
    row = await _insert_redemption(session, values, new_code)
    await record_activity(session, tenant_id=tenant_id, member_ids=[member_id], now=now)  # billing usage
    tenant = program.tenant_view(tenant_id, plugins)
    view = redemption_view(row, reward)
    if reward.kind != VOUCHER:
        fulfilment = await hooks.fulfil_reward(tenant, view, session, now)
        if fulfilment is None:
            raise _not_fulfilled(reward)
        row = await _set(session, row, {"fulfilment": fulfilment})
    await hooks.reward_redeemed(tenant, view, session, now)
    await emit(session, tenant_id, "reward.redeemed", _event(row, reward), member_id)
    return Outcome(row, reward)


# --- using and cancelling -------------------------------------------------------------------------------------------


async def get_redemption(
    session: AsyncSession, tenant_id: uuid.UUID, redemption_id: uuid.UUID, *, for_update: bool = False
) -> Row[Any]:
    query = select(redemptions).where(redemptions.c.tenant_id == tenant_id, redemptions.c.id == redemption_id)
    if for_update:
        query = query.with_for_update()
    row = await row_or_404(session, query, "No such redemption.", field="redemption_id")
    return row


def _ensure_open(row: Any, now: datetime) -> None:
    """Only an issued voucher still within its validity can be used or cancelled."""
    status = rules.effective_status(row.status, row.expires_at, now)
    if status != "issued":
        raise RedemptionClosed(
            f"This voucher is {status}; only an issued voucher can be used or cancelled.",
            field="redemption_id",
            voucher_status=status,
        )


async def _set(session: AsyncSession, row: Any, values: dict[str, Any]) -> Row[Any]:
    return (
        await session.execute(
            update(redemptions)
            .where(redemptions.c.tenant_id == row.tenant_id, redemptions.c.id == row.id)
            .values(values)
            .returning(*redemptions.c)
        )
    ).one()


async def use(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    redemption_id: uuid.UUID,
    actor: str,
    now: datetime,
    location: str | None = None,
    reference: str | None = None,
) -> Outcome:
    """Mark the voucher used. Under the redemption's row lock, so of two concurrent uses exactly one succeeds."""
    row = await get_redemption(session, tenant_id, redemption_id, for_update=True)
    _ensure_open(row, now)
    details = dict(row.details or {}) | {"used_by": actor}
    details |= {k: v for k, v in (("location", location), ("reference", reference)) if v is not None}
    row = await _set(session, row, {"status": "used", "used_at": now, "details": details})
    reward = await get_reward(session, row.reward_id)
    await emit(session, tenant_id, "redemption.used", _event(row, reward), row.member_id)
    return Outcome(row, reward)


async def cancel(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    redemption_id: uuid.UUID,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> Outcome:
    """Cancel an issued voucher: the points go back to the lots they came from, the stock unit to the reward.

    Cancelling a cancelled redemption changes nothing and answers the same (a retry is harmless); a used or
    expired voucher cannot be cancelled.
    """
    first = await get_redemption(session, tenant_id, redemption_id)
    # Lock order: the member's balance, then the redemption row (as the expiry job does).
    await ledger.lock_member_balance(session, tenant_id, first.member_id)
    row = await get_redemption(session, tenant_id, redemption_id, for_update=True)
    if row.status == "cancelled":
        return Outcome(row, await get_reward(session, row.reward_id))
    _ensure_open(row, now)
    cause = Cause("redemption", id=str(row.id), reason=reason or "redemption cancelled", actor=actor)
    restored = await ledger.restore_debit(
        session, tenant_id=tenant_id, entry_id=row.debit_entry_id, cause=cause, now=now
    )
    details = dict(row.details or {}) | {"cancelled_by": actor}
    if reason:
        details["cancel_reason"] = reason
    row = await _set(
        session,
        row,
        {
            "status": "cancelled",
            "cancelled_at": now,
            "restore_entry_id": restored.entry_id if restored else None,
            "details": details,
        },
    )
    await _return_stock(session, tenant_id, {row.reward_id: 1})
    reward = await get_reward(session, row.reward_id)
    await emit(session, tenant_id, "redemption.cancelled", _event(row, reward), row.member_id)
    return Outcome(row, reward)


#: The name plugins know it by (``from core import use_redemption``).
use_redemption = use


async def _return_stock(session: AsyncSession, tenant_id: uuid.UUID, units: dict[uuid.UUID, int]) -> None:
    if not units:
        return
    await session.execute(
        update(rewards)
        .where(
            rewards.c.tenant_id == bindparam("r_tenant"),
            rewards.c.id == bindparam("r_id"),
            rewards.c.stock.is_not(None),
        )
        .values(stock=rewards.c.stock + bindparam("r_units")),
        [{"r_tenant": tenant_id, "r_id": reward_id, "r_units": n} for reward_id, n in sorted(units.items())],
    )


# --- expiry (the worker) --------------------------------------------------------------------------------------------


async def expire_due(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime, limit: int = 500) -> int:
    """Mark up to ``limit`` issued vouchers past ``expires_at`` as expired. Those of a reward that says
    ``refund_on_expiry`` give their points back (to the lots they came from) and their stock unit. Returns how many
    were due; safe to repeat and to run beside requests (a voucher used or cancelled meanwhile is left alone)."""
    due = (
        await session.execute(
            select(redemptions.c.id, redemptions.c.member_id, rewards.c.refund_on_expiry)
            .join(
                rewards,
                (rewards.c.tenant_id == redemptions.c.tenant_id) & (rewards.c.id == redemptions.c.reward_id),
            )
            .where(
                redemptions.c.tenant_id == tenant_id,
                redemptions.c.status == "issued",
                redemptions.c.expires_at.is_not(None),
                redemptions.c.expires_at <= now,
            )
            .order_by(redemptions.c.expires_at)
            .limit(limit)
        )
    ).all()
    if not due:
        return 0
    refunding = sorted({r.member_id for r in due if r.refund_on_expiry})
    for member_id in refunding:  # lock order: balances (in member order), then redemption rows
        await ledger.lock_member_balance(session, tenant_id, member_id)
    expired = (
        await session.execute(
            update(redemptions)
            .where(
                redemptions.c.tenant_id == tenant_id,
                redemptions.c.id.in_([r.id for r in due]),
                redemptions.c.status == "issued",
            )
            .values(status="expired", expired_at=now)
            .returning(*redemptions.c)
        )
    ).all()
    if not expired:
        return len(due)
    catalogue = {
        r.id: r
        for r in (
            await session.execute(select(Reward).where(Reward.id.in_({row.reward_id for row in expired})))
        ).scalars()
    }
    stock_back: dict[uuid.UUID, int] = {}
    restores: list[dict[str, Any]] = []
    events: list[tuple[str, dict[str, Any], uuid.UUID | None]] = []
    for row in expired:
        reward = catalogue[row.reward_id]
        event = _event(row, reward) | {"refunded": reward.refund_on_expiry}
        if reward.refund_on_expiry:
            cause = Cause("redemption", id=str(row.id), reason="voucher expired unused", actor="worker")
            restored = await ledger.restore_debit(
                session, tenant_id=tenant_id, entry_id=row.debit_entry_id, cause=cause, now=now
            )
            if restored is not None:
                restores.append({"x_tenant": tenant_id, "x_id": row.id, "x_entry": restored.entry_id})
            stock_back[reward.id] = stock_back.get(reward.id, 0) + 1
        events.append(("redemption.expired", event, row.member_id))
    if restores:
        await session.execute(
            update(redemptions)
            .where(redemptions.c.tenant_id == bindparam("x_tenant"), redemptions.c.id == bindparam("x_id"))
            .values(restore_entry_id=bindparam("x_entry")),
            restores,
        )
    await _return_stock(session, tenant_id, stock_back)
    await emit_many(session, tenant_id, events, now)
    return len(due)


async def rewards_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Reward]:
    if not ids:
        return {}
    rows = (await session.execute(select(Reward).where(Reward.id.in_(set(ids))))).scalars()
    return {r.id: r for r in rows}
