"""HTTP: a tenant's billing (``/v1/billing``), Stripe's webhook, and the platform operator's plans, subscriptions
and usage (``/v1/platform/...``).

Every billing route a tenant uses is ``allowed_when_suspended``: a suspended tenant must still see what it owes, pay
it and change its subscription. The webhook authenticates by its signature alone (``auth: none``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing import plans as plan_service
from core.billing import rules, service
from core.billing.models import BillingEvent, BillingInvoice, BillingUsage, Plan, UsageCount
from core.billing.usage import usage_of, usage_of_tenants
from core.billing.webhooks import receive_stripe_webhook
from core.clock import utcnow
from core.db.base import table_of
from core.decimals import decimal_bounds
from core.errors import NotFound, ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.runtime import Runtime
from core.tenancy.models import Tenant
from core.tenancy.service import enter_tenant

Name = Annotated[str, Meta(min_length=1, max_length=200)]
TrialDays = Annotated[int, Meta(ge=0, le=365)]
PlanCode = Annotated[str, Meta(min_length=1, max_length=64)]
#: A price: 0 or more, at most 4 decimal places (and no more than the plan's currency has: checked with it).
Price = Annotated[Decimal, decimal_bounds(ge=0, le=1_000_000_000, places=4)]
#: Requests per second: more than 0, less than 100,000, to the hundredth (as stored).
RatePerSecond = Annotated[Decimal, decimal_bounds(gt=0, lt=100_000, places=2)]


# --- DTOs -------------------------------------------------------------------------------------------------------------


class PlanCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=40, pattern=plan_service.CODE.pattern)]
    name: Name
    currency: str
    #: Flat plans: the price a month. Per-block plans: the price of one block a month.
    monthly_price: Price
    pricing: Literal["flat", "per_block"] = "flat"
    #: Active members per block (per-block plans).
    block_size: Annotated[int, Meta(ge=1)] | None = None
    included_active_members: Annotated[int, Meta(ge=0)] = 0
    #: Events included a month (per block, for per-block plans).
    included_events: Annotated[int, Meta(ge=0)] = 0
    overage_price_per_member: Price = Decimal(0)
    overage_price_per_1000_events: Price = Decimal(0)
    #: Requests per second for tenants on this plan (none: the deployment's FEALTY_RATE_LIMIT_PER_SECOND).
    rate_limit_per_second: RatePerSecond | None = None
    #: Largest number of active (not anonymized) members a tenant on this plan may enrol.
    max_members: Annotated[int, Meta(ge=1)] | None = None
    active: bool = True


class PlanUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    currency: str | UnsetType = UNSET
    monthly_price: Price | UnsetType = UNSET
    pricing: Literal["flat", "per_block"] | UnsetType = UNSET
    block_size: Annotated[int, Meta(ge=1)] | UnsetType | None = UNSET
    included_active_members: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    included_events: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    overage_price_per_member: Price | UnsetType = UNSET
    overage_price_per_1000_events: Price | UnsetType = UNSET
    rate_limit_per_second: RatePerSecond | UnsetType | None = UNSET
    max_members: Annotated[int, Meta(ge=1)] | UnsetType | None = UNSET
    #: false: no new subscriptions on this plan (tenants on it keep it).
    active: bool | UnsetType = UNSET


class PlanOut(msgspec.Struct):
    code: str
    name: str
    currency: str
    pricing: str
    monthly_price: Decimal
    block_size: int | None
    included_active_members: int
    included_events: int
    overage_price_per_member: Decimal
    overage_price_per_1000_events: Decimal
    rate_limit_per_second: Decimal | None
    max_members: int | None
    active: bool
    stripe_product_id: str | None
    stripe_plan_id: str | None
    synced_at: datetime | None

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        def money(value: Decimal) -> Decimal:
            return rules.quantize(value, plan.currency)

        return cls(
            plan.code,
            plan.name,
            plan.currency,
            plan.pricing,
            money(plan.monthly_price),
            plan.block_size,
            plan.included_active_members,
            plan.included_events,
            money(plan.overage_price_per_member),
            money(plan.overage_price_per_1000_events),
            plan.rate_limit_per_second.quantize(Decimal("0.01")) if plan.rate_limit_per_second is not None else None,
            plan.max_members,
            plan.active,
            plan.stripe_product_id,
            plan.stripe_plan_id,
            plan.synced_at,
        )


class SyncOut(msgspec.Struct):
    code: str
    stripe_product_id: str
    stripe_plan_id: str
    product: str
    plan: str
    archived: str | None


class PaymentMethodIn(msgspec.Struct, forbid_unknown_fields=True):
    #: A Stripe payment method id (``pm_...``), e.g. from Stripe.js or Stripe Checkout's setup mode.
    payment_method_id: Annotated[str, Meta(min_length=3, max_length=255)]


class SubscriptionStart(msgspec.Struct, forbid_unknown_fields=True):
    plan: PlanCode
    #: Free days before the first invoice (no payment method needed to start a trial).
    trial_days: TrialDays = 0


class SubscriptionChange(msgspec.Struct, forbid_unknown_fields=True):
    #: Move to another plan now; Stripe prorates the rest of the period.
    plan: PlanCode | UnsetType = UNSET
    #: true: the subscription ends at the end of the current period (writes are refused after that); false: undo.
    cancel_at_period_end: bool | UnsetType = UNSET


class SubscriptionOut(msgspec.Struct):
    id: str
    #: Stripe's own status.
    status: str
    quantity: int | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool


class OverageOut(msgspec.Struct):
    #: Active members beyond what the plan includes.
    members: int
    #: Events beyond what the plan includes.
    events: int
    amount: Decimal
    currency: str


class UsageOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    active_members: int
    events: int
    #: What the usage so far costs beyond the plan (None without a plan).
    overage: OverageOut | None
    #: The same at the end of the period if events keep their pace so far (active members as counted so far).
    projected_overage: OverageOut | None


class ClosedPeriodOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    active_members: int
    events: int
    #: billed, owed (the subscription ended in the period: the overage waits on the customer for its next invoice),
    #: no_charge, not_billable (no subscription), waived (trial).
    status: str
    plan: str | None
    overage_amount: Decimal | None
    currency: str | None
    stripe_invoice_item_id: str | None
    closed_at: datetime | None


class InvoiceOut(msgspec.Struct):
    id: str
    number: str | None
    status: str
    currency: str
    amount_due: Decimal
    amount_paid: Decimal
    #: Stripe tried to collect it and the payment failed (it is still open).
    payment_failed: bool
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    paid_at: datetime | None
    hosted_invoice_url: str | None


class BillingEventOut(msgspec.Struct):
    occurred_at: datetime
    old_status: str
    new_status: str
    reason: str


class BillingOut(msgspec.Struct):
    #: Billing runs on this deployment (a Stripe key is configured).
    enabled: bool
    #: none, trialing, active, past_due, suspended or canceled.
    status: str
    #: Past due: writes are refused from this moment unless the open invoice is paid.
    grace_ends_at: datetime | None
    warning: str | None
    plan: PlanOut | None
    subscription: SubscriptionOut | None
    payment_method: str | None
    usage: UsageOut
    invoices: list[InvoiceOut]
    closed_periods: list[ClosedPeriodOut]
    #: Every change of billing status, newest first.
    history: list[BillingEventOut]
    #: Set when a payment attempted by this request was declined.
    payment_error: str | None = None


class WebhookReceiptOut(msgspec.Struct):
    received: bool
    event_id: str
    type: str
    outcome: str
    duplicate: bool


class TenantUsageOut(msgspec.Struct):
    tenant_id: uuid.UUID
    slug: str
    period_start: datetime
    period_end: datetime
    active_members: int
    events: int
    status: str
    plan: str | None
    overage_amount: Decimal | None
    currency: str | None
    stripe_invoice_item_id: str | None


# --- reading a tenant's billing -------------------------------------------------------------------------------------


def _overage(plan: Plan | None, active_members: int, events: int) -> OverageOut | None:
    if plan is None:
        return None
    result = rules.overage_of(plan_service.terms_of(plan), active_members=active_members, events=events)
    return OverageOut(result.members, result.events, result.amount, result.currency)


async def billing_overview(
    db: AsyncSession, runtime: Runtime, tenant_id: uuid.UUID, *, payment_error: str | None = None
) -> BillingOut:
    now = utcnow()
    tenant = await db.get(Tenant, tenant_id, populate_existing=True)
    assert tenant is not None
    settings = runtime.settings
    grace = service.grace_of(settings)
    status = rules.effective_status(tenant.billing_status, tenant.past_due_since, now, grace)
    deadline = rules.grace_ends_at(tenant.past_due_since, grace) if status == "past_due" else None
    plan = await db.get(Plan, tenant.plan_code) if tenant.plan_code else None
    usage = await usage_of(db, tenant_id, now)
    period = (usage.period_start, usage.period_end)
    invoices = (await db.execute(select(BillingInvoice).order_by(BillingInvoice.created_at.desc()).limit(12))).scalars()
    history = (await db.execute(select(BillingEvent).order_by(BillingEvent.occurred_at.desc()).limit(50))).scalars()
    usage_table = table_of(BillingUsage)
    closed = (
        await db.execute(
            select(usage_table)
            .where(usage_table.c.tenant_id == tenant_id, usage_table.c.status != "open")
            .order_by(usage_table.c.period_start.desc())
            .limit(12)
        )
    ).all()
    subscription = None
    if tenant.stripe_subscription_id:
        subscription = SubscriptionOut(
            tenant.stripe_subscription_id,
            tenant.subscription_status or "unknown",
            tenant.subscription_quantity,
            tenant.current_period_start,
            tenant.current_period_end,
            tenant.trial_end,
            tenant.cancel_at_period_end,
        )
    return BillingOut(
        enabled=settings.billing_enabled,
        status=status,
        grace_ends_at=deadline,
        warning=rules.billing_warning(status, deadline),
        plan=PlanOut.of(plan) if plan else None,
        subscription=subscription,
        payment_method=tenant.payment_method,
        usage=UsageOut(
            usage.period_start,
            usage.period_end,
            usage.active_members,
            usage.events,
            _overage(plan, usage.active_members, usage.events),
            _overage(plan, usage.active_members, rules.projected_events(usage.events, period, now)),
        ),
        invoices=[
            InvoiceOut(
                i.id,
                i.number,
                i.status,
                i.currency,
                rules.quantize(i.amount_due, i.currency),
                rules.quantize(i.amount_paid, i.currency),
                i.status == "open" and i.attempted,
                i.period_start,
                i.period_end,
                i.created_at,
                i.paid_at,
                i.hosted_invoice_url,
            )
            for i in invoices
        ],
        closed_periods=[
            ClosedPeriodOut(
                r.period_start,
                r.period_end,
                r.active_members,
                r.events,
                r.status,
                r.plan_code,
                rules.quantize(r.overage_amount, r.currency) if r.overage_amount is not None and r.currency else None,
                r.currency,
                r.stripe_invoice_item_id,
                r.closed_at,
            )
            for r in closed
        ],
        history=[BillingEventOut(e.occurred_at, e.old_status, e.new_status, e.reason) for e in history],
        payment_error=payment_error,
    )


def _tenant_id(principal: Any) -> uuid.UUID:
    assert principal.tenant_id is not None
    tenant_id: uuid.UUID = principal.tenant_id
    return tenant_id


# --- the tenant's routes ----------------------------------------------------------------------------------------------


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["billing"]
    opt = {"scope": "admin", "allowed_when_suspended": True}

    @get(operation_id="getBilling")
    async def get_billing(self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime) -> BillingOut:
        """Plan, billing status, subscription, usage this period with the overage so far and projected, recent
        invoices, closed periods and the history of billing status changes."""
        return await billing_overview(db, runtime, _tenant_id(principal))

    @post("/payment-method", operation_id="attachPaymentMethod", status_code=200)
    async def attach_payment_method(
        self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime, data: JSONBody[PaymentMethodIn]
    ) -> BillingOut:
        """Make a Stripe payment method the default, then pay any open invoice with it (a suspended tenant resumes
        at once when the payment succeeds; ``payment_error`` says why when it does not)."""
        tenant_id = _tenant_id(principal)
        error = await service.attach_payment_method(db, runtime, tenant_id, data.payment_method_id, now=utcnow())
        return await billing_overview(db, runtime, tenant_id, payment_error=error)

    @post("/subscription", operation_id="startSubscription")
    async def start_subscription(
        self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime, data: JSONBody[SubscriptionStart]
    ) -> BillingOut:
        """Subscribe to a plan, with an optional trial. Without a trial a payment method must be attached first."""
        tenant_id = _tenant_id(principal)
        await service.start_subscription(
            db, runtime, tenant_id, plan_code=data.plan, trial_days=data.trial_days, now=utcnow()
        )
        return await billing_overview(db, runtime, tenant_id)

    @patch("/subscription", operation_id="updateSubscription")
    async def update_subscription(
        self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime, data: JSONBody[SubscriptionChange]
    ) -> BillingOut:
        """Change plan (prorated by Stripe), or cancel at the end of the period (``cancel_at_period_end``)."""
        tenant_id = _tenant_id(principal)
        await _change(db, runtime, tenant_id, data)
        return await billing_overview(db, runtime, tenant_id)

    @post("/pay", operation_id="payOpenInvoices", status_code=200)
    async def pay(self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime) -> BillingOut:
        """Pay the open invoices now with the default payment method (402 ``payment-failed`` when declined)."""
        tenant_id = _tenant_id(principal)
        await service.pay_now(db, runtime, tenant_id, now=utcnow())
        return await billing_overview(db, runtime, tenant_id)

    @post("/stripe/webhook", operation_id="receiveStripeWebhook", status_code=200, opt={"auth": "none"})
    async def stripe_webhook(
        self, request: Request[Any, Any, Any], db: Db, runtime: CurrentRuntime
    ) -> WebhookReceiptOut:
        """Stripe -> Fealty. Authenticated by the ``Stripe-Signature`` header (400 when it is missing or wrong);
        each event is applied once; unknown event types are acknowledged and ignored."""
        receipt = await receive_stripe_webhook(
            db, runtime, await request.body(), request.headers.get("stripe-signature"), now=utcnow()
        )
        return WebhookReceiptOut(True, receipt.event_id, receipt.type, receipt.outcome, receipt.duplicate)


async def _change(db: AsyncSession, runtime: Runtime, tenant_id: uuid.UUID, data: SubscriptionChange) -> None:
    if data.plan is UNSET and data.cancel_at_period_end is UNSET:
        raise ValidationFailed("Give plan and/or cancel_at_period_end.", field="plan")
    await service.change_subscription(
        db,
        runtime,
        tenant_id,
        plan_code=None if data.plan is UNSET else data.plan,
        cancel_at_period_end=None if data.cancel_at_period_end is UNSET else data.cancel_at_period_end,
        now=utcnow(),
    )


# --- the platform's routes --------------------------------------------------------------------------------------------


class PlatformPlansController(Controller):
    path = "/v1/platform/plans"
    tags = ["platform"]
    opt = {"auth": "platform"}

    @post(operation_id="createPlan")
    async def create_plan(self, db: Db, data: JSONBody[PlanCreate]) -> PlanOut:
        """Define a plan. It reaches Stripe with ``fealty billing sync-plans``, ``POST /v1/platform/plans/sync``, or
        by itself when a tenant first subscribes to it."""
        fields = msgspec.structs.asdict(data)
        code = fields.pop("code")
        return PlanOut.of(await plan_service.create_plan(db, code=code, now=utcnow(), **fields))

    @get(operation_id="listPlans")
    async def list_plans(self, db: Db) -> Page[PlanOut]:
        return Page([PlanOut.of(p) for p in await plan_service.list_plans(db)])

    @get("/{code:str}", operation_id="getPlan")
    async def get_plan(self, db: Db, code: FromPath[str]) -> PlanOut:
        return PlanOut.of(await plan_service.get_plan(db, code, field="code"))

    @patch("/{code:str}", operation_id="updatePlan")
    async def update_plan(self, db: Db, code: FromPath[str], data: JSONBody[PlanUpdate]) -> PlanOut:
        """Change a plan. A new price becomes a new Stripe plan at the next sync; tenants move to it when they change
        plan."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
        return PlanOut.of(await plan_service.update_plan(db, code, now=utcnow(), **changes))

    @post("/sync", operation_id="syncPlans", status_code=200)
    async def sync_plans(self, db: Db, runtime: CurrentRuntime) -> list[SyncOut]:
        """Create or update every offered plan's Stripe product and plan (idempotent)."""
        results = await plan_service.sync_plans(db, service.require_gateway(runtime), utcnow())
        return [SyncOut(r.code, r.stripe_product_id, r.stripe_plan_id, r.product, r.plan, r.archived) for r in results]


