"""Reading and changing a tenant's program settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.errors import ValidationFailed
from core.program.models import Program
from core.runtime import Runtime
from core.tenancy.models import Tenant


async def load_program(session: AsyncSession) -> Program:
    program = (await session.execute(select(Program))).scalar_one()
    return program


async def set_enabled_plugins(
    session: AsyncSession, runtime: Runtime, names: list[str], settings: dict[str, dict[str, Any]] | None = None
) -> Program:
    """Enable exactly ``names`` for the current tenant, validating each plugin's settings with its own schema."""
    known = runtime.plugins.available()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValidationFailed(f"Unknown plugin(s) {unknown}; installed: {sorted(known)}.", field="plugins")
    program = await load_program(session)
    options = dict(program.options or {})
    current_settings: dict[str, Any] = dict(options.get("plugin_settings", {}))
    for name, value in (settings or {}).items():
        if name not in names:
            raise ValidationFailed(
                f"Settings given for plugin '{name}', which is not enabled.", field="plugin_settings"
            )
        current_settings[name] = runtime.plugins.validate_settings(name, value)
    for name in names:
        if name not in current_settings:
            current_settings[name] = runtime.plugins.validate_settings(name, {})
    options["plugins"] = sorted(set(names))
    tenant = await session.get(Tenant, program.tenant_id)
    assert tenant is not None
    tenant.enabled_plugins = options["plugins"]
    options["plugin_settings"] = {n: current_settings[n] for n in sorted(set(names))}
    program.options = options
    program.updated_at = utcnow()
    await session.flush()
    return program
