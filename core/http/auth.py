"""Who is calling: the platform operator, a tenant's API key, or nobody.

A tenant key names its tenant, so the tenant context (and PostgreSQL's ``app.tenant_id``) is set before the key is
looked up: the lookup itself runs under row-level security, and the same query returns the tenant's status and
program settings, so a request costs one round trip for authentication and configuration together. It also brings
the tenant's billing standing (status, start of a delinquency) and its plan's limits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing.models import Plan
from core.db.base import table_of
from core.errors import AuthenticationRequired
from core.program.models import Program
from core.program.settings import ProgramSettings
from core.tenancy.keys import ParsedTenantKey, keys_match
from core.tenancy.models import ApiKey, Tenant

LAST_USED_RESOLUTION = timedelta(minutes=1)

api_keys = table_of(ApiKey)
tenants = table_of(Tenant)
programs = table_of(Program)
plans = table_of(Plan)


@dataclass(frozen=True)
class Principal:
    kind: Literal["tenant", "platform", "anonymous"]
    tenant_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    tenant_status: str | None = None
    billing_status: str | None = None
    #: When the tenant's current delinquency began (the grace period runs from here).
    past_due_since: datetime | None = None
    plan_code: str | None = None
    #: The plan's limits (None: no limit of the plan's own).
    plan_rate_limit: float | None = None
    plan_max_members: int | None = None
    program: ProgramSettings | None = None
    #: The key's last use was recorded long enough ago to record again (after the request).
    touch_last_used: bool = False

    @property
    def actor(self) -> str:
        if self.kind == "tenant":
            return f"key:{self.key_id}"
        return self.kind

    def require_program(self) -> ProgramSettings:
        if self.program is None:
            raise AuthenticationRequired()
        return self.program


ANONYMOUS = Principal("anonymous")
PLATFORM = Principal("platform", scopes=frozenset({"platform"}))

_AUTH_QUERY = select(
    api_keys.c.key_hash,
    api_keys.c.scopes,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
    tenants.c.status.label("tenant_status"),
    tenants.c.billing_status,
    tenants.c.past_due_since,
    tenants.c.plan_code,
    plans.c.rate_limit_per_second.label("plan_rate_limit"),
    plans.c.max_members.label("plan_max_members"),
    programs.c.timezone,
    programs.c.currency,
    programs.c.country,
    programs.c.points_name,
    programs.c.expiry_kind,
    programs.c.expiry_value,
    programs.c.reversal_policy,
    programs.c.auto_enrol,
    programs.c.config_version,
    programs.c.options,
).select_from(
    api_keys.join(tenants, tenants.c.id == api_keys.c.tenant_id)
    .join(programs, programs.c.tenant_id == api_keys.c.tenant_id)
    .outerjoin(plans, plans.c.code == tenants.c.plan_code)
)


#: Built once: SQLAlchemy memoises the cache key of a statement object, so every request reuses the compiled form.
_AUTH_BY_KEY = _AUTH_QUERY.where(
    api_keys.c.tenant_id == bindparam("auth_tenant"), api_keys.c.id == bindparam("auth_key")
)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate_tenant_key(session: AsyncSession, parsed: ParsedTenantKey, now: datetime) -> Principal:
    row = (await session.execute(_AUTH_BY_KEY, {"auth_tenant": parsed.tenant_id, "auth_key": parsed.key_id})).first()
    if row is None or not keys_match(parsed.raw, row.key_hash):
        raise AuthenticationRequired("The API key is not valid.")
    if row.revoked_at is not None:
        raise AuthenticationRequired("The API key has been revoked.")
    m = row._mapping
    return Principal(
        kind="tenant",
        tenant_id=parsed.tenant_id,
        key_id=parsed.key_id,
        scopes=frozenset(row.scopes),
        tenant_status=row.tenant_status,
        billing_status=row.billing_status,
        past_due_since=row.past_due_since,
        plan_code=row.plan_code,
        plan_rate_limit=float(row.plan_rate_limit) if row.plan_rate_limit is not None else None,
        plan_max_members=row.plan_max_members,
        program=ProgramSettings.from_mapping(m),
        touch_last_used=row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION,
    )
