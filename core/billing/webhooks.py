"""Stripe's webhooks: verified, de-duplicated, applied in any order.

* The signature (``Stripe-Signature``, HMAC of the raw body with the endpoint secret, at most 5 minutes old) is
  checked before anything else: a bad or missing one is a 400 and nothing is read or written.
* Each event id is recorded (``stripe_events``) in the same transaction as its effect: a replay finds the row and
  does nothing; if applying fails (Stripe unreachable), nothing is recorded and Stripe's retry applies it later.
* Order does not matter: a subscription event older than the newest one applied is stale and changes nothing, and
  for any other the subscription is read back from Stripe, so the tenant always takes Stripe's *newest* state, not
  the state the event carried. Invoice snapshots never move an invoice back from paid to open.
* Unknown event types are acknowledged (200) and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.adapters.stripe import WebhookEvent, parse_invoice, parse_subscription, verify_webhook
from core.billing.models import StripeEvent
from core.billing.rules import ENDED_SUBSCRIPTION_STATUSES
from core.billing.service import (
    apply_subscription,
    lock_tenant,
    refresh_billing_status,
    stripe_gateway,
    upsert_invoice,
)
from core.billing.usage import dialect_of
from core.db.base import table_of
from core.runtime import Runtime
from core.tenancy.models import Tenant

log = structlog.get_logger("fealty.billing")

stripe_events = table_of(StripeEvent)

SUBSCRIPTION_EVENTS = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
INVOICE_EVENTS = frozenset({"invoice.payment_succeeded", "invoice.payment_failed", "invoice.paid"})


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    event_id: str
    type: str
    #: applied, stale, ignored, unknown_customer, other_subscription.
    outcome: str
    duplicate: bool = False


async def receive_stripe_webhook(
    session: AsyncSession, runtime: Runtime, payload: bytes, signature: str | None, *, now: datetime
) -> WebhookReceipt:
    event = verify_webhook(payload, signature, runtime.settings.stripe_webhook_secret)
    claimed = (
        await session.execute(
            dialect_of(session)
            .insert(stripe_events)
            .values(id=event.id, type=event.type, created_at=event.created, received_at=now, outcome="received")
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(stripe_events.c.id)
        )
    ).first()
    if claimed is None:
        outcome = (
            await session.execute(select(stripe_events.c.outcome).where(stripe_events.c.id == event.id))
        ).scalar()
        log.info("stripe_event_duplicate", event_id=event.id, type=event.type)
        return WebhookReceipt(event.id, event.type, str(outcome), duplicate=True)
    outcome, tenant = await _apply(session, runtime, event, now)
    await session.execute(
        update(stripe_events)
        .where(stripe_events.c.id == event.id)
        .values(outcome=outcome, tenant_id=tenant.id if tenant else None)
    )
    log.info("stripe_event", event_id=event.id, type=event.type, outcome=outcome)
    return WebhookReceipt(event.id, event.type, outcome)


async def _apply(
    session: AsyncSession, runtime: Runtime, event: WebhookEvent, now: datetime
) -> tuple[str, Tenant | None]:
    gateway = stripe_gateway(runtime)
    if gateway is None or (event.type not in SUBSCRIPTION_EVENTS and event.type not in INVOICE_EVENTS):
        return "ignored", None
    customer = event.object.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    found = (
        await session.execute(select(Tenant.id).where(Tenant.stripe_customer_id == str(customer_id)))
    ).scalar_one_or_none()
    if found is None:
        return "unknown_customer", None
    tenant = await lock_tenant(session, found)
    settings = runtime.settings
    reason = f"Stripe {event.type}"
    if event.type in SUBSCRIPTION_EVENTS:
        if tenant.subscription_state_at is not None and event.created < tenant.subscription_state_at:
            return "stale", tenant
        snapshot = parse_subscription(event.object)
        subscription = await gateway.retrieve_subscription(snapshot.id) or snapshot
        outcome = await apply_subscription(
            session,
            settings,
            tenant,
            subscription,
            now=now,
            reason=f"{reason}; subscription {subscription.status}",
            stripe_event_id=event.id,
        )
        if outcome == "applied":
            tenant.subscription_state_at = max(event.created, tenant.subscription_state_at or event.created)
            await session.flush()
        elif subscription.status not in ENDED_SUBSCRIPTION_STATUSES:
            # Made outside Fealty (the dashboard?): Fealty keeps to the tenant's own; someone should look.
            log.warning(
                "stripe_second_live_subscription",
                tenant_id=str(tenant.id),
                subscription=subscription.id,
                current=tenant.stripe_subscription_id,
            )
        return outcome, tenant
    invoice = parse_invoice(event.object)
    await upsert_invoice(session, tenant.id, invoice)
    current = None
    if invoice.subscription and tenant.stripe_subscription_id in (None, invoice.subscription):
        current = await gateway.retrieve_subscription(invoice.subscription)
    if current is not None:
        reason = f"{reason} ({invoice.id}); subscription {current.status}"
        await apply_subscription(session, settings, tenant, current, now=now, reason=reason, stripe_event_id=event.id)
    else:
        await refresh_billing_status(session, settings, tenant, now=now, reason=reason, stripe_event_id=event.id)
    return "applied", tenant
