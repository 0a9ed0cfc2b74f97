"""The plugin manager: discovery (entry points ``fealty.plugins``), registration, and every hook call.

Every hook is called through pluggy, in one order: **registration order, core's own implementations first**. pluggy
itself calls the last registered implementation first, so the manager registers its plugins with pluggy in reverse
(rebuilding pluggy's manager when a plugin is added); hook wrappers and pluggy's call monitoring therefore see every
call, and ``FEALTY_TRACE_PLUGINS=1`` logs each one (hook, plugins called in order, duration; never the arguments).

Tenant hooks are called through :class:`TenantHooks`, whose typed methods build the hook's context and call only the
plugins the tenant enabled (pluggy's ``subset_hook_caller``, cached per set of enabled plugins). Implementations may
return awaitables: each is awaited in call order before the next one's is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec
import pluggy
import structlog

from core.errors import ValidationFailed, invalid
from core.events import types as core_event_types
from core.plugin import PROJECT, spec
from core.plugin.demo import DemoTenant
from core.plugin.types import (
    Award,
    AwardsContext,
    CareProtectionContext,
    CareTrigger,
    CaseContext,
    CaseRouting,
    CaseView,
    Credits,
    CreditsContext,
    EventContext,
    EventType,
    FieldIssue,
    HookContext,
    MemberContext,
    MemberView,
    PluginInfo,
    ProcessedContext,
    RedemptionContext,
    RedemptionView,
    ReplyClaim,
    ReplyContext,
    ReplyView,
    ReversalContext,
    ReversalView,
    ScheduledJob,
    Screening,
    Services,
    TenantView,
    TierChange,
    TierChangeContext,
    WebhookEventType,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.care.policy import Verdict
    from core.settings import Settings

ENTRY_POINT_GROUP = "fealty.plugins"
CORE_PLUGIN = "core"
#: Where a session finds the process's plugins (set on the runtime's sessionmaker), for services plugins call with
#: only a session in hand (``assign_tier`` announces its move to the plugins).
SESSION_PLUGINS_KEY = "fealty.plugins"
#: Set to ``1`` to log every hook call (datasette's ``DATASETTE_TRACE_PLUGINS``).
TRACE_ENV = "FEALTY_TRACE_PLUGINS"

#: Builds the services a hook's context offers: ``(session, tenant, now) -> Services`` (core's runtime sets it).
ServicesFactory = Callable[["AsyncSession", TenantView, datetime], Services]
_C = TypeVar("_C", bound=HookContext)


def plugins_of(session: Any) -> PluginManager | None:
    """The plugins of the process that opened ``session`` (None for a session made elsewhere, e.g. a script's)."""
    manager = session.info.get(SESSION_PLUGINS_KEY)
    return manager if isinstance(manager, PluginManager) else None


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


def _settle(value: Any) -> Any:
    """What a startup hook answered, awaited if it is an awaitable (in a loop of its own: startup is synchronous, and
    may happen while the server's loop runs)."""
    if not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _close(value: Any) -> None:
    if inspect.iscoroutine(value):
        value.close()  # an implementation after the first answer: never awaited, never run


def _extend(cls: type[_C], base: HookContext, **subject: Any) -> _C:
    """``base`` (a context) with the fields of the subclass ``cls`` added."""
    shared = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return cls(**shared, **subject)


class PluginManager:
    """The process's plugins: core's own implementations (the plugin ``core``), then every registered plugin."""

    def __init__(self, *, services: ServicesFactory | None = None, trace: bool | None = None) -> None:
        self._plugins: dict[str, PluginInfo] = {}
        #: Registration order: core first.
        self._order: list[tuple[str, object]] = [(CORE_PLUGIN, core_event_types)]
        self._services = services
        self._trace = os.environ.get(TRACE_ENV, "") not in ("", "0") if trace is None else trace
        self._callers: dict[tuple[str, frozenset[str]], Any] = {}
        self._event_types: dict[str, EventType] | None = None
        self._webhook_event_types: dict[str, WebhookEventType] | None = None
        self._pm = self._build(self._order)

    def _build(self, order: list[tuple[str, object]]) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(spec)
        for name, hooks in reversed(order):  # pluggy calls the last registered first
            pm.register(hooks, name=name)
        pm.check_pending()
        if self._trace:
            pm.add_hookcall_monitoring(self._before, self._after)
        return pm

    @staticmethod
    def _before(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        structlog.get_logger("fealty.plugins").info(
            "plugin_hook_call", hook=hook, plugins=[i.plugin_name for i in reversed(impls)]
        )

    @staticmethod
    def _after(
        outcome: pluggy.Result[Any], hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        failed = outcome.exception is not None
        structlog.get_logger("fealty.plugins").info(
            "plugin_hook_called", hook=hook, failed=failed, error=type(outcome.exception).__name__ if failed else None
        )

    @classmethod
    def from_entry_points(cls, names: Iterable[str] = (), **options: Any) -> PluginManager:
        """Load installed plugins (only ``names`` when given), sorted by name."""
        manager = cls(**options)
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
        """Add a plugin after those already registered (its implementations are called after theirs)."""
        if info.name in self._plugins or info.name == CORE_PLUGIN:
            raise ValueError(f"plugin {info.name!r} is already registered")
        if not info.name.replace("_", "").isalnum() or not info.name.islower():
            raise ValueError(f"plugin name {info.name!r}: lower-case letters, digits and underscores only")
        order = [*self._order, (info.name, info.hooks)]
        self._pm = self._build(order)  # raises (and keeps the old manager) for hooks that do not match their spec
        self._order = order
        self._plugins[info.name] = info
        self._callers.clear()
        self._event_types = None
        self._webhook_event_types = None

    def available(self) -> dict[str, PluginInfo]:
        return dict(self._plugins)

    def order(self) -> list[str]:
        """The plugins in call order (``core`` first)."""
        return [name for name, _ in self._order]

    # --- services -----------------------------------------------------------------------------------------------

    def use_services(self, factory: ServicesFactory) -> None:
        """How hook contexts get their services (set once by the runtime)."""
        self._services = factory

    def services(self, session: AsyncSession, tenant: TenantView, now: datetime) -> Services:
        if self._services is None:
            raise RuntimeError("no services for hook contexts: create the runtime (core.runtime.Runtime.create)")
        return self._services(session, tenant, now)

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

    # --- startup hooks (no argument; awaited when they return awaitables) ---------------------------------------

    def _startup(self, hook: str) -> list[tuple[str, Any]]:
        """Each plugin's answer to a startup hook, in call order, with the plugin's name. Called through pluggy one
        plugin at a time (a subset caller each), so that each answer is known with its plugin."""
        answers: list[tuple[str, Any]] = []
        for name, _ in self._order:
            others = [plugin for other, plugin in self._order if other != name]
            value = self._pm.subset_hook_caller(hook, others)()
            for answer in value:
                answers.append((name, _settle(answer)))
        return answers

    def event_types(self) -> dict[str, EventType]:
        """Every event type, core's and the plugins', by name."""
        if self._event_types is None:
            types: dict[str, EventType] = {}
            for plugin, contributed in self._startup("fealty_register_event_types"):
                for event_type in cast(list[EventType], contributed or []):
                    if event_type.name in types:
                        raise ValueError(f"event type {event_type.name!r} registered twice")
                    owner = None if plugin == CORE_PLUGIN else plugin
                    types[event_type.name] = dataclasses.replace(event_type, plugin=owner)
            self._event_types = types
        return self._event_types

    def routes(self) -> list[tuple[str, list[Any]]]:
        return [
            (plugin, list(handlers or []))
            for plugin, handlers in self._startup("fealty_routes")
            if plugin != CORE_PLUGIN
        ]

    def care_triggers(self) -> dict[str, CareTrigger]:
        """Every plugin's care trigger, by name (core's own are in :mod:`core.care.triggers`)."""
        found: dict[str, CareTrigger] = {}
        for plugin, triggers in self._startup("fealty_care_triggers"):
            for trigger in cast(list[CareTrigger], triggers or []):
                if trigger.name in found:
                    raise ValueError(f"care trigger {trigger.name!r} registered twice")
                found[trigger.name] = dataclasses.replace(trigger, plugin=None if plugin == CORE_PLUGIN else plugin)
        return found

    def webhook_event_types(self) -> dict[str, WebhookEventType]:
        """Every plugin's outbound event types (``fealty_webhook_event_types``), by name, with their plugin."""
        if self._webhook_event_types is not None:
            return self._webhook_event_types
        from core.webhooks.event_types import ALL, EVENT_TYPES

        found: dict[str, WebhookEventType] = {}
        for plugin, declared in self._startup("fealty_webhook_event_types"):
            for event_type in cast(list[WebhookEventType], declared or []):
                name = event_type.name
                if not name.startswith(f"{plugin}.") or name == f"{plugin}.":
                    raise ValueError(f"webhook event type {name!r} of plugin {plugin!r}: name it {plugin}.<what>")
                if name in EVENT_TYPES or name == ALL:
                    raise ValueError(f"webhook event type {name!r} clashes with core's")
                if name in found:
                    raise ValueError(f"webhook event type {name!r} registered twice")
                found[name] = dataclasses.replace(event_type, plugin=plugin)
        self._webhook_event_types = found
        return found

    def demo_tenants(self) -> list[tuple[str, DemoTenant]]:
        """Every plugin's demo tenants (``fealty_demo_tenants``) in call order, with the plugin's name."""
        found: list[tuple[str, DemoTenant]] = []
        for plugin, tenants in self._startup("fealty_demo_tenants"):
            for tenant in cast(list[DemoTenant], tenants or []):
                if any(t.slug_suffix == tenant.slug_suffix for _, t in found):
                    raise ValueError(f"demo tenant {tenant.slug_suffix!r} contributed twice")
                found.append((plugin, tenant))
        return found

    def scheduled_jobs(self) -> list[tuple[str, ScheduledJob]]:
        return [(plugin, job) for plugin, jobs in self._startup("fealty_scheduled_jobs") for job in jobs or []]

    # --- tenant hooks -------------------------------------------------------------------------------------------

    def caller(self, hook: str, enabled: frozenset[str]) -> Any:
        """pluggy's caller of ``hook`` limited to core and the ``enabled`` plugins."""
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
    """Typed calls of every tenant hook, limited to the plugins the tenant enabled. Each method takes what core has
    in hand and builds the hook's one argument, its context."""

    def __init__(self, manager: PluginManager, enabled: frozenset[str]) -> None:
        self.manager = manager
        self.enabled = enabled

    def implements(self, hook: str) -> bool:
        """Whether any implementation (not a wrapper) of ``hook`` would be called."""
        return any(not (i.wrapper or i.hookwrapper) for i in self.manager.caller(hook, self.enabled).get_hookimpls())

    def context(self, tenant: TenantView, session: AsyncSession, now: datetime) -> HookContext:
        """The base context of a hook about ``tenant``."""
        services = self.manager.services(session, tenant, now)
        return HookContext(tenant=tenant, session=session, now=now, services=services)

    async def _all(self, hook: str, ctx: HookContext) -> list[Any]:
        """Every answer but None, in call order (each awaited before the next implementation runs)."""
        results = []
        for value in self.manager.caller(hook, self.enabled)(ctx=ctx):
            answer = await await_maybe(value)
            if answer is not None:
                results.append(answer)
        return results

    async def _first(self, hook: str, ctx: HookContext) -> Any:
        """The first answer that is not None, in call order; the later implementations are not awaited."""
        answers = iter(self.manager.caller(hook, self.enabled)(ctx=ctx))
        for value in answers:
            answer = await await_maybe(value)
            if answer is not None:
                for rest in answers:
                    _close(rest)
                return answer
        return None

    async def care_protection(self, ctx: CareProtectionContext) -> tuple[Verdict, ...]:
        """Every enabled plugin's answer about one care message (None answers left out), in call order."""
        return tuple(await self._all("fealty_care_protection", ctx))

    async def validate_event(self, ctx: EventContext) -> list[FieldIssue]:
        return [issue for issues in await self._all("fealty_validate_event", ctx) for issue in issues]

    async def screen_event(self, ctx: EventContext) -> Screening | None:
        """The first rejection, else the first hold (a rejection beats any hold, whatever the order)."""
        verdicts: list[Screening] = await self._all("fealty_screen_event", ctx)
        rejections = [v for v in verdicts if v.action == "reject"]
        ordered = rejections or verdicts
        return ordered[0] if ordered else None

    async def compute_awards(self, ctx: EventContext, rule_awards: list[Award]) -> list[Award]:
        hook_ctx = _extend(AwardsContext, ctx, rule_awards=tuple(rule_awards))
        return [award for awards in await self._all("fealty_compute_awards", hook_ctx) for award in awards]

    async def qualifying_credits(self, ctx: EventContext, awards: list[Award]) -> Credits:
        total: Credits = {}
        for credits in await self._all("fealty_qualifying_credits", _extend(CreditsContext, ctx, awards=tuple(awards))):
            for name, value in credits.items():
                total[name] = total.get(name, 0) + value
        return total

    async def event_processed(self, ctx: EventContext, status: str, awards: list[Award], credits: Credits) -> None:
        hook_ctx = _extend(ProcessedContext, ctx, status=status, awards=tuple(awards), credits=dict(credits))
        await self._all("fealty_event_processed", hook_ctx)

    async def event_reversed(self, ctx: EventContext, reversal: ReversalView) -> None:
        await self._all("fealty_event_reversed", _extend(ReversalContext, ctx, reversal=reversal))

    async def plugin_enabled(self, tenant: TenantView, session: AsyncSession, now: datetime) -> None:
        await self._all("fealty_plugin_enabled", self.context(tenant, session, now))

    async def member_enrolled(
        self, tenant: TenantView, member: MemberView, session: AsyncSession, now: datetime
    ) -> None:
        ctx = _extend(MemberContext, self.context(tenant, session, now), member=member)
        await self._all("fealty_member_enrolled", ctx)

    async def tier_changed(self, tenant: TenantView, change: TierChange, session: AsyncSession, now: datetime) -> None:
        ctx = _extend(TierChangeContext, self.context(tenant, session, now), change=change)
        await self._all("fealty_tier_changed", ctx)

    async def reward_redeemed(
        self, tenant: TenantView, redemption: RedemptionView, session: AsyncSession, now: datetime
    ) -> None:
        ctx = _extend(RedemptionContext, self.context(tenant, session, now), redemption=redemption)
        await self._all("fealty_reward_redeemed", ctx)

    async def fulfil_reward(
        self, tenant: TenantView, redemption: RedemptionView, session: AsyncSession, now: datetime
    ) -> dict[str, Any] | None:
        ctx = _extend(RedemptionContext, self.context(tenant, session, now), redemption=redemption)
        result: dict[str, Any] | None = await self._first("fealty_fulfil_reward", ctx)
        return result

    async def claim_reply(
        self, tenant: TenantView, reply: ReplyView, session: AsyncSession, now: datetime
    ) -> tuple[str, ReplyClaim] | None:
        """The first enabled plugin's claim of an inbound reply, with that plugin's name (None: nobody claims it)."""
        ctx = _extend(ReplyContext, self.context(tenant, session, now), reply=reply)
        # One plugin at a time, in call order, each through pluggy (wrappers and tracing see the call), so that the
        # claim is known with its plugin.
        for name in self.manager.order():
            if name not in self.enabled:
                continue
            answers = iter(self.manager.caller("fealty_claim_reply", frozenset({name}))(ctx=ctx))
            for value in answers:
                answer = await await_maybe(value)
                if answer is not None:
                    for rest in answers:
                        _close(rest)
                    return name, answer
        return None

    async def route_case(
        self, tenant: TenantView, case: CaseView, member: MemberView | None, session: AsyncSession, now: datetime
    ) -> CaseRouting | None:
        """The enabled plugins' routing of a case, merged field by field (the first answer setting a field wins);
        None when no plugin answered."""
        ctx = _extend(CaseContext, self.context(tenant, session, now), case=case, member=member)
        answers: list[CaseRouting] = await self._all("fealty_route_case", ctx)
        if not answers:
            return None
        merged: dict[str, Any] = {}
        for answer in answers:
            for name in ("assignee", "priority", "category"):
                value = getattr(answer, name)
                if value is not None and name not in merged:
                    merged[name] = value
        notes = [a.note for a in answers if a.note]
        return CaseRouting(**merged, note="; ".join(notes) if notes else None)
