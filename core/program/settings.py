"""The program settings a request works with, read once per request (together with authentication)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.plugin.manager import PluginManager, TenantHooks
from core.plugin.types import TenantView
from core.program.models import Program

_programs = table_of(Program)


@dataclass(frozen=True)
class ProgramSettings:
    timezone: str
    currency: str
    country: str | None = None
    points_name: str = "points"
    expiry_kind: str = "never"
    expiry_value: int | None = None
    reversal_policy: str = "claw_back"
    auto_enrol: bool = False
    config_version: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled_plugins(self) -> list[str]:
        return list(self.options.get("plugins", []))

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def tenant_view(self, tenant_id: uuid.UUID, plugins: PluginManager) -> TenantView:
        """What plugin hooks see of the tenant: its settings and each enabled plugin's decoded settings."""
        stored = self.options.get("plugin_settings", {})
        return TenantView(
            tenant_id,
            self.timezone,
            self.currency,
            self.country,
            plugins.tenant_view_settings(self.enabled_plugins, stored),
        )

    def hooks(self, plugins: PluginManager) -> TenantHooks:
        return plugins.for_tenant(self.enabled_plugins)

    @classmethod
    def from_mapping(cls, row: Any) -> ProgramSettings:
        return cls(
            timezone=row["timezone"],
            currency=row["currency"],
            country=row["country"],
            points_name=row["points_name"],
            expiry_kind=row["expiry_kind"],
            expiry_value=row["expiry_value"],
            reversal_policy=row["reversal_policy"],
            auto_enrol=bool(row["auto_enrol"]),
            config_version=int(row["config_version"]),
            options=dict(row["options"] or {}),
        )


async def load_program_settings(session: AsyncSession, tenant_id: uuid.UUID) -> ProgramSettings:
    """A tenant's program settings, read in ``session`` (the worker's and the background jobs' way; requests get them
    with authentication)."""
    row = (await session.execute(select(_programs).where(_programs.c.tenant_id == tenant_id))).one()
    return ProgramSettings.from_mapping(row._mapping)
