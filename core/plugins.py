"""The plugin manager: discovery (entry points ``fealty.plugins``), registration, per-tenant hook callers.

Core calls hooks only through :class:`TenantHooks`, whose typed methods call just the plugins the tenant enabled
(pluggy's ``subset_hook_caller``, cached per set of enabled plugins) and await what the implementations return.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import msgspec
import pluggy

from core import hookspecs
from core.care.policy import Verdict
from core.errors import ValidationFailed, invalid
from core.plugin_types import (
    Award,
    CareProtectionContext,
    CareTrigger,
    Credits,
    EventContext,
    EventType,
    FieldIssue,
    MemberView,
    PluginInfo,
    RedemptionView,
    ReversalView,
    ScheduledJob,
    Screening,
    TenantView,
    TierChange,
)

if TYPE_CHECKING:
    from core.settings import Settings

ENTRY_POINT_GROUP = "fealty.plugins"
CORE_PLUGIN = "core"
#: Where a session finds the process's plugins (set on the runtime's sessionmaker), for services plugins call with
#: only a session in hand (``assign_tier`` announces its move to the plugins).
SESSION_PLUGINS_KEY = "fealty.plugins"


def plugins_of(session: Any) -> PluginManager | None:
    """The plugins of the process that opened ``session`` (None for a session made elsewhere, e.g. a script's)."""
    manager = session.info.get(SESSION_PLUGINS_KEY)
    return manager if isinstance(manager, PluginManager) else None


hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)


def _entry_point_plugins() -> dict[str, PluginInfo]:
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.load()
        info = getattr(module, "PLUGIN", None)
        if not isinstance(info, PluginInfo):
            raise TypeError(f"entry point {ep.name}: {ep.value} has no PLUGIN = PluginInfo(...)")
        found[info.name] = info
    return found


def installed_plugins() -> dict[str, PluginInfo]:
    """Every installed plugin (entry points ``fealty.plugins``), imported: their models join ``Base.metadata``."""
    return _entry_point_plugins()


def installed_migration_dirs() -> list[Path]:
    """Every installed plugin's Alembic version directory (its own branch)."""
    return [p.migrations for p in _entry_point_plugins().values() if p.migrations and p.migrations.is_dir()]


