"""Plans: platform data (``billing_plans``), and their synchronisation to Stripe products and plans.

Synchronising is idempotent: each plan's Stripe product and plan have ids derived from the plan (``fealty-<code>``
and ``fealty-<code>-<currency>-<minor units>``), so a second run finds them and creates nothing. A new price is a new
Stripe plan; the old one is archived (the subscriptions on it keep it until they change plan).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.adapters.stripe import StripeGateway
from core.billing import rules
from core.billing.models import Plan
from core.errors import AlreadyExists, NotFound, ValidationFailed

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: Fields of a plan that the platform sets (the Stripe ids and sync time are Fealty's).
PLAN_FIELDS = (
    "name",
    "currency",
    "pricing",
    "monthly_price",
    "block_size",
    "included_active_members",
    "included_events",
    "overage_price_per_member",
    "overage_price_per_1000_events",
    "rate_limit_per_second",
    "max_members",
    "active",
)


def terms_of(plan: Plan) -> rules.PlanTerms:
    return rules.PlanTerms(
        currency=plan.currency,
        pricing=plan.pricing,
        monthly_price=plan.monthly_price,
        block_size=plan.block_size,
        included_active_members=plan.included_active_members,
        included_events=plan.included_events,
        overage_price_per_member=plan.overage_price_per_member,
        overage_price_per_1000_events=plan.overage_price_per_1000_events,
    )


def expected_stripe_plan_id(plan: Plan) -> str:
    return rules.stripe_plan_id(plan.code, plan.currency, rules.to_minor_units(plan.monthly_price, plan.currency))


def _check(plan: Plan) -> None:
    plan.currency = validation.currency(plan.currency)
    if plan.pricing not in rules.PRICING:
        raise ValidationFailed(f"pricing: one of {list(rules.PRICING)}.", field="pricing")
    if plan.pricing == "per_block" and not plan.block_size:
        raise ValidationFailed("A per_block plan needs block_size (active members per block).", field="block_size")
    if plan.pricing == "flat":
        plan.block_size = None
    if plan.rate_limit_per_second is not None and not Decimal(0) < plan.rate_limit_per_second < Decimal(100_000):
        raise ValidationFailed(
            "rate_limit_per_second: more than 0 and less than 100000.", field="rate_limit_per_second"
        )
    for name in ("monthly_price", "overage_price_per_member", "overage_price_per_1000_events"):
        value: Decimal = getattr(plan, name)
        if value < 0 or rules.quantize(value, plan.currency) != value:
            raise ValidationFailed(
                f"{name}: a non-negative amount with at most {rules.currency_exponent(plan.currency)} decimals.",
                field=name,
            )


async def get_plan(session: AsyncSession, code: str, *, field: str = "plan", for_sale: bool = False) -> Plan:
    plan = await session.get(Plan, code)
    if plan is None:
        raise (ValidationFailed if for_sale else NotFound)(f"No plan '{code}'.", field=field)
    if for_sale and not plan.active:
        raise ValidationFailed(f"Plan '{code}' is no longer offered.", field=field)
    return plan


async def list_plans(session: AsyncSession) -> list[Plan]:
    return list((await session.execute(select(Plan).order_by(Plan.code))).scalars())


async def create_plan(session: AsyncSession, *, code: str, now: datetime, **fields: Any) -> Plan:
    if not CODE.match(code):
        raise ValidationFailed("code: lower-case letters, digits, '-' and '_' (at most 40).", field="code")
    if await session.get(Plan, code) is not None:
        raise AlreadyExists(f"Plan '{code}' already exists; change it with PATCH.", field="code")
    plan = Plan(code=code, created_at=now, updated_at=now, **fields)
    _check(plan)
    session.add(plan)
    await session.flush()
    return plan


async def update_plan(session: AsyncSession, code: str, *, now: datetime, **changes: Any) -> Plan:
    plan = await get_plan(session, code, field="code")
    for name, value in changes.items():
        setattr(plan, name, value)
    _check(plan)
    plan.updated_at = now
    await session.flush()
    return plan


@dataclass(frozen=True, slots=True)
class SyncResult:
    code: str
    stripe_product_id: str
    stripe_plan_id: str
    #: created, renamed or unchanged.
    product: str
    #: created or unchanged.
    plan: str
    #: The Stripe plan of the previous price, archived by this sync.
    archived: str | None = None

    @property
    def changed(self) -> bool:
        return self.product != "unchanged" or self.plan != "unchanged" or self.archived is not None


async def sync_plan(session: AsyncSession, gateway: StripeGateway, plan: Plan, now: datetime) -> SyncResult:
    """Make Stripe's product and plan for ``plan`` exist and match it."""
    product_id = rules.stripe_product_id(plan.code)
    product = await gateway.retrieve_product(product_id)
    if product is None:
        await gateway.create_product(product_id, name=plan.name, metadata={"fealty_plan_code": plan.code})
        product_state = "created"
    elif product.name != plan.name:
        await gateway.rename_product(product_id, plan.name)
        product_state = "renamed"
    else:
        product_state = "unchanged"
    plan_id = expected_stripe_plan_id(plan)
    plan_state = "unchanged"
    if await gateway.retrieve_plan(plan_id) is None:
        await gateway.create_plan(
            plan_id,
            product_id=product_id,
            amount=rules.to_minor_units(plan.monthly_price, plan.currency),
            currency=plan.currency,
            nickname=plan.name,
            metadata={"fealty_plan_code": plan.code},
        )
        plan_state = "created"
    archived = None
    if plan.stripe_plan_id and plan.stripe_plan_id != plan_id:
        await gateway.archive_plan(plan.stripe_plan_id)
        archived = plan.stripe_plan_id
    plan.stripe_product_id = product_id
    plan.stripe_plan_id = plan_id
    plan.synced_at = now
    await session.flush()
    return SyncResult(plan.code, product_id, plan_id, product_state, plan_state, archived)


async def sync_plans(session: AsyncSession, gateway: StripeGateway, now: datetime) -> list[SyncResult]:
    """Synchronise every plan still offered (``fealty billing sync-plans``)."""
    return [await sync_plan(session, gateway, plan, now) for plan in await list_plans(session) if plan.active]


async def ensure_synced(session: AsyncSession, gateway: StripeGateway, plan: Plan, now: datetime) -> str:
    """The Stripe plan id for ``plan`` at its current price, synchronising first if needed."""
    if plan.stripe_plan_id != expected_stripe_plan_id(plan):
        await sync_plan(session, gateway, plan, now)
    assert plan.stripe_plan_id is not None
    return plan.stripe_plan_id
