"""The first lock on the tenant door: ORM-level scoping from a context variable.

``current_tenant`` is set by authentication (or by a worker for the tenant whose job it runs). Every ORM statement
that touches a :class:`~core.db.base.TenantScoped` model gets ``tenant_id = :current`` added, and raises
:class:`~core.errors.MissingTenantContext` when no tenant is set. Inserts get ``tenant_id`` filled in, and a row that
carries another tenant's id is refused before it reaches the database. On PostgreSQL every transaction also runs
``set_config('app.tenant_id', :tenant, true)`` so that row-level security applies the same rule (the second lock).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Column, Delete, Join, Select, Table, Update, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, with_loader_criteria
from sqlalchemy.sql import visitors

from core.db.base import TenantScoped
from core.errors import CrossTenantWrite, MissingTenantContext

_current_tenant: ContextVar[uuid.UUID | None] = ContextVar("fealty_tenant", default=None)


def current_tenant() -> uuid.UUID | None:
    return _current_tenant.get()


def require_tenant() -> uuid.UUID:
    tenant_id = _current_tenant.get()
    if tenant_id is None:
        raise MissingTenantContext("no tenant in context")
    return tenant_id


@contextlib.contextmanager
def tenant_context(tenant_id: uuid.UUID | None) -> Iterator[None]:
    """Run a block as ``tenant_id`` (``None``: no tenant, so tenant tables are unreachable)."""
    token = _current_tenant.set(tenant_id)
    try:
        yield
    finally:
        _current_tenant.reset(token)


def set_current_tenant(tenant_id: uuid.UUID | None) -> None:
    """Set the tenant for the rest of the current task (the request or job that owns this context)."""
    _current_tenant.set(tenant_id)


#: Session info key: check every Core statement for a tenant_id criterion (on for SQLite and in tests).
STRICT_KEY = "fealty.strict_tenant_checks"


class TenantSession(Session):
    """The sync session behind every AsyncSession: carries the tenant-scoping events below."""


SET_TENANT_SQL = text("SELECT set_config('app.tenant_id', :tenant, true)")
#: The same, and the application role, for this transaction only (one round trip): what makes Fealty work behind a
#: transaction-pooling PgBouncer, where a session's settings would follow the server connection to other clients.
SET_TENANT_AND_ROLE_SQL = text("SELECT set_config('app.tenant_id', :tenant, true), set_config('role', :role, true)")
#: Where :func:`core.db.engine.create_engine` records, per pooled connection, the role its transactions run as.
APP_ROLE_KEY = "fealty_app_role"


def apply_database_tenant(connection: Connection, tenant_id: uuid.UUID | None) -> None:
    """Tell PostgreSQL which tenant this transaction serves, and switch to the application role, both
    transaction-local (``SET LOCAL``): nothing leaks across the pool or, behind PgBouncer, to another client."""
    if connection.dialect.name == "postgresql":
        tenant = str(tenant_id) if tenant_id else ""
        role = connection.info.get(APP_ROLE_KEY)
        if role:
            connection.execute(SET_TENANT_AND_ROLE_SQL, {"tenant": tenant, "role": role})
        else:
            connection.execute(SET_TENANT_SQL, {"tenant": tenant})


@event.listens_for(TenantSession, "after_begin")
def _set_tenant_on_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    tenant_id = _current_tenant.get()
    session.info["tenant_id"] = tenant_id
    apply_database_tenant(connection, tenant_id)


def _is_tenant_scoped(mapper: Any) -> bool:
    return bool(getattr(mapper.class_, "__tenant_scoped__", False))


def _is_tenant_table(table: Any) -> bool:
    return isinstance(table, Table) and "tenant_id" in table.c and table.info.get("tenant_owned", True)


def unscoped_tenant_tables(statement: Any) -> set[str]:
    """Tenant tables a Core statement reads or changes without naming their ``tenant_id`` in its criteria.

    Core statements (the ledger's hot path) bypass the ORM's automatic criteria, so each must filter on
    ``tenant_id`` itself; this check makes forgetting it fail loudly. It walks the statement's tree (no compilation):
    every tenant table met must have its ``tenant_id`` column in a WHERE or JOIN ... ON criterion.
    """
    if not isinstance(statement, Select | Update | Delete):
        return set()
    tables: set[Table] = set()
    criteria: list[Any] = [statement.whereclause]
    if isinstance(statement, Update | Delete):
        tables.add(statement.table)  # type: ignore[arg-type]
    for element in visitors.iterate(statement):
        if isinstance(element, Table):
            tables.add(element)
        elif isinstance(element, Join):
            criteria.append(element.onclause)
        elif isinstance(element, Select):
            if element is not statement:
                criteria.append(element.whereclause)
            # select(...).join(target, onclause) keeps its joins aside until compilation.
            criteria.extend(join[1] for join in getattr(element, "_setup_joins", ()) if join[1] is not None)
    tenant_tables = {t for t in tables if _is_tenant_table(t)}
    if not tenant_tables:
        return set()
    scoped: set[Any] = set()
    for clause in criteria:
        if clause is None:
            continue
        for element in visitors.iterate(clause):
            if isinstance(element, Column) and element.name == "tenant_id":
                scoped.add(element.table)
    return {t.name for t in tenant_tables - scoped}


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_orm_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # the parent query was already scoped; loader criteria propagate to these loads
    if not any(_is_tenant_scoped(m) for m in state.all_mappers):
        if not state.session.info.get(STRICT_KEY, True):
            return  # PostgreSQL in production: row-level security holds the line, without a per-statement cost
        missing = unscoped_tenant_tables(state.statement)
        if missing:
            raise MissingTenantContext(f"Core statement on {sorted(missing)} without a tenant_id criterion")
        return
    tenant_id = _current_tenant.get()
    if tenant_id is None:
        raise MissingTenantContext(f"tenant-owned tables queried with no tenant in context: {state.statement}")
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantScoped,
                lambda cls: cls.tenant_id == tenant_id,
                include_aliases=True,
            )
        )


@event.listens_for(TenantSession, "before_flush")
def _fill_tenant_on_flush(session: Session, flush_context: Any, instances: Any) -> None:
    pending = [obj for obj in list(session.new) + list(session.dirty) if isinstance(obj, TenantScoped)]
    if not pending:
        return
    tenant_id = _current_tenant.get()
    if tenant_id is None:
        raise MissingTenantContext("tenant-owned rows flushed with no tenant in context")
    for obj in pending:
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise CrossTenantWrite(f"{type(obj).__name__} carries tenant {obj.tenant_id}, context is {tenant_id}")
