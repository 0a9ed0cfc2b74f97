"""What a running Fealty process holds: settings, the database, the platform credential, the plugins."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.clock import utcnow
from core.db.engine import create_engine, create_sessionmaker
from core.plugin.manager import SESSION_PLUGINS_KEY, PluginManager
from core.program.config import ConfigCache
from core.ratelimit import LocalRateLimiter, RateLimiter, rate_limiter_for
from core.services import CoreServices
from core.settings import SESSION_SETTINGS_KEY, Settings
from core.settings import settings_of as settings_of  # defined with the settings; kept here for callers
from core.tenancy.keys import hash_key


#: Where a session finds the process's settings (set on the runtime's sessionmaker), for use cases that sign links.
@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    plugins: PluginManager
    platform_key_hash: str | None = None
    #: Per-tenant request limits, which the HTTP layer applies (see core.ratelimit).
    rate_limits: RateLimiter = field(default_factory=LocalRateLimiter)
    configs: ConfigCache = field(default_factory=ConfigCache)
    extras: dict[str, Any] = field(default_factory=dict)
    _last_wake: dict[uuid.UUID, float] = field(default_factory=dict)
    #: Called (newest first) when the runtime closes: clients that hold connections, e.g. the Stripe gateway.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Syncs one tenant's recurring work in the caller's transaction (``(session, tenant_id, now)``); the app sets it
    #: with the worker's job kinds (see :meth:`tenant_changed`).
    schedule_sync: Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[Any]] | None = None

    @classmethod
    def create(cls, settings: Settings, plugins: PluginManager, *, rate_limits: RateLimiter | None = None) -> Runtime:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine, strict=settings.strict_tenant_checks)
        # Every session knows the plugins (see core.plugin.manager.plugins_of); hook contexts get core's services.
        plugins.use_services(CoreServices)
        sessionmaker.configure(
            info={**sessionmaker.kw.get("info", {}), SESSION_PLUGINS_KEY: plugins, SESSION_SETTINGS_KEY: settings}
        )
        runtime = cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            plugins=plugins,
            platform_key_hash=hash_key(settings.platform_key) if settings.platform_key else None,
            rate_limits=rate_limits or rate_limiter_for(settings),
        )
        runtime.closers.append(runtime.rate_limits.close)
        return runtime

    async def tenant_changed(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        """A tenant was created, or its plugins or status changed: schedule its recurring work now, in this
        transaction (:func:`core.jobs.schedules.sync_tenant`), rather than at the worker's next sync pass."""
        if self.schedule_sync is not None:
            await self.schedule_sync(session, tenant_id, utcnow())

    @property
    def job_lease(self) -> timedelta:
        return timedelta(seconds=self.settings.job_lease_seconds)

    async def between_batches(self, job: Any) -> None:
        """Heartbeat a long job's lease and apply the configured pause between its batches."""
        from core.jobs.queue import heartbeat

        await heartbeat(self.sessionmaker, job, lease=self.job_lease, pause=self.settings.worker_batch_pause_seconds)

    async def wake_dispatchers(self, tenant_ids: set[uuid.UUID]) -> None:
        """Queue (or requeue) the outbox dispatch job of each tenant, at most once a second per tenant and process.

        Runs after the request's commit, in its own short transaction, so the request itself never waits on the
        shared job row.
        """
        from core.db.engine import tenant_session
        from core.jobs.queue import enqueue_or_wake
        from core.outbox.service import DISPATCH_JOB

        now = time.monotonic()
        due = sorted(t for t in tenant_ids if now - self._last_wake.get(t, -10.0) >= 1.0)
        if not due:
            return
        for tenant_id in due:
            self._last_wake[tenant_id] = now
        async with tenant_session(self.sessionmaker, None) as session:
            for tenant_id in due:
                await enqueue_or_wake(
                    session, DISPATCH_JOB, tenant_id=tenant_id, dedupe_key=f"{DISPATCH_JOB}:{tenant_id}"
                )

    async def wake_care_delivery(self, tenant_ids: set[uuid.UUID]) -> None:
        """Queue (or requeue) the care delivery job of each tenant that just queued messages (after the commit)."""
        from core.db.engine import tenant_session
        from core.jobs.queue import enqueue_or_wake

        kind = "care.deliver"
        async with tenant_session(self.sessionmaker, None) as session:
            for tenant_id in sorted(tenant_ids):
                await enqueue_or_wake(session, kind, tenant_id=tenant_id, dedupe_key=f"{kind}:{tenant_id}")

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        self.closers.clear()
        await self.engine.dispose()
