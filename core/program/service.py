"""Reading and changing a tenant's program settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.errors import ValidationFailed
from core.ledger import maths
from core.plugin.types import TenantView
from core.program.models import EXPIRY_KINDS, Program
from core.tenancy.models import Tenant

if TYPE_CHECKING:
    from core.plugin.manager import PluginManager


async def load_program(session: AsyncSession) -> Program:
    program = (await session.execute(select(Program))).scalar_one()
    return program


async def set_enabled_plugins(
    session: AsyncSession, plugins: PluginManager, names: list[str], settings: dict[str, dict[str, Any]] | None = None
) -> Program:
    """Enable exactly ``names`` for the current tenant, validating each plugin's settings with its own schema.

    Each plugin that was not enabled before hears ``fealty_plugin_enabled`` once, in this transaction, after its
    settings are stored (it may set up its defaults, or refuse with a FealtyError)."""
    known = plugins.available()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValidationFailed(f"Unknown plugin(s) {unknown}; installed: {sorted(known)}.", field="plugins")
    program = await load_program(session)
    options = dict(program.options or {})
    before = set(options.get("plugins", []))
    current_settings: dict[str, Any] = dict(options.get("plugin_settings", {}))
    for name, value in (settings or {}).items():
        if name not in names:
            raise ValidationFailed(
                f"Settings given for plugin '{name}', which is not enabled.", field="plugin_settings"
            )
        current_settings[name] = plugins.validate_settings(name, value)
    for name in names:
        if name not in current_settings:
            current_settings[name] = plugins.validate_settings(name, {})
    options["plugins"] = sorted(set(names))
    tenant = await session.get(Tenant, program.tenant_id)
    assert tenant is not None
    tenant.enabled_plugins = options["plugins"]
    options["plugin_settings"] = {n: current_settings[n] for n in sorted(set(names))}
    program.options = options
    program.updated_at = utcnow()
    await session.flush()
    newly = sorted(set(names) - before)
    if newly:
        view = TenantView(
            program.tenant_id,
            program.timezone,
            program.currency,
            program.country,
            plugins.tenant_view_settings(options["plugins"], options["plugin_settings"]),
        )
        await plugins.for_tenant(newly).plugin_enabled(view, session, program.updated_at)
    return program


@dataclass(frozen=True)
class ExpiryPolicyView:
    """The program's points expiry policy: ``never``, ``days_after_earn`` (days), ``end_of_month_after`` (months) or
    ``inactivity`` (months without qualifying activity)."""

    kind: str
    value: int | None


async def expiry_policy(session: AsyncSession) -> ExpiryPolicyView:
    """The current tenant's points expiry policy."""
    program = await load_program(session)
    return ExpiryPolicyView(program.expiry_kind, program.expiry_value)


async def set_expiry_policy(session: AsyncSession, kind: str, value: int | None = None) -> ExpiryPolicyView:
    """Change the current tenant's points expiry policy, as ``PATCH /v1/program {"expiry_policy": ...}`` does: it
    applies to points earned from now on. A kind that needs a value and has none is a 422 naming the field."""
    if kind not in EXPIRY_KINDS:
        raise ValidationFailed(f"expiry_policy.kind must be one of {list(EXPIRY_KINDS)}.", field="expiry_policy.kind")
    if value is not None and not 1 <= value <= 1200:
        raise ValidationFailed("expiry_policy.value must be between 1 and 1200.", field="expiry_policy.value")
    try:
        maths.ExpiryPolicy(kind, value)  # type: ignore[arg-type]
    except ValueError:
        raise ValidationFailed(f"expiry_policy.value is required for '{kind}'.", field="expiry_policy.value") from None
    program = await load_program(session)
    program.expiry_kind = kind
    program.expiry_value = None if kind == "never" else value
    program.updated_at = utcnow()
    await session.flush()
    return ExpiryPolicyView(program.expiry_kind, program.expiry_value)
