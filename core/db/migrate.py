"""Programmatic Alembic: ``fealty migrate`` and migrate-on-start both come here.

Core's revisions live on the ``core`` branch; each plugin adds its own version directory and branch, so
``upgrade heads`` brings every branch up to date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None, extra_version_dirs: Sequence[Path] = ()) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = [str(MIGRATIONS_DIR / "versions"), *(str(p) for p in extra_version_dirs)]
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def plugin_version_dirs() -> list[Path]:
    """Migration directories of every installed plugin (each on its own Alembic branch)."""
    from core.plugin.manager import installed_migration_dirs

    return installed_migration_dirs()


def upgrade(database_url: str | None = None, revision: str = "heads") -> None:
    """Bring the database to ``revision`` (default: every branch's head). Synchronous; runs its own event loop."""
    command.upgrade(alembic_config(database_url, plugin_version_dirs()), revision)


async def upgrade_async(database_url: str | None = None, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)


def expected_heads() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(None, plugin_version_dirs()))
    return set(script.get_heads())


async def current_heads(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))


def applied_revisions(heads: set[str]) -> set[str]:
    """Every revision the database has, given the heads Alembic recorded. A plugin branch that ``depends_on`` a core
    revision leaves only its own head in ``alembic_version``: the core revision is applied, as its dependency."""
    if not heads:
        return set()
    script = ScriptDirectory.from_config(alembic_config(None, plugin_version_dirs()))
    return {rev.revision for rev in script.iterate_revisions(tuple(sorted(heads)), "base") if rev is not None}


async def is_current(engine: AsyncEngine) -> bool:
    heads = await current_heads(engine)
    try:
        return expected_heads() <= applied_revisions(heads)
    except RevisionError:  # a head this code does not know (a newer release migrated the database)
        return False