async def _platform_tenant(db: AsyncSession, tenant_id: uuid.UUID) -> None:
    """404 for an unknown tenant; otherwise the platform acts in the tenant's scope for the rest of the request."""
    if await db.get(Tenant, tenant_id) is None:
        raise NotFound("No such tenant.", field="tenant_id")
    await enter_tenant(db, tenant_id)


class PlatformBillingController(Controller):
    path = "/v1/platform"
    tags = ["platform"]
    opt = {"auth": "platform"}

    @get("/tenants/{tenant_id:uuid}/billing", operation_id="getTenantBilling")
    async def get_tenant_billing(self, db: Db, runtime: CurrentRuntime, tenant_id: FromPath[uuid.UUID]) -> BillingOut:
        """A tenant's billing as the tenant sees it."""
        await _platform_tenant(db, tenant_id)
        return await billing_overview(db, runtime, tenant_id)

    @post("/tenants/{tenant_id:uuid}/subscription", operation_id="startTenantSubscription")
    async def start_tenant_subscription(
        self, db: Db, runtime: CurrentRuntime, tenant_id: FromPath[uuid.UUID], data: JSONBody[SubscriptionStart]
    ) -> BillingOut:
        """Start a tenant's subscription on a plan (with an optional trial)."""
        await _platform_tenant(db, tenant_id)
        await service.start_subscription(
            db, runtime, tenant_id, plan_code=data.plan, trial_days=data.trial_days, now=utcnow()
        )
        return await billing_overview(db, runtime, tenant_id)

    @patch("/tenants/{tenant_id:uuid}/subscription", operation_id="updateTenantSubscription")
    async def update_tenant_subscription(
        self, db: Db, runtime: CurrentRuntime, tenant_id: FromPath[uuid.UUID], data: JSONBody[SubscriptionChange]
    ) -> BillingOut:
        """Change a tenant's plan (prorated) or cancel its subscription at the end of the period."""
        await _platform_tenant(db, tenant_id)
        await _change(db, runtime, tenant_id, data)
        return await billing_overview(db, runtime, tenant_id)

    @get("/usage", operation_id="listUsage")
    async def list_usage(
        self,
        db: Db,
        period: FromQuery[Annotated[str, Meta(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$")] | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> Page[TenantUsageOut]:
        """Every tenant's usage in a period (``period=YYYY-MM``, default this month), with what was billed once the
        period is closed."""
        check_limit(limit)
        start, end = rules.usage_period(_period(period))
        usage_table, counts = table_of(BillingUsage), table_of(UsageCount)
        counted = select(counts.c.tenant_id).where(counts.c.tenant_id == Tenant.id, counts.c.period_start == start)
        query = (
            select(Tenant.id, Tenant.slug, usage_table)
            .outerjoin(usage_table, (usage_table.c.tenant_id == Tenant.id) & (usage_table.c.period_start == start))
            .where(usage_table.c.tenant_id.is_not(None) | exists(counted))
            .order_by(Tenant.id)
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(Tenant.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        # An open period's counts are the live sums of its counters; a closed one's, what its close recorded.
        live = await usage_of_tenants(db, [r.id for r in items if r.status in (None, "open")], start)
        out = []
        for r in items:
            counted_now = live.get(r.id)
            closed = r.status not in (None, "open")
            out.append(
                TenantUsageOut(
                    r.id,
                    r.slug,
                    start,
                    end,
                    r.active_members if closed else counted_now.active_members if counted_now else 0,
                    r.events if closed else counted_now.events if counted_now else 0,
                    r.status or "open",
                    r.plan_code,
                    r.overage_amount,
                    r.currency,
                    r.stripe_invoice_item_id,
                )
            )
        return Page(out, next_cursor)


def _period(value: str | None) -> datetime:
    if not value:
        return utcnow()
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed("period: YYYY-MM, for example 2026-11.", field="period") from None
