"""Billing use cases: the tenant's payment method and subscription, applying Stripe's subscription state, and the
one function that changes a tenant's billing status (:func:`apply_billing_status`).

Every use case that talks to Stripe for a tenant first locks the tenant's row (``SELECT ... FOR UPDATE``; on SQLite
the write transaction is already exclusive), so two requests for one tenant -- or a request and a webhook -- never
act on Stripe at the same time: a second subscription can never be started beside the first. Stripe is called
inside the request's transaction; if it fails, the request fails and nothing is written.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.adapters import stripe as stripe_adapter
from core.adapters.stripe import StripeGateway
from core.billing import plans, rules
from core.billing.customers import ensure_customer
from core.billing.models import BillingEvent, BillingInvoice
from core.billing.usage import usage_of
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.lookup import one_or_404
from core.db.tenancy import current_tenant
from core.errors import BillingDisabled, Conflict, PaymentFailed, ValidationFailed
from core.ids import new_id
from core.outbox.service import emit
from core.runtime import Runtime
from core.settings import Settings
from core.tenancy.models import Tenant
from core.tenancy.service import enter_tenant

log = structlog.get_logger("fealty.billing")

billing_events = table_of(BillingEvent)
invoices = table_of(BillingInvoice)

#: Invoice statuses that never go back to open (webhooks may bring an older snapshot later).
FINAL_INVOICE_STATUSES = frozenset({"paid", "void"})


class PaymentMethodRequired(Conflict):
    slug = "payment-method-required"
    title = "Attach a payment method first"


class NoSubscription(Conflict):
    slug = "no-subscription"
    title = "The tenant has no subscription"


class SubscriptionExists(Conflict):
    slug = "subscription-exists"
    title = "The tenant already has a subscription"


def stripe_gateway(runtime: Runtime) -> StripeGateway | None:
    """The process's Stripe gateway, or None when billing is disabled (no FEALTY_STRIPE_API_KEY)."""
    settings = runtime.settings
    if not settings.billing_enabled:
        return None
    gateway: StripeGateway | None = runtime.extras.get("stripe")
    if gateway is None:
        gateway = StripeGateway(
            api_key=settings.stripe_api_key,
            api_base=settings.stripe_api_base,
            max_network_retries=settings.stripe_max_network_retries,
            timeout=settings.stripe_timeout_seconds,
        )
        runtime.extras["stripe"] = gateway
        runtime.closers.append(gateway.aclose)
    return gateway


def require_gateway(runtime: Runtime) -> StripeGateway:
    gateway = stripe_gateway(runtime)
    if gateway is None:
        raise BillingDisabled("Billing is not configured on this deployment (FEALTY_STRIPE_API_KEY is not set).")
    return gateway


def grace_of(settings: Settings) -> timedelta:
    return timedelta(days=settings.billing_grace_days)


async def lock_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    """The tenant's row, locked until the transaction ends, and the transaction switched to the tenant's scope."""
    if current_tenant() != tenant_id:
        await enter_tenant(session, tenant_id)
    tenant = await one_or_404(
        session,
        select(Tenant).where(Tenant.id == tenant_id).with_for_update().execution_options(populate_existing=True),
        "No such tenant.",
        field="tenant_id",
    )
    return tenant


# --- the billing status ---------------------------------------------------------------------------------------------


async def notify_billing_status_changed(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    old: str,
    new: str,
    *,
    reason: str,
    now: datetime,
    stripe_event_id: str | None = None,
) -> None:
    """Tell the world that a tenant's billing status changed, in the transaction that changed it.

    A row in the tenant's billing history (``GET /v1/billing``), and a ``billing.status_changed`` event in the
    outbox, so the tenant's admins are warned through their own webhook endpoints.
    """
    await emit(
        session,
        tenant_id,
        "billing.status_changed",
        {"from": old, "to": new, "reason": reason, "stripe_event_id": stripe_event_id},
    )
    await session.execute(
        insert(billing_events).values(
            tenant_id=tenant_id,
            id=new_id(),
            occurred_at=now,
            old_status=old,
            new_status=new,
            reason=reason[:500],
            stripe_event_id=stripe_event_id,
        )
    )


