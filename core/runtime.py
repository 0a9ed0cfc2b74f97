"""What a running Fealty process holds: settings, the database, the platform credential, the plugins."""

from __future__ import annotations

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
    #: Feature modules with a ``register(registry, runtime)`` function adding their job kinds.
    job_modules: list[Any] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

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
        await self.engine.dispose()
