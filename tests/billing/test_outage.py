"""Stripe goes down (localstripe actually stopped) while a tenant is being created, a webhook is being applied and a
usage period is being closed: nothing is half-done, and each completes, once, when Stripe is back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from core.billing.models import StripeEvent
from core.billing.periods import close_billing_periods
from core.billing.rules import usage_period
from core.clock import utcnow
from core.runtime import Runtime
from core.tenancy.models import Tenant
from tests.billing.conftest import billing_settings
from tests.billing.support import (
    PLATFORM,
    LocalStripe,
    activity,
    billing,
    customer_of,
    deliver,
    make_plan,
    make_tenant,
    running_app,
    subscribe,
)


def _body(slug: str) -> dict[str, str]:
    return {"name": f"Tenant {slug}", "slug": slug, "timezone": "Europe/Paris", "currency": "EUR"}


async def test_a_stripe_outage_leaves_nothing_half_done_and_retries_complete_everything_once(
    database_url: str, tmp_path: Path
) -> None:
    stripe = LocalStripe(state_file=tmp_path / "stripe-state.pickle")
    stripe.start()
    try:
        async with running_app(billing_settings(database_url, stripe)) as app:
            runtime: Runtime = app.app.state["runtime"]
            # Before the outage: a subscribed tenant with usage over its plan, and one of Stripe's events for it.
            plan = await make_plan(app)
            tenant = await make_tenant(app)
            await subscribe(tenant, plan)
            members = [(await tenant.enrol())["id"] for _ in range(3)]
            await activity(runtime, tenant, members, events_each=500)
            customer = await customer_of(app, tenant)
            event = next(e for e in stripe.events_of(customer) if e["type"] == "invoice.payment_succeeded")
            close_at = usage_period(utcnow())[1] + timedelta(hours=2)
            slug, plain_slug = f"outage-{uuid.uuid4().hex[:8]}", f"plain-{uuid.uuid4().hex[:8]}"
            create_with_key = PLATFORM | {"Idempotency-Key": f"create-{slug}"}

            stripe.stop()  # ---------------------------------------------------------------- Stripe is down

            failed = await app.post("/v1/platform/tenants", json=_body(slug), headers=create_with_key)
            assert failed.status_code == 503, failed.text
            assert failed.json()["type"].endswith("/billing-unavailable") and failed.headers["retry-after"] == "30"
            assert (await app.post("/v1/platform/tenants", json=_body(plain_slug), headers=PLATFORM)).status_code == 503
            async with runtime.sessionmaker() as session:
                made = (await session.execute(select(Tenant.slug).where(Tenant.slug.in_([slug, plain_slug])))).all()
            assert made == []  # no tenant, no key, no Idempotency-Key remembered

            unapplied = await deliver(app, event)
            assert unapplied.status_code == 503  # Stripe will deliver it again
            async with runtime.sessionmaker() as session:
                assert (
                    await session.execute(select(StripeEvent.id).where(StripeEvent.id == event["id"]))
                ).first() is None

            down = await close_billing_periods(runtime, close_at)
            assert any(str(tenant.id) in error for error in down.errors)
            assert (await billing(tenant))["closed_periods"] == []  # still open, nothing recorded as billed

            stripe.start()  # ------------------------------------------- Stripe is back, with what it had before

            assert stripe.customers_with_slug(slug) == []
            retried = await app.post("/v1/platform/tenants", json=_body(slug), headers=create_with_key)
            assert retried.status_code == 201, retried.text
            created = retried.json()["tenant"]["stripe_customer_id"]
            assert [c["id"] for c in stripe.customers_with_slug(slug)] == [created]
            secret = retried.json()["api_key"]["secret"]
            assert (await app.get("/v1/program", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
            replayed = await app.post("/v1/platform/tenants", json=_body(slug), headers=create_with_key)
            assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
            again = await app.post("/v1/platform/tenants", json=_body(slug), headers=PLATFORM)
            assert again.status_code == 409 and again.json()["field"] == "slug"
            assert len(stripe.customers_with_slug(slug)) == 1  # never a second customer
            plain = await app.post("/v1/platform/tenants", json=_body(plain_slug), headers=PLATFORM)
            assert plain.status_code == 201 and len(stripe.customers_with_slug(plain_slug)) == 1

            redelivered = await deliver(app, event)
            assert redelivered.status_code == 200 and redelivered.json()["outcome"] == "applied"

            back = await close_billing_periods(runtime, close_at)
            assert not back.errors
            items = [i for i in stripe.invoice_items(customer) if "fealty_usage_key" in i["metadata"]]
            assert [i["amount"] for i in items] == [250]
            assert (await close_billing_periods(runtime, close_at)).billed == 0
            assert len([i for i in stripe.invoice_items(customer) if "fealty_usage_key" in i["metadata"]]) == 1
            assert [p["status"] for p in (await billing(tenant))["closed_periods"]] == ["billed"]
    finally:
        stripe.close()
