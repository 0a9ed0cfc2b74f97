"""What a running Fealty process holds: settings, the database, the platform credential, the plugins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker
from core.http.ratelimit import TokenBuckets
from core.plugins import PluginManager
from core.settings import Settings
from core.tenancy.keys import hash_key


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    plugins: PluginManager
    platform_key_hash: str | None = None
    rate_limits: TokenBuckets = field(default_factory=TokenBuckets)
    extras: dict[str, Any] = field(default_factory=dict)
    #: Called (newest first) when the runtime closes: clients that hold connections, e.g. the Stripe gateway.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings, plugins: PluginManager) -> Runtime:
        engine = create_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            plugins=plugins,
            platform_key_hash=hash_key(settings.platform_key) if settings.platform_key else None,
        )

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        self.closers.clear()
        await self.engine.dispose()