async def await_maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class PluginManager:
    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, PluginInfo] = {}
        self._callers: dict[tuple[str, frozenset[str]], Any] = {}
        self._event_types: dict[str, EventType] | None = None
        from core import default_events

        self._pm.register(default_events, name=CORE_PLUGIN)

    @classmethod
    def from_entry_points(cls, names: Iterable[str] = ()) -> PluginManager:
        """Load installed plugins (only ``names`` when given)."""
        manager = cls()
        wanted = set(names)
        for name, info in sorted(_entry_point_plugins().items()):
            if not wanted or name in wanted:
                manager.register(info)
        missing = wanted - set(manager.available())
        if missing:
            raise ValueError(f"plugins not installed: {sorted(missing)}")
        return manager

    @classmethod
    def for_settings(cls, settings: Settings) -> PluginManager:
        """The plugins a process serves: every installed entry point, only ``FEALTY_PLUGINS`` when set, none when
        ``FEALTY_LOAD_ENTRY_POINT_PLUGINS`` is false."""
        if not settings.load_entry_point_plugins:
            return cls()
        return cls.from_entry_points(settings.plugins)

    def register(self, info: PluginInfo) -> None:
        if info.name in self._plugins or info.name == CORE_PLUGIN:
            raise ValueError(f"plugin {info.name!r} is already registered")
        if not info.name.replace("_", "").isalnum() or not info.name.islower():
            raise ValueError(f"plugin name {info.name!r}: lower-case letters, digits and underscores only")
        self._pm.register(info.hooks, name=info.name)
        self._pm.check_pending()
        self._plugins[info.name] = info
        self._callers.clear()
        self._event_types = None

    def available(self) -> dict[str, PluginInfo]:
        return dict(self._plugins)

    # --- settings -----------------------------------------------------------------------------------------------

    def validate_settings(self, name: str, value: dict[str, Any]) -> dict[str, Any]:
        """The tenant's settings for plugin ``name``, validated by the plugin's schema, with defaults filled in."""
        info = self._plugins.get(name)
        if info is None:
            raise ValidationFailed(f"Unknown plugin '{name}'.", field="plugins")
        if info.settings is None:
            if value:
                raise ValidationFailed(f"Plugin '{name}' takes no settings.", field=f"plugin_settings.{name}")
            return {}
        try:
            decoded = msgspec.convert(value, info.settings)
        except msgspec.ValidationError as exc:
            raise invalid(str(exc), f"plugin_settings.{name}") from None
        result: dict[str, Any] = msgspec.to_builtins(decoded)
        return result

    def decode_settings(self, name: str, value: dict[str, Any]) -> Any:
        info = self._plugins[name]
        return msgspec.convert(value, info.settings) if info.settings else None

    def tenant_view_settings(self, enabled: Iterable[str], stored: dict[str, Any]) -> dict[str, Any]:
        return {n: self.decode_settings(n, stored.get(n, {})) for n in enabled if n in self._plugins}

    # --- startup contributions ----------------------------------------------------------------------------------

    def event_types(self) -> dict[str, EventType]:
        """Every event type, core's and the plugins', by name."""
        if self._event_types is None:
            types: dict[str, EventType] = {}
            for impl in self._pm.hook.fealty_register_event_types.get_hookimpls():
                plugin = impl.plugin_name
                contributed = cast(list[EventType], impl.function() or [])
                for event_type in contributed:
                    if event_type.name in types:
                        raise ValueError(f"event type {event_type.name!r} registered twice")
                    owner = None if plugin == CORE_PLUGIN else plugin
                    types[event_type.name] = EventType(**{**event_type.__dict__, "plugin": owner})
            self._event_types = types
        return self._event_types

    def routes(self) -> list[tuple[str, list[Any]]]:
        contributions: list[tuple[str, list[Any]]] = []
        for impl in self._pm.hook.fealty_routes.get_hookimpls():
            handlers = cast(list[Any], impl.function() or [])
            if impl.plugin_name != CORE_PLUGIN:
                contributions.append((impl.plugin_name, list(handlers)))
        return contributions

    def care_triggers(self) -> dict[str, CareTrigger]:
        """Every plugin's care trigger, by name (core's own are in :mod:`core.care.triggers`)."""
        found: dict[str, CareTrigger] = {}
        for impl in self._pm.hook.fealty_care_triggers.get_hookimpls():
            for trigger in cast(list[CareTrigger], impl.function() or []):
                if trigger.name in found:
                    raise ValueError(f"care trigger {trigger.name!r} registered twice")
                owner = None if impl.plugin_name == CORE_PLUGIN else impl.plugin_name
                found[trigger.name] = CareTrigger(**{**trigger.__dict__, "plugin": owner})
        return found

    def scheduled_jobs(self) -> list[tuple[str, ScheduledJob]]:
        found: list[tuple[str, ScheduledJob]] = []
        for impl in self._pm.hook.fealty_scheduled_jobs.get_hookimpls():
            jobs = cast(list[ScheduledJob], impl.function() or [])
            found.extend((impl.plugin_name, job) for job in jobs)
        return found

    # --- per-tenant calls ---------------------------------------------------------------------------------------

    def caller(self, hook: str, enabled: frozenset[str]) -> Any:
        key = (hook, enabled)
        caller = self._callers.get(key)
        if caller is None:
            allowed = enabled | {CORE_PLUGIN}
            remove = [plugin for name, plugin in self._pm.list_name_plugin() if name not in allowed]
            caller = self._pm.subset_hook_caller(hook, remove)
            self._callers[key] = caller
        return caller

    def for_tenant(self, enabled: Iterable[str]) -> TenantHooks:
        return TenantHooks(self, frozenset(n for n in enabled if n in self._plugins))


