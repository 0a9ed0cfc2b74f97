"""HTTP: the tenant's program settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch
from litestar.params import JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import update

from core import validation
from core.clock import utcnow
from core.errors import ValidationFailed
from core.http.deps import CurrentRuntime, Db
from core.ledger import maths
from core.program.models import Program
from core.program.service import load_program, set_enabled_plugins
from core.tenancy.models import Tenant


class ExpiryPolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["never", "days_after_earn", "end_of_month_after", "inactivity"]
    #: Days for days_after_earn; months for end_of_month_after and inactivity.
    value: Annotated[int, Meta(ge=1, le=1200)] | None = None


class ProgramUpdate(msgspec.Struct, forbid_unknown_fields=True):
    timezone: str | UnsetType = UNSET
    currency: str | UnsetType = UNSET
    country: str | UnsetType | None = UNSET
    points_name: Annotated[str, Meta(min_length=1, max_length=40)] | UnsetType = UNSET
    expiry_policy: ExpiryPolicyIn | UnsetType = UNSET
    reversal_policy: Literal["allow_negative", "claw_back"] | UnsetType = UNSET
    #: Enrol unknown members on their first event (found by external_id, card or phone).
    auto_enrol: bool | UnsetType = UNSET
    plugins: list[str] | UnsetType = UNSET
    plugin_settings: dict[str, dict[str, Any]] | UnsetType = UNSET
    #: Days the tenant's finished webhook deliveries and dispatched events are kept (within the platform's bounds,
    #: ``FEALTY_RETENTION_MIN_DAYS``..``FEALTY_RETENTION_MAX_DAYS``); null: the platform's default.
    retention_days: Annotated[int, Meta(ge=1, le=3650)] | UnsetType | None = UNSET


class ProgramOut(msgspec.Struct):
    timezone: str
    currency: str
    country: str | None
    points_name: str
    expiry_policy: ExpiryPolicyIn
    reversal_policy: str
    auto_enrol: bool
    plugins: list[str]
    plugin_settings: dict[str, dict[str, Any]]
    #: The tenant's own retention in days, or null for the platform's default.
    retention_days: int | None = None

    @classmethod
    def of(cls, program: Program) -> ProgramOut:
        options = program.options or {}
        return cls(
            timezone=program.timezone,
            currency=program.currency,
            country=program.country,
            points_name=program.points_name,
            expiry_policy=ExpiryPolicyIn(program.expiry_kind, program.expiry_value),  # type: ignore[arg-type]
            reversal_policy=program.reversal_policy,
            auto_enrol=program.auto_enrol,
            plugins=list(options.get("plugins", [])),
            plugin_settings=dict(options.get("plugin_settings", {})),
            retention_days=options.get("retention_days"),
        )


class ProgramController(Controller):
    path = "/v1/program"
    tags = ["program"]
    opt = {"scope": "admin"}

    @get(operation_id="getProgram")
    async def get_program(self, db: Db) -> ProgramOut:
        return ProgramOut.of(await load_program(db))

    @patch(operation_id="updateProgram")
    async def update_program(self, db: Db, runtime: CurrentRuntime, data: JSONBody[ProgramUpdate]) -> ProgramOut:
        """Change settings. Expiry policy changes apply to points earned from now on."""
        program = await load_program(db)
        if data.timezone is not UNSET:
            program.timezone = validation.time_zone(data.timezone)
        if data.currency is not UNSET:
            program.currency = validation.currency(data.currency)
        if data.timezone is not UNSET or data.currency is not UNSET:
            await db.execute(
                update(Tenant)
                .where(Tenant.id == program.tenant_id)
                .values(timezone=program.timezone, currency=program.currency)
            )
        if data.country is not UNSET:
            program.country = validation.country(data.country) if data.country else None
        if data.points_name is not UNSET:
            program.points_name = data.points_name
        if data.expiry_policy is not UNSET:
            try:
                maths.ExpiryPolicy(data.expiry_policy.kind, data.expiry_policy.value)
            except ValueError:
                raise ValidationFailed(
                    f"expiry_policy.value is required for '{data.expiry_policy.kind}'.", field="expiry_policy.value"
                ) from None
            program.expiry_kind = data.expiry_policy.kind
            program.expiry_value = None if data.expiry_policy.kind == "never" else data.expiry_policy.value
        if data.reversal_policy is not UNSET:
            program.reversal_policy = data.reversal_policy
        if data.auto_enrol is not UNSET:
            program.auto_enrol = data.auto_enrol
        if data.retention_days is not UNSET:
            low, high = runtime.settings.retention_min_days, runtime.settings.retention_max_days
            if data.retention_days is not None and not low <= data.retention_days <= high:
                raise ValidationFailed(
                    f"retention_days must be between {low} and {high} on this platform.", field="retention_days"
                )
            options = {k: v for k, v in (program.options or {}).items() if k != "retention_days"}
            program.options = options | ({} if data.retention_days is None else {"retention_days": data.retention_days})
        program.updated_at = utcnow()
        await db.flush()
        if data.plugins is not UNSET or data.plugin_settings is not UNSET:
            names = data.plugins if data.plugins is not UNSET else list((program.options or {}).get("plugins", []))
            settings = data.plugin_settings if data.plugin_settings is not UNSET else None
            program = await set_enabled_plugins(db, runtime.plugins, names, settings)
            await runtime.tenant_changed(db, program.tenant_id)
        return ProgramOut.of(program)
