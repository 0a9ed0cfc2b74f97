"""Tenants, API keys and the platform credential."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.stripe import StripeGateway
from core.billing.customers import ensure_customer
from core.clock import utcnow
from core.db.engine import tenant_session
from core.db.lookup import one_or_404
from core.db.tenancy import apply_database_tenant, set_current_tenant
from core.errors import AlreadyExists, ValidationFailed
from core.ids import new_id
from core.program.models import Program
from core.tenancy.keys import SCOPES, hash_key, key_hint, new_platform_key, new_tenant_key
from core.tenancy.models import ApiKey, PlatformCredential, Tenant


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str


async def enter_tenant(session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
    """Switch the open transaction to ``tenant_id`` (the platform acting for a tenant it has just created; None:
    back to no tenant)."""
    set_current_tenant(tenant_id)
    connection = await session.connection()
    await connection.run_sync(lambda sync: apply_database_tenant(sync, tenant_id))


async def create_tenant(
    session: AsyncSession,
    *,
    name: str,
    slug: str,
    timezone: str,
    currency: str,
    country: str | None = None,
    plan_code: str | None = None,
    stripe: StripeGateway | None = None,
) -> tuple[Tenant, IssuedKey]:
    """A tenant, its program settings and its first admin key (the only time the secret is visible).

    With billing enabled (``stripe`` given) the tenant's Stripe customer is created last, in the same transaction:
    when Stripe cannot be reached this raises ``BillingUnavailable`` and the caller's transaction rolls back, so a
    tenant never exists without its customer, and any retry (same slug and name) gets the same customer back
    (see :mod:`core.billing.customers`).
    """
    if (await session.execute(select(Tenant.id).where(Tenant.slug == slug))).first() is not None:
        raise AlreadyExists(f"A tenant with slug '{slug}' already exists.", field="slug")
    tenant = Tenant(
        id=new_id(),
        name=name,
        slug=slug,
        status="active",
        plan_code=plan_code,
        billing_status="none",
        timezone=timezone,
        currency=currency,
    )
    session.add(tenant)
    await session.flush()
    await enter_tenant(session, tenant.id)
    session.add(Program(tenant_id=tenant.id, timezone=timezone, currency=currency, country=country))
    issued = await issue_api_key(session, tenant.id, name="admin (created with the tenant)", scopes=["admin"])
    if stripe is not None:
        await ensure_customer(session, stripe, tenant)
    return tenant, issued


async def issue_api_key(session: AsyncSession, tenant_id: uuid.UUID, *, name: str, scopes: list[str]) -> IssuedKey:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValidationFailed(
            f"Unknown scope(s) {unknown}; choose from {list(SCOPES)}." if unknown else "Give at least one scope.",
            field="scopes",
        )
    key_id = new_id()
    secret = new_tenant_key(tenant_id, key_id)
    key = ApiKey(
        tenant_id=tenant_id,
        id=key_id,
        name=name,
        key_hash=hash_key(secret),
        key_hint=key_hint(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key, secret)


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> ApiKey:
    key = await one_or_404(session, select(ApiKey).where(ApiKey.id == key_id), "No such API key.", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
    return key


async def touch_api_key(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, key_id: uuid.UUID
) -> None:
    """Record a key's last use (at most once a minute per key, in its own short transaction)."""
    async with tenant_session(sessionmaker, tenant_id) as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


async def ensure_platform_key(
    sessionmaker: async_sessionmaker[AsyncSession], *, generate: bool = True, rotate: bool = False
) -> tuple[str | None, str | None]:
    """The stored platform key hash; with ``generate``, a new key when there is none (or always, with ``rotate``).

    Returns ``(hash, new key or None)``: the new key is returned once and never stored, only its hash.
    """
    async with tenant_session(sessionmaker, None) as session:
        row = (
            await session.execute(select(PlatformCredential.key_hash).order_by(PlatformCredential.created_at.desc()))
        ).first()
        if row is not None and not rotate:
            return row.key_hash, None
        if not generate:
            return None, None
        key = new_platform_key()
        session.add(PlatformCredential(id=new_id(), key_hash=hash_key(key)))
        return hash_key(key), key
