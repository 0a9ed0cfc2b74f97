"""Alembic environment: runs migrations on the owner connection, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from core.db.engine import create_engine
from core.db.models import Base
from core.plugin.manager import installed_plugins
from core.settings import get_settings

config = context.config
# Installed plugins' models join the metadata too (autogenerate and comparisons see their tables).
installed_plugins()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    settings = get_settings()
    url = config.attributes.get("database_url") or settings.owner_database_url
    engine = create_engine(settings, url=url, app_role="")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
