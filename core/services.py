"""Core's services as plugin hooks call them (``ctx.services``): the :class:`core.plugin.types.Services` facade,
bound to the hook's transaction, tenant and clock. The runtime hands :class:`CoreServices` to the plugin manager."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from core.care import service as care
from core.cases import service as cases
from core.ledger import plugin_points
from core.members.views import load_member_view
from core.outbox import service as outbox
from core.plugin.types import CaseView, MemberView, TenantView
from core.program import service as program
from core.tiers import catalog
from core.tiers import service as tiers


@dataclass(frozen=True)
class CoreServices:
    session: AsyncSession
    tenant: TenantView
    now: datetime

    async def credit_points(
        self,
        member_id: uuid.UUID,
        points: int,
        *,
        plugin: str,
        reason: str,
        reference: str | None = None,
        available_at: datetime | None = None,
        counts_as_activity: bool = False,
        details: dict[str, Any] | None = None,
    ) -> plugin_points.PointsMoved:
        return await plugin_points.credit_points(
            self.session,
            tenant_id=self.tenant.id,
            member_id=member_id,
            points=points,
            plugin=plugin,
            reason=reason,
            reference=reference,
            available_at=available_at,
            counts_as_activity=counts_as_activity,
            details=details,
            now=self.now,
        )

    async def debit_points(
        self,
        member_id: uuid.UUID,
        points: int,
        *,
        plugin: str,
        reason: str,
        reference: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> plugin_points.PointsMoved:
        return await plugin_points.debit_points(
            self.session,
            tenant_id=self.tenant.id,
            member_id=member_id,
            points=points,
            plugin=plugin,
            reason=reason,
            reference=reference,
            details=details,
            now=self.now,
        )

    async def request_care(
        self,
        member_id: uuid.UUID,
        *,
        kind: str,
        purpose: Literal["service", "marketing", "safety"],
        source: str,
        dedupe_key: str,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        return await care.request_care(
            self.session,
            tenant_id=self.tenant.id,
            member_id=member_id,
            kind=kind,
            purpose=purpose,
            source=source,
            dedupe_key=dedupe_key,
            payload=payload,
            now=self.now,
        )

    async def request_care_many(
        self,
        asks: Sequence[care.CareAsk],
        *,
        kind: str,
        purpose: Literal["service", "marketing", "safety"],
        source: str,
    ) -> list[str]:
        return await care.request_care_many(
            self.session,
            tenant_id=self.tenant.id,
            kind=kind,
            purpose=purpose,
            source=source,
            asks=asks,
            now=self.now,
        )

    async def emit(self, kind: str, data: dict[str, Any], member_id: uuid.UUID | None = None) -> None:
        await outbox.emit(self.session, self.tenant.id, kind, data, member_id)

    async def assign_tier(self, member_id: uuid.UUID, tier_code: str, *, until: datetime | None, reason: str) -> None:
        await tiers.assign_tier(
            self.session, self.tenant.id, member_id, tier_code, until=until, reason=reason, now=self.now
        )

    async def tier_codes(self) -> list[str]:
        return await catalog.tier_codes(self.session)

    async def create_tier(self, definition: dict[str, Any]) -> uuid.UUID:
        return await catalog.create_tier(self.session, definition)

    async def expiry_policy(self) -> program.ExpiryPolicyView:
        return await program.expiry_policy(self.session)

    async def set_expiry_policy(self, kind: str, value: int | None = None) -> program.ExpiryPolicyView:
        return await program.set_expiry_policy(self.session, kind, value)

    async def member(self, member_id: uuid.UUID) -> MemberView:
        return await load_member_view(self.session, member_id)

    async def open_case(
        self,
        member_id: uuid.UUID | None,
        *,
        subject: str,
        source: str,
        kind: str = "complaint",
        description: str = "",
        category: str | None = None,
        priority: str | None = None,
        channel: str = "plugin",
        related: dict[str, str] | None = None,
        reference: str | None = None,
        actor: str | None = None,
    ) -> CaseView:
        case, _ = await cases.open_case(
            self.session,
            self.tenant,
            self.now,
            member_id=member_id,
            subject=subject,
            source=source,
            kind=kind,
            description=description,
            category=category,
            priority=priority,
            channel=channel,
            related=related,
            reference=reference,
            actor=actor,
        )
        return cases.case_view(case, await cases.category_code(self.session, case.category_id))

    async def ensure_case_category(
        self,
        code: str,
        *,
        names: dict[str, str],
        first_reply_hours: float | None = None,
        resolution_hours: float | None = None,
        default_priority: str = "normal",
        business_hours: bool = False,
    ) -> bool:
        return await cases.ensure_category(
            self.session,
            self.tenant.id,
            self.now,
            code,
            names=names,
            first_reply_hours=first_reply_hours,
            resolution_hours=resolution_hours,
            default_priority=default_priority,
            business_hours=business_hours,
        )
