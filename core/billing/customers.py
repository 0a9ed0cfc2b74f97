"""A tenant's Stripe customer, made once.

The customer is created inside the transaction that creates the tenant, as its last step: if Stripe cannot be
reached the request fails with 503 and the transaction rolls back, so no tenant ever exists half-made (without its
customer) and there is nothing to repair. The idempotency key is derived from the tenant's slug and name, not from
anything random, so whatever the retry -- the same request with its Idempotency-Key, or a plain new request with the
same slug and name -- Stripe returns the customer it may already have made for a first attempt whose answer was
lost, instead of making a second. A customer orphaned by an attempt that failed after Stripe answered is never
billed: only the customer recorded on the tenant ever gets a subscription.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.ext.asyncio import AsyncSession

from core.adapters.stripe import StripeGateway
from core.tenancy.models import Tenant


def customer_idempotency_key(slug: str, name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"fealty-customer-{slug}-{digest}"


async def ensure_customer(session: AsyncSession, gateway: StripeGateway, tenant: Tenant) -> str:
    """The tenant's Stripe customer id, creating the customer when the tenant has none yet."""
    if tenant.stripe_customer_id:
        return tenant.stripe_customer_id
    customer = await gateway.create_customer(
        name=tenant.name,
        metadata={"fealty_slug": tenant.slug},
        idempotency_key=customer_idempotency_key(tenant.slug, tenant.name),
    )
    tenant.stripe_customer_id = customer.id
    await session.flush()
    return customer.id