class TenantHooks:
    """Typed calls of every per-tenant hook, limited to the plugins the tenant enabled."""

    def __init__(self, manager: PluginManager, enabled: frozenset[str]) -> None:
        self.manager = manager
        self.enabled = enabled

    def _impls(self, hook: str) -> list[Any]:
        # pluggy calls last-registered first; registration order reads better in outcomes.
        return list(reversed(self.manager.caller(hook, self.enabled).get_hookimpls()))

    def implements(self, hook: str) -> bool:
        return bool(self._impls(hook))

    async def _all(self, hook: str, **kwargs: Any) -> list[Any]:
        results = []
        for impl in self._impls(hook):
            args = {name: kwargs[name] for name in impl.argnames}
            value = await await_maybe(impl.function(**args))
            if value is not None:
                results.append(value)
        return results

    async def _first(self, hook: str, **kwargs: Any) -> Any:
        for impl in self._impls(hook):
            args = {name: kwargs[name] for name in impl.argnames}
            value = await await_maybe(impl.function(**args))
            if value is not None:
                return value
        return None

    async def care_protection(self, ctx: CareProtectionContext) -> tuple[Verdict, ...]:
        """Every enabled plugin's answer about one care message (None answers left out), in registration order."""
        return tuple(await self._all("fealty_care_protection", ctx=ctx))

    async def validate_event(self, ctx: EventContext) -> list[FieldIssue]:
        return [issue for issues in await self._all("fealty_validate_event", ctx=ctx) for issue in issues]

    async def screen_event(self, ctx: EventContext) -> Screening | None:
        verdicts: list[Screening] = await self._all("fealty_screen_event", ctx=ctx)
        rejections = [v for v in verdicts if v.action == "reject"]
        ordered = rejections or verdicts
        return ordered[0] if ordered else None

    async def compute_awards(self, ctx: EventContext, rule_awards: list[Award]) -> list[Award]:
        results = await self._all("fealty_compute_awards", ctx=ctx, rule_awards=rule_awards)
        return [award for awards in results for award in awards]

    async def qualifying_credits(self, ctx: EventContext, awards: list[Award]) -> Credits:
        total: Credits = {}
        for credits in await self._all("fealty_qualifying_credits", ctx=ctx, awards=awards):
            for name, value in credits.items():
                total[name] = total.get(name, 0) + value
        return total

    async def event_processed(self, ctx: EventContext, status: str, awards: list[Award], credits: Credits) -> None:
        await self._all("fealty_event_processed", ctx=ctx, status=status, awards=awards, credits=credits)

    async def event_reversed(self, ctx: EventContext, reversal: ReversalView) -> None:
        await self._all("fealty_event_reversed", ctx=ctx, reversal=reversal)

    async def plugin_enabled(self, tenant: TenantView, session: Any) -> None:
        await self._all("fealty_plugin_enabled", tenant=tenant, session=session)

    async def member_enrolled(self, tenant: TenantView, member: MemberView, session: Any) -> None:
        await self._all("fealty_member_enrolled", tenant=tenant, member=member, session=session)

    async def tier_changed(self, tenant: TenantView, change: TierChange, session: Any) -> None:
        await self._all("fealty_tier_changed", tenant=tenant, change=change, session=session)

    async def reward_redeemed(self, tenant: TenantView, redemption: RedemptionView, session: Any) -> None:
        await self._all("fealty_reward_redeemed", tenant=tenant, redemption=redemption, session=session)

    async def fulfil_reward(
        self, tenant: TenantView, redemption: RedemptionView, session: Any
    ) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._first(
            "fealty_fulfil_reward", tenant=tenant, redemption=redemption, session=session
        )
        return result
