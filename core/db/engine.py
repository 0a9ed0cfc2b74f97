"""Engines and sessions for both databases.

SQLite (the embedded default): WAL journal, foreign keys on, and write transactions opened with ``BEGIN IMMEDIATE``
so that concurrent writers queue on the database lock instead of failing half-way. PostgreSQL: every connection
runs as the application role (no ownership, no BYPASSRLS), so row-level security always applies.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from core.db.tenancy import APP_ROLE_KEY, STRICT_KEY, TenantSession, tenant_context
from core.settings import Settings

#: Whether the transaction about to begin will write (SQLite takes the write lock up front when it will).
_sqlite_write_intent: ContextVar[bool] = ContextVar("fealty_sqlite_write_intent", default=True)


def set_write_intent(writes: bool) -> None:
    _sqlite_write_intent.set(writes)


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _checked_role(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe role name {name!r}")
    return name


def create_engine(settings: Settings, *, url: str | None = None, app_role: str | None = None) -> AsyncEngine:
    """The engine for ``url`` (default: the application URL). ``app_role`` '' disables the role switch."""
    url = url or settings.database_url
    kwargs: dict[str, Any] = {
        "echo": settings.database_echo,
        # JSON columns through msgspec: several times faster than the standard library on the event path.
        "json_serializer": _json_dumps,
        "json_deserializer": msgspec.json.decode,
    }
    if url.startswith("sqlite"):
        if ":memory:" in url or url.endswith("://"):
            raise ValueError("use a SQLite file, not an in-memory database (every connection would see its own)")
        kwargs["connect_args"] = {"timeout": 30}
        kwargs["poolclass"] = NullPool if settings.database_pool_size <= 0 else None
        if kwargs["poolclass"] is None:
            del kwargs["poolclass"]
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    server_settings = {"application_name": "fealty"}
    role = settings.database_app_role if app_role is None else app_role
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    if settings.database_pgbouncer:
        # PgBouncer in transaction pooling mode: it refuses startup parameters other than a few, and one server
        # connection serves many clients' transactions, so no prepared statement may outlive its transaction under
        # a name another client could reuse.
        url = str(make_url(url).update_query_dict({"prepared_statement_cache_size": "0"}).render_as_string(False))
        connect_args |= {"statement_cache_size": 0, "prepared_statement_name_func": _statement_name}
    else:
        server_settings["jit"] = "off"
        if role:
            # Directly on PostgreSQL, the role is also the session's default (a startup parameter), so that even a
            # statement outside any transaction never runs as the (possibly privileged) login role.
            server_settings["role"] = _checked_role(role)
    kwargs.update(
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    engine = create_async_engine(url, **kwargs)
    if role:
        checked = _checked_role(role)

        @event.listens_for(engine.sync_engine, "connect")
        def _remember_role(dbapi_connection: Any, connection_record: Any) -> None:
            # Every transaction switches to it (SET LOCAL ROLE with its tenant, core.db.tenancy), pooled or not.
            connection_record.info[APP_ROLE_KEY] = checked

    return engine


def _statement_name() -> str:
    return f"__fealty_{uuid.uuid4().hex}__"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued (SQLAlchemy's pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_write_intent.get() else "BEGIN")


def create_sessionmaker(engine: AsyncEngine, *, strict: bool | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions for ``engine``. ``strict`` checks every Core statement for a tenant criterion (default: on SQLite,
    where no row-level security stands behind the application's own scoping)."""
    if strict is None:
        strict = engine.dialect.name == "sqlite"
    return async_sessionmaker(
        engine, expire_on_commit=False, sync_session_class=TenantSession, autoflush=False, info={STRICT_KEY: strict}
    )


@contextlib.asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID | None, *, writes: bool = True
) -> AsyncIterator[AsyncSession]:
    """One transaction as ``tenant_id``: committed when the block ends, rolled back if it raises."""
    with tenant_context(tenant_id):
        token = _sqlite_write_intent.set(writes)
        try:
            async with sessionmaker() as session, session.begin():
                yield session
        finally:
            _sqlite_write_intent.reset(token)
