"""The whole billing lifecycle over real HTTP, with localstripe delivering its own signed webhooks: tenant creation,
payment method, subscription, usage, period close, renewal invoice paid, plan change with proration, cancellation at
period end, the subscription ending, and a new one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.billing.models import StripeEvent
from core.billing.periods import close_billing_periods
from core.billing.rules import usage_period
from core.clock import utcnow
from core.db.engine import tenant_session
from core.testing import TenantHandle
from tests.billing.support import (
    PLATFORM,
    BillingLive,
    LocalStripe,
    activity,
    billing,
    customer_of,
    eventually,
    make_plan,
    make_tenant,
    subscribe,
)


async def _events(live: BillingLive, tenant: TenantHandle) -> list[tuple[str, str]]:
    async with tenant_session(live.runtime.sessionmaker, None, writes=False) as session:
        rows = await session.execute(
            select(StripeEvent.type, StripeEvent.outcome)
            .where(StripeEvent.tenant_id == tenant.id)
            .order_by(StripeEvent.received_at)
        )
        return [(r.type, r.outcome) for r in rows]


def _next_month_close() -> Any:
    _, end = usage_period(utcnow())
    return end + timedelta(hours=2)


async def test_the_whole_lifecycle(billing_live: BillingLive, localstripe: LocalStripe) -> None:
    http = billing_live.client
    plan = await make_plan(
        http,
        included_active_members=2,
        included_events=10,
        overage_price_per_member="1.00",
        overage_price_per_1000_events="3.00",
    )
    tenant = await make_tenant(http)
    customer = await customer_of(http, tenant)
    start = await billing(tenant)
    assert (start["enabled"], start["status"], start["plan"], start["subscription"]) == (True, "none", None, None)

    # The tenant admin attaches a card and subscribes.
    attached = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": "pm_card_visa"})
    assert attached.status_code == 200 and attached.json()["payment_method"] == "visa •••• 4242"
    started = await tenant.post("/v1/billing/subscription", json={"plan": plan["code"]})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "active" and body["plan"]["code"] == plan["code"]
    assert body["subscription"]["status"] == "active" and body["subscription"]["quantity"] == 1
    assert [(i["status"], i["amount_due"]) for i in body["invoices"]] == [("paid", "49.00")]
    subscription = body["subscription"]["id"]
    assert localstripe.get(f"/v1/subscriptions/{subscription}")["customer"] == customer

    # Stripe's own webhooks arrive and are applied once; they change nothing already known.
    async def webhooks_in() -> list[tuple[str, str]] | None:
        seen = await _events(billing_live, tenant)
        types = {t for t, _ in seen}
        return seen if {"customer.subscription.created", "invoice.payment_succeeded"} <= types else None

    seen = await eventually(webhooks_in, what="subscription webhooks")
    assert all(outcome in ("applied", "ignored") for _, outcome in seen), seen
    after = await billing(tenant)
    assert [(h["old_status"], h["new_status"]) for h in after["history"]] == [("none", "active")]

    # Usage: three members active, five events each.
    members = [(await tenant.enrol())["id"] for _ in range(3)]
    await activity(billing_live.runtime, tenant, members, events_each=5)
    usage = (await billing(tenant))["usage"]
    assert (usage["active_members"], usage["events"]) == (3, 15)
    assert usage["overage"] == {"members": 1, "events": 5, "amount": "4.00", "currency": "GBP"}
    assert usage["projected_overage"]["events"] >= 5
    listing = (await http.get("/v1/platform/tenants?limit=500", headers=PLATFORM)).json()["items"]
    mine = next(t for t in listing if t["id"] == str(tenant.id))
    assert mine["usage"]["active_members"] == 3 and mine["usage"]["events"] == 15
    assert mine["billing_status"] == "active" and mine["plan"] == plan["code"]

    # The period closes: the overage is billed once, however often the close runs.
    for _ in range(2):
        await close_billing_periods(billing_live.runtime, _next_month_close())
    items = [i for i in localstripe.invoice_items(customer) if i["metadata"].get("fealty_usage_key")]
    assert [(i["amount"], i["currency"], i["subscription"]) for i in items] == [(400, "gbp", subscription)]
    closed = (await billing(tenant))["closed_periods"]
    assert [(p["status"], p["overage_amount"], p["stripe_invoice_item_id"]) for p in closed] == [
        ("billed", "4.00", items[0]["id"])
    ]

    # Stripe renews: the next invoice carries the plan and the overage, is paid, and the webhook records it.
    renewal = localstripe.renew(customer, subscription)
    assert renewal["status"] == "paid" and renewal["amount_due"] == 4900 + 400

    async def renewal_recorded() -> dict | None:
        invoices = (await billing(tenant))["invoices"]
        return next((i for i in invoices if i["id"] == renewal["id"] and i["status"] == "paid"), None)

    recorded = await eventually(renewal_recorded, what="the renewal invoice")
    assert recorded["amount_paid"] == "53.00"

    # A plan change is prorated by Stripe; cancellation at period end keeps writes working until it ends.
    bigger = await make_plan(http, monthly_price="99.00")
    changed = await tenant.patch("/v1/billing/subscription", json={"plan": bigger["code"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"]["code"] == bigger["code"]
    assert localstripe.get(f"/v1/subscriptions/{subscription}")["plan"]["id"] == f"fealty-{bigger['code']}-gbp-9900"
    prorations = [i for i in localstripe.invoice_items(customer) if i.get("proration")]
    assert prorations and all(i["amount"] < 0 for i in prorations)
    canceling = await tenant.patch("/v1/billing/subscription", json={"cancel_at_period_end": True})
    assert canceling.json()["subscription"]["cancel_at_period_end"] is True and canceling.json()["status"] == "active"
    assert localstripe.get(f"/v1/subscriptions/{subscription}")["cancel_at_period_end"] in (True, "true")
    assert (await tenant.post("/v1/members", json={"external_id": "still-writing"})).status_code == 201

    # The period ends and Stripe ends the subscription: writes are refused, nothing is deleted, reads work.
    localstripe.http.delete(f"/v1/subscriptions/{subscription}").raise_for_status()

    async def canceled() -> dict | None:
        state = await billing(tenant)
        return state if state["status"] == "canceled" else None

    state = await eventually(canceled, what="the subscription's end")
    assert state["history"][0]["old_status"] == "active" and state["history"][0]["new_status"] == "canceled"
    refused = await tenant.post("/v1/members", json={"external_id": "after-the-end"})
    assert refused.status_code == 402 and refused.json()["type"].endswith("/subscription-ended")
    assert "canceled" in refused.headers["fealty-billing-warning"]
    assert (await tenant.get(f"/v1/members/{members[0]}")).status_code == 200

    # A new subscription resumes writes.
    again = await tenant.post("/v1/billing/subscription", json={"plan": plan["code"]})
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "active" and again.json()["subscription"]["id"] != subscription
    assert (await tenant.post("/v1/members", json={"external_id": "back"})).status_code == 201


async def test_the_platform_starts_a_tenants_subscription_with_a_trial(
    billing_live: BillingLive, localstripe: LocalStripe
) -> None:
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    started = await http.post(
        f"/v1/platform/tenants/{tenant.id}/subscription",
        json={"plan": plan["code"], "trial_days": 14},
        headers=PLATFORM,
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "trialing" and body["payment_method"] is None and body["invoices"] == []
    trial_end = body["subscription"]["trial_end"]
    assert trial_end and trial_end > (utcnow() + timedelta(days=13)).isoformat()
    twice = await http.post(
        f"/v1/platform/tenants/{tenant.id}/subscription", json={"plan": plan["code"]}, headers=PLATFORM
    )
    assert twice.status_code == 409 and twice.json()["type"].endswith("/subscription-exists")
    seen = await http.get(f"/v1/platform/tenants/{tenant.id}/billing", headers=PLATFORM)
    assert seen.json()["status"] == "trialing" and (await billing(tenant))["status"] == "trialing"
    # The operator's plan change goes through Stripe (the subscription moves to the new plan).
    other = await make_plan(http, monthly_price="19.00")
    moved = await http.patch(f"/v1/platform/tenants/{tenant.id}", json={"plan": other["code"]}, headers=PLATFORM)
    assert moved.status_code == 200 and moved.json()["plan"] == other["code"]
    stripe_plan = localstripe.get(f"/v1/subscriptions/{body['subscription']['id']}")["plan"]["id"]
    assert stripe_plan == f"fealty-{other['code']}-gbp-1900"
    missing = await http.post(
        f"/v1/platform/tenants/{uuid.uuid4()}/subscription", json={"plan": plan["code"]}, headers=PLATFORM
    )
    assert missing.status_code == 404


async def test_no_subscription_without_a_payment_method_or_a_known_plan(billing_live: BillingLive) -> None:
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    no_card = await tenant.post("/v1/billing/subscription", json={"plan": plan["code"]})
    assert no_card.status_code == 409 and no_card.json()["type"].endswith("/payment-method-required")
    unknown = await tenant.post("/v1/billing/subscription", json={"plan": "no-such-plan", "trial_days": 3})
    assert unknown.status_code == 422 and unknown.json()["field"] == "plan"
    bad_card = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": "pm_does_not_exist"})
    assert bad_card.status_code == 422 and bad_card.json()["field"] == "payment_method_id"
    declined = await tenant.post(
        "/v1/billing/payment-method", json={"payment_method_id": "pm_card_visa_chargeDeclined"}
    )
    assert declined.status_code == 402 and declined.json()["type"].endswith("/payment-failed")
    assert (await billing(tenant))["payment_method"] is None
    nothing = await tenant.patch("/v1/billing/subscription", json={"cancel_at_period_end": True})
    assert nothing.status_code == 409 and nothing.json()["type"].endswith("/no-subscription")
    await subscribe(tenant, plan)
    assert (await billing(tenant))["status"] == "active"
