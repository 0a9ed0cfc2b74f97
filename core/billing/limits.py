"""A plan's limits, enforced where they bite. The rate limit is applied by the middleware (the plan's
``rate_limit_per_second`` replaces the deployment's); the member limit on enrolment, here (the caller passes the
plan's figures: billing knows nothing of HTTP)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.errors import PlanLimitReached
from core.members.models import Member
from core.tenancy.models import Tenant

members = table_of(Member)


async def check_member_limit(
    session: AsyncSession, tenant_id: uuid.UUID | None, *, limit: int | None, plan_code: str | None
) -> None:
    """Refuse to enrol one more member than the plan's ``max_members`` (anonymized members do not count).

    The tenant's row is locked first, so concurrent enrolments at the limit are counted one after the other."""
    if limit is None or tenant_id is None:
        return
    await session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    count = (
        await session.execute(
            select(func.count())
            .select_from(members)
            .where(members.c.tenant_id == tenant_id, members.c.status == "active")
        )
    ).scalar_one()
    if count >= limit:
        raise PlanLimitReached(
            f"The plan ({plan_code}) allows {limit} members and the program has {count}; "
            "move to a larger plan (PATCH /v1/billing/subscription) to enrol more.",
            field="plan",
            limit=limit,
        )
