"""Migration helpers for the second lock on the tenant door: PostgreSQL row-level security and grants.

Core's migrations and every plugin's migrations call these for each table they create, so that the application role
(which owns nothing and has no BYPASSRLS) can reach a tenant's rows only while ``app.tenant_id`` names that tenant.
On SQLite they do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

from core.settings import get_settings

TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
FULL_ACCESS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def app_role() -> str:
    role = get_settings().database_app_role or "fealty_app"
    if not role.replace("_", "").isalnum():
        raise ValueError(f"unsafe role name {role!r}")
    return role


def create_app_role() -> None:
    """The role the application runs as: no login of its own, no ownership, no BYPASSRLS."""
    if not _is_postgres():
        return
    role = app_role()
    # The role name is checked to be a plain identifier in app_role().
    create_role = f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$;
        """  # noqa: S608
    op.execute(create_role)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT ON alembic_version TO {role}")
    # Let the migrating (owner) role switch to the application role, as the app does on every connection.
    op.execute(f"GRANT {role} TO CURRENT_USER")


def tenant_table(table: str, privileges: Iterable[str] = FULL_ACCESS, *, update_columns: Iterable[str] = ()) -> None:
    """Row-level security (enabled and forced) scoped to ``app.tenant_id``, and the app role's grants."""
    if not _is_postgres():
        return
    role = app_role()
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})")
    _grant(table, role, privileges, update_columns)


def global_table(table: str, privileges: Iterable[str] = FULL_ACCESS, *, update_columns: Iterable[str] = ()) -> None:
    """A platform table (tenants, plans, the job queue): no tenant policy, only the app role's grants."""
    if not _is_postgres():
        return
    _grant(table, app_role(), privileges, update_columns)


def _grant(table: str, role: str, privileges: Iterable[str], update_columns: Iterable[str]) -> None:
    privs = list(privileges)
    if privs:
        op.execute(f"GRANT {', '.join(privs)} ON {table} TO {role}")
    cols = list(update_columns)
    if cols:
        op.execute(f"GRANT UPDATE ({', '.join(cols)}) ON {table} TO {role}")