async def apply_billing_status(
    session: AsyncSession,
    tenant: Tenant,
    state: rules.BillingState,
    *,
    reason: str,
    now: datetime,
    stripe_event_id: str | None = None,
) -> bool:
    """The one place a tenant's billing status changes. Returns whether it changed."""
    if state.status not in rules.BILLING_STATUSES:
        raise ValueError(f"unknown billing status {state.status!r}")
    old = tenant.billing_status
    tenant.past_due_since = state.past_due_since
    if old == state.status:
        await session.flush()
        return False
    tenant.billing_status = state.status
    tenant.updated_at = now
    await session.flush()
    log.info("billing_status_changed", tenant_id=str(tenant.id), old=old, new=state.status, reason=reason)
    await notify_billing_status_changed(
        session, tenant.id, old, state.status, reason=reason, now=now, stripe_event_id=stripe_event_id
    )
    return True


async def _has_unpaid_invoice(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    row = await session.execute(
        select(invoices.c.id)
        .where(
            invoices.c.tenant_id == tenant_id,
            invoices.c.status.in_(("open", "uncollectible")),
            invoices.c.attempted.is_(True),
            invoices.c.amount_due > 0,
        )
        .limit(1)
    )
    return row.first() is not None


async def refresh_billing_status(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    *,
    now: datetime,
    reason: str,
    stripe_event_id: str | None = None,
) -> bool:
    """Derive the tenant's billing status from what is stored (subscription state, invoices, time) and apply it."""
    facts = rules.SubscriptionFacts(
        status=tenant.subscription_status if tenant.stripe_subscription_id else None,
        trial_end=tenant.trial_end,
        invoiced=tenant.subscription_invoiced,
        unpaid_invoice=await _has_unpaid_invoice(session, tenant.id),
    )
    state = rules.derive_billing_state(
        facts, previous=tenant.billing_status, past_due_since=tenant.past_due_since, now=now, grace=grace_of(settings)
    )
    return await apply_billing_status(session, tenant, state, reason=reason, now=now, stripe_event_id=stripe_event_id)


async def upsert_invoice(session: AsyncSession, tenant_id: uuid.UUID, invoice: stripe_adapter.Invoice) -> None:
    """Store Stripe's view of one invoice; a paid or void invoice never goes back to open (late webhooks)."""
    row = await session.get(BillingInvoice, (tenant_id, invoice.id))
    if row is not None and row.status in FINAL_INVOICE_STATUSES and invoice.status not in FINAL_INVOICE_STATUSES:
        return
    values = {
        "number": invoice.number,
        "subscription_id": invoice.subscription,
        "status": invoice.status,
        "currency": invoice.currency,
        "amount_due": rules.from_minor_units(invoice.amount_due, invoice.currency),
        "amount_paid": rules.from_minor_units(invoice.amount_paid, invoice.currency),
        "attempted": invoice.attempted,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "created_at": invoice.created,
        "paid_at": invoice.paid_at,
    }
    if row is None:
        session.add(BillingInvoice(tenant_id=tenant_id, id=invoice.id, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    await session.flush()


async def apply_subscription(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    subscription: stripe_adapter.Subscription,
    *,
    now: datetime,
    reason: str,
    stripe_event_id: str | None = None,
) -> str:
    """Store Stripe's state of ``subscription`` on the tenant and derive its billing status.

    Returns ``applied``, or ``other_subscription`` when the subscription is not the tenant's current one (an event of
    a subscription that ended before the current one began changes nothing).
    """
    current = tenant.stripe_subscription_id
    if current and subscription.id != current:
        current_over = tenant.subscription_status in rules.ENDED_SUBSCRIPTION_STATUSES
        if not current_over or subscription.status in rules.ENDED_SUBSCRIPTION_STATUSES:
            return "other_subscription"
    tenant.stripe_subscription_id = subscription.id
    tenant.subscription_status = subscription.status
    tenant.subscription_item_id = subscription.item_id
    tenant.subscription_quantity = subscription.quantity
    tenant.current_period_start = subscription.current_period_start
    tenant.current_period_end = subscription.current_period_end
    tenant.trial_end = subscription.trial_end
    tenant.cancel_at_period_end = subscription.cancel_at_period_end
    tenant.subscription_invoiced = subscription.latest_invoice_id is not None
    if subscription.plan_code:
        tenant.plan_code = subscription.plan_code
    tenant.updated_at = now
    if subscription.latest_invoice is not None:
        await upsert_invoice(session, tenant.id, subscription.latest_invoice)
    await refresh_billing_status(session, settings, tenant, now=now, reason=reason, stripe_event_id=stripe_event_id)
    return "applied"


async def reload_subscription(
    session: AsyncSession, runtime: Runtime, tenant: Tenant, *, now: datetime, reason: str
) -> None:
    """Read the tenant's subscription from Stripe (the newest state there is) and apply it."""
    gateway = require_gateway(runtime)
    subscription = None
    if tenant.stripe_subscription_id:
        subscription = await gateway.retrieve_subscription(tenant.stripe_subscription_id)
    if subscription is not None:
        await apply_subscription(session, runtime.settings, tenant, subscription, now=now, reason=reason)
    else:
        await refresh_billing_status(session, runtime.settings, tenant, now=now, reason=reason)


# --- payment ----------------------------------------------------------------------------------------------------------


async def pay_open_invoices(
    session: AsyncSession, runtime: Runtime, tenant: Tenant, *, now: datetime, reason: str
) -> str | None:
    """Pay every open invoice of the tenant with its default payment method, then apply the subscription's new
    state (paying the open invoice makes a past-due subscription active again: the tenant resumes at once).

    Returns None when every open invoice is paid, or why one is not.
    """
    gateway = require_gateway(runtime)
    if not tenant.stripe_customer_id:
        return None
    failure = None
    for invoice in await gateway.recent_invoices(tenant.stripe_customer_id):
        if invoice.status != "open" or invoice.amount_due <= 0:
            continue
        try:
            paid = await gateway.pay_invoice(
                invoice.id,
                # One attempt per invoice, payment method and minute: a retry replays, a new card pays afresh.
                idempotency_key=f"fealty-pay-{_digest(invoice.id, tenant.payment_method, f'{now:%Y%m%d%H%M}')}",
            )
        except PaymentFailed as exc:
            failure = exc.detail
            continue
        await upsert_invoice(session, tenant.id, paid)
        if paid.status != "paid":
            failure = f"Invoice {invoice.id} is still {paid.status}: the payment was declined."
    await reload_subscription(session, runtime, tenant, now=now, reason=reason)
    return failure


async def attach_payment_method(
    session: AsyncSession, runtime: Runtime, tenant_id: uuid.UUID, payment_method_id: str, *, now: datetime
) -> str | None:
    """Make ``payment_method_id`` (a Stripe payment method, e.g. from Stripe.js) the tenant's default, then pay the
    open invoices with it. Returns None, or why an open invoice could not be paid."""
    gateway = require_gateway(runtime)
    tenant = await lock_tenant(session, tenant_id)
    customer_id = await ensure_customer(session, gateway, tenant)
    method = await gateway.attach_payment_method(customer_id, payment_method_id)
    if method is None:
        raise ValidationFailed(f"Stripe knows no payment method '{payment_method_id}'.", field="payment_method_id")
    tenant.payment_method = method.summary
    tenant.updated_at = now
    await session.flush()
    return await pay_open_invoices(session, runtime, tenant, now=now, reason="payment method attached")


async def pay_now(session: AsyncSession, runtime: Runtime, tenant_id: uuid.UUID, *, now: datetime) -> None:
    """Pay the open invoices now; a declined payment is a 402 problem."""
    tenant = await lock_tenant(session, tenant_id)
    require_gateway(runtime)
    failure = await pay_open_invoices(session, runtime, tenant, now=now, reason="open invoices paid")
    if failure:
        raise PaymentFailed(f"{failure} Attach another payment method (POST /v1/billing/payment-method).")


# --- subscriptions ----------------------------------------------------------------------------------------------------


def has_live_subscription(tenant: Tenant) -> bool:
    return bool(tenant.stripe_subscription_id) and tenant.subscription_status not in rules.ENDED_SUBSCRIPTION_STATUSES


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


async def start_subscription(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: uuid.UUID,
    *,
    plan_code: str,
    trial_days: int = 0,
    now: datetime,
) -> None:
    """Subscribe the tenant to ``plan_code`` (with ``trial_days`` free days first). Exactly one subscription: the row
    lock serialises concurrent starts, a live one is refused, and one Stripe already has for the tenant (made by an
    attempt whose answer was lost) is adopted instead of a second."""
    gateway = require_gateway(runtime)
    tenant = await lock_tenant(session, tenant_id)
    if has_live_subscription(tenant):
        raise SubscriptionExists(
            "The tenant already has a subscription; change or cancel it with PATCH /v1/billing/subscription.",
            field="plan",
        )
    plan = await plans.get_plan(session, plan_code, for_sale=True)
    stripe_plan_id = await plans.ensure_synced(session, gateway, plan, now)
    if not trial_days and not tenant.payment_method:
        raise PaymentMethodRequired(
            "Attach a payment method first (POST /v1/billing/payment-method), or start with a trial.",
            field="payment_method",
        )
    customer_id = await ensure_customer(session, gateway, tenant)
    adopted = [
        s for s in await gateway.live_subscriptions(customer_id) if s.metadata.get("fealty_tenant_id") == str(tenant.id)
    ]
    if adopted:
        subscription = adopted[0]
        log.warning("subscription_adopted", tenant_id=str(tenant.id), subscription=subscription.id)
    else:
        usage = await usage_of(session, tenant.id, now)
        quantity = rules.blocks_for(plans.terms_of(plan), usage.active_members)
        trial_end = now + timedelta(days=trial_days) if trial_days else None
        # Derived from what is created: the SDK's and a lost answer's retries send the same key.
        generation = tenant.stripe_subscription_id or "first"
        trial_stamp = int(trial_end.timestamp()) if trial_end else 0
        key = f"fealty-subscription-{tenant.id}-{_digest(generation, stripe_plan_id, quantity, trial_stamp)}"
        subscription = await gateway.create_subscription(
            customer_id=customer_id,
            plan_id=stripe_plan_id,
            quantity=quantity,
            trial_end=trial_end,
            metadata={"fealty_tenant_id": str(tenant.id), "fealty_plan_code": plan.code},
            idempotency_key=key,
        )
    tenant.plan_code = plan.code
    await apply_subscription(
        session, runtime.settings, tenant, subscription, now=now, reason=f"subscription started on plan {plan.code}"
    )


async def change_subscription(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: uuid.UUID,
    *,
    plan_code: str | None = None,
    cancel_at_period_end: bool | None = None,
    now: datetime,
) -> None:
    """Change plan (Stripe prorates the rest of the period) and/or cancel at the end of the period (or undo that)."""
    gateway = require_gateway(runtime)
    tenant = await lock_tenant(session, tenant_id)
    if not has_live_subscription(tenant):
        raise NoSubscription("The tenant has no subscription; start one with POST /v1/billing/subscription.")
    assert tenant.stripe_subscription_id is not None
    plan_id = quantity = None
    if plan_code is not None and plan_code != tenant.plan_code:
        plan = await plans.get_plan(session, plan_code, for_sale=True)
        plan_id = await plans.ensure_synced(session, gateway, plan, now)
        usage = await usage_of(session, tenant.id, now)
        quantity = rules.blocks_for(plans.terms_of(plan), usage.active_members)
    cancel = None
    if cancel_at_period_end is not None and cancel_at_period_end != tenant.cancel_at_period_end:
        cancel = cancel_at_period_end
    if plan_id is None and cancel is None:
        return
    # The tenant row's last change names the state changed from: a lost answer's retry replays, a later change is new.
    state = _digest(tenant.stripe_subscription_id, plan_id, quantity, cancel, tenant.updated_at.isoformat())
    subscription = await gateway.update_subscription(
        tenant.stripe_subscription_id,
        item_id=tenant.subscription_item_id,
        plan_id=plan_id,
        quantity=quantity,
        cancel_at_period_end=cancel,
        idempotency_key=f"fealty-subscription-update-{state}",
    )
    what = []
    if plan_id is not None:
        what.append(f"plan changed to {plan_code}")
    if cancel is not None:
        what.append("cancellation at period end" if cancel else "cancellation withdrawn")
    await apply_subscription(session, runtime.settings, tenant, subscription, now=now, reason=", ".join(what))


# --- the worker -------------------------------------------------------------------------------------------------------


async def enforce_grace_periods(runtime: Runtime, now: datetime) -> int:
    """Suspend every past-due tenant whose grace period is over. Returns how many were suspended."""
    cutoff = now - grace_of(runtime.settings)
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        due = list(
            (
                await session.execute(
                    select(Tenant.id).where(Tenant.billing_status == "past_due", Tenant.past_due_since <= cutoff)
                )
            ).scalars()
        )
    suspended = 0
    for tenant_id in due:
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            tenant = await lock_tenant(session, tenant_id)
            if await refresh_billing_status(
                session, runtime.settings, tenant, now=now, reason="grace period over with the invoice unpaid"
            ):
                suspended += 1
    return suspended
