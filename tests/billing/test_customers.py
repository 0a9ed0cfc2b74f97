"""Creating a tenant creates its Stripe customer, once, and a Stripe outage never leaves a half-made tenant."""

from __future__ import annotations

from core.testing import AppClient
from tests.billing.support import PLATFORM, LocalStripe, make_tenant


def _body(slug: str) -> dict[str, str]:
    return {"name": f"Tenant {slug}", "slug": slug, "timezone": "Europe/Paris", "currency": "EUR"}


async def test_a_tenant_is_created_with_its_stripe_customer(
    billing_client: AppClient, localstripe: LocalStripe
) -> None:
    tenant = await make_tenant(billing_client)
    created = tenant.data["tenant"]
    assert created["billing_status"] == "none" and created["stripe_customer_id"].startswith("cus_")
    customer = localstripe.get(f"/v1/customers/{created['stripe_customer_id']}")
    assert customer["name"] == tenant.slug and customer["metadata"] == {"fealty_slug": tenant.slug}
    assert len(localstripe.customers_with_slug(tenant.slug)) == 1
    # Nothing else is billed yet: no subscription, writes work.
    assert (await tenant.post("/v1/members", json={"external_id": "m-1"})).status_code == 201


async def test_without_a_stripe_key_billing_is_off_and_stripe_never_called(client: AppClient, tenant) -> None:
    got = (await client.get(f"/v1/platform/tenants/{tenant.id}", headers=PLATFORM)).json()
    assert got["stripe_customer_id"] is None and got["billing_status"] == "none"
    billing = (await tenant.get("/v1/billing")).json()
    assert billing["enabled"] is False and billing["status"] == "none"
    refused = await tenant.post("/v1/billing/subscription", json={"plan": "any"})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/billing-disabled")
