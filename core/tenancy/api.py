"""HTTP: the platform operator's tenant management, and a tenant's own API keys."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select

from core import validation
from core.billing import plans
from core.billing import service as billing
from core.billing.rules import usage_period
from core.billing.usage import Usage, usage_of, usage_of_tenants
from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from core.http.deps import CurrentPrincipal, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.program.service import set_enabled_plugins
from core.tenancy import service
from core.tenancy.keys import SCOPES
from core.tenancy.models import ApiKey, Tenant

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Scope = Literal["admin", "events:write", "members:read", "members:write", "rewards:write", "reports:read"]
assert set(Scope.__args__) == set(SCOPES)  # type: ignore[attr-defined]


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    slug: Annotated[str, Meta(min_length=1, max_length=63, pattern=SLUG.pattern)]
    timezone: str
    currency: str
    country: str | None = None
    plan: str | None = None
    plugins: list[str] = msgspec.field(default_factory=list)


class TenantUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    status: Literal["active", "suspended"] | UnsetType = UNSET
    plan: str | UnsetType | None = UNSET


class TenantUsageOut(msgspec.Struct):
    """Usage in the current period (a calendar month, UTC)."""

    period_start: datetime
    period_end: datetime
    active_members: int
    events: int


class TenantOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    slug: str
    status: str
    #: The program's IANA time zone and ISO 4217 currency (changed with PATCH /v1/program).
    timezone: str | None
    currency: str | None
    plan: str | None
    billing_status: str
    created_at: datetime
    stripe_customer_id: str | None = None
    #: Stripe's status of the tenant's subscription.
    subscription_status: str | None = None
    current_period_end: datetime | None = None
    usage: TenantUsageOut | None = None

    @classmethod
    def of(cls, tenant: Tenant, usage: Usage | None = None) -> TenantOut:
        return cls(
            tenant.id,
            tenant.name,
            tenant.slug,
            tenant.status,
            tenant.timezone,
            tenant.currency,
            tenant.plan_code,
            tenant.billing_status,
            tenant.created_at,
            tenant.stripe_customer_id,
            tenant.subscription_status,
            tenant.current_period_end,
            TenantUsageOut(usage.period_start, usage.period_end, usage.active_members, usage.events) if usage else None,
        )


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], Meta(min_length=1)]


class ApiKeyOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    scopes: list[str]
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(key.id, key.name, list(key.scopes), key.key_hint, key.created_at, key.last_used_at, key.revoked_at)


class IssuedApiKeyOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    scopes: list[str]
    #: The key itself. Shown once: store it now; Fealty keeps only its hash.
    secret: str
    created_at: datetime


class TenantCreated(msgspec.Struct):
    tenant: TenantOut
    api_key: IssuedApiKeyOut


def _issued(issued: service.IssuedKey) -> IssuedApiKeyOut:
    key = issued.key
    return IssuedApiKeyOut(key.id, key.name, list(key.scopes), issued.secret, key.created_at)


async def _tenant(db: Db, tenant_id: FromPath[uuid.UUID]) -> Tenant:
    tenant = await db.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.", field="tenant_id")
    return tenant


async def _check_plan(db: Db, code: str) -> None:
    """Plans are data (``/v1/platform/plans``) whether or not billing is on: a tenant is never put on a plan that
    does not exist or is no longer offered."""
    await plans.get_plan(db, code, for_sale=True)


class PlatformTenantsController(Controller):
    path = "/v1/platform/tenants"
    tags = ["platform"]
    opt = {"auth": "platform"}

    @post(operation_id="createTenant", opt={"idempotency_redact": ("api_key.secret",)})
    async def create_tenant(self, db: Db, runtime: CurrentRuntime, data: JSONBody[TenantCreate]) -> TenantCreated:
        """Create a tenant with its program settings and a first admin API key (its secret is shown only here)."""
        if not SLUG.match(data.slug):
            raise ValidationFailed("slug: lower-case letters, digits and inner hyphens only.", field="slug")
        timezone = validation.time_zone(data.timezone)
        currency = validation.currency(data.currency)
        country = validation.country(data.country) if data.country else None
        if data.plan is not None:
            await _check_plan(db, data.plan)
        unknown = sorted(set(data.plugins) - set(runtime.plugins.available()))
        if unknown:  # checked before Stripe is called, so a bad request never reaches Stripe
            raise ValidationFailed(
                f"Unknown plugin(s) {unknown}; installed: {sorted(runtime.plugins.available())}.", field="plugins"
            )
        tenant, issued = await service.create_tenant(
            db,
            name=data.name,
            slug=data.slug,
            timezone=timezone,
            currency=currency,
            country=country,
            plan_code=data.plan,
            stripe=billing.stripe_gateway(runtime),
        )
        if data.plugins:
            await set_enabled_plugins(db, runtime.plugins, data.plugins)
        await runtime.tenant_changed(db, tenant.id)
        return TenantCreated(TenantOut.of(tenant), _issued(issued))

    @get(operation_id="listTenants")
    async def list_tenants(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        status: FromQuery[Literal["active", "suspended"] | None] = None,
    ) -> Page[TenantOut]:
        """Every tenant with its status, plan, billing standing and usage this period, oldest first."""
        check_limit(limit)
        query = select(Tenant).order_by(Tenant.id).limit(limit + 1)
        if cursor:
            query = query.where(Tenant.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        if status:
            query = query.where(Tenant.status == status)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda t: encode_cursor(t.id))
        ids = [t.id for t in items]
        usage = await usage_of_tenants(db, ids, utcnow())
        return Page(
            [TenantOut.of(t, usage.get(t.id) or Usage(*usage_period(utcnow()))) for t in items],
            next_cursor,
        )

    @get("/{tenant_id:uuid}", operation_id="getTenant")
    async def get_tenant(self, db: Db, tenant_id: FromPath[uuid.UUID]) -> TenantOut:
        tenant = await _tenant(db, tenant_id)
        return TenantOut.of(tenant, await usage_of(db, tenant_id, utcnow()))

    @patch("/{tenant_id:uuid}", operation_id="updateTenant")
    async def update_tenant(
        self, db: Db, runtime: CurrentRuntime, tenant_id: FromPath[uuid.UUID], data: JSONBody[TenantUpdate]
    ) -> TenantOut:
        """Rename, suspend or resume (a suspended tenant's every call is refused; nothing is deleted), change plan
        (through Stripe, prorated, when the tenant has a subscription)."""
        tenant = await _tenant(db, tenant_id)
        if data.plan is not UNSET and data.plan and data.plan != tenant.plan_code:
            await _check_plan(db, data.plan)
        if (
            data.plan is not UNSET
            and data.plan
            and billing.has_live_subscription(tenant)
            and runtime.settings.billing_enabled
        ):
            await billing.change_subscription(db, runtime, tenant_id, plan_code=data.plan, now=utcnow())
            tenant = await _tenant(db, tenant_id)
        elif data.plan is not UNSET:
            tenant.plan_code = data.plan
        if data.name is not UNSET:
            tenant.name = data.name
        if data.status is not UNSET:
            tenant.status = data.status
        tenant.updated_at = utcnow()
        await db.flush()
        if data.status is not UNSET:  # a suspended tenant's recurring work stops at once, a resumed one's starts
            await runtime.tenant_changed(db, tenant_id)
        return TenantOut.of(tenant)

    @post("/{tenant_id:uuid}/api-keys", operation_id="issueTenantApiKey", opt={"idempotency_redact": ("secret",)})
    async def issue_key(self, db: Db, tenant_id: FromPath[uuid.UUID], data: JSONBody[ApiKeyCreate]) -> IssuedApiKeyOut:
        """Give a tenant a new key (for example when its admins have revoked or lost every admin key)."""
        await _tenant(db, tenant_id)
        await service.enter_tenant(db, tenant_id)
        return _issued(await service.issue_api_key(db, tenant_id, name=data.name, scopes=list(data.scopes)))


class ApiKeysController(Controller):
    path = "/v1/api-keys"
    tags = ["api-keys"]
    opt = {"scope": "admin"}

    @post(operation_id="createApiKey", opt={"idempotency_redact": ("secret",)})
    async def create_key(self, db: Db, principal: CurrentPrincipal, data: JSONBody[ApiKeyCreate]) -> IssuedApiKeyOut:
        """A new key with the given scopes. The secret is in this response only."""
        assert principal.tenant_id is not None
        return _issued(await service.issue_api_key(db, principal.tenant_id, name=data.name, scopes=list(data.scopes)))

    @get(operation_id="listApiKeys")
    async def list_keys(
        self, db: Db, cursor: FromQuery[str | None] = None, limit: FromQuery[int] = 50
    ) -> Page[ApiKeyOut]:
        check_limit(limit)
        query = select(ApiKey).order_by(ApiKey.id).limit(limit + 1)
        if cursor:
            query = query.where(ApiKey.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda k: encode_cursor(k.id))
        return Page([ApiKeyOut.of(k) for k in items], next_cursor)

    # Revoking a leaked key is never refused, whatever the tenant's billing standing.
    @delete("/{key_id:uuid}", operation_id="revokeApiKey", status_code=200, opt={"allowed_when_suspended": True})
    async def revoke_key(self, db: Db, key_id: FromPath[uuid.UUID]) -> ApiKeyOut:
        """Revoke a key at once: every later call with it answers 401. Revoking twice is harmless."""
        return ApiKeyOut.of(await service.revoke_api_key(db, key_id, utcnow()))
