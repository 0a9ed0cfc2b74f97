"""The schema's promises: tenant_id leads every key; migrations and models agree; every tenant table has RLS."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import core.db.models  # noqa: F401  (registers every model)
from core.db.base import Base, tenant_tables
from core.db.engine import create_engine
from core.plugins import load_installed_plugins
from core.testing import settings_for_tests

load_installed_plugins()  # installed plugins' tables are checked like core's (their migrations run in the tests)


def test_there_are_tenant_tables() -> None:
    assert {"members", "ledger_entries", "lots", "point_balances", "api_keys"} <= set(tenant_tables())


@pytest.mark.parametrize("table_name", tenant_tables())
def test_tenant_id_leads_every_key(table_name: str) -> None:
    table = Base.metadata.tables[table_name]
    assert [c.name for c in table.primary_key.columns][0] == "tenant_id"
    for index in table.indexes:
        if index.unique:
            assert [c.name for c in index.columns][0] == "tenant_id", index.name
    for constraint in table.constraints:
        if constraint.__class__.__name__ == "UniqueConstraint":
            assert [c.name for c in constraint.columns][0] == "tenant_id", constraint.name
    for fk in table.foreign_key_constraints:
        assert fk.column_keys[0] == "tenant_id", f"{table_name}: {fk.name}"
        assert fk.elements[0].column.name in ("tenant_id", "id") and (
            fk.elements[0].column.table.name == "tenants" or fk.elements[0].column.name == "tenant_id"
        ), f"{table_name}: {fk.name} must pair tenant_id with tenant_id"


async def _diff(url: str) -> list:
    engine = create_engine(settings_for_tests(url), app_role="")
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()


async def test_migrations_match_the_models_on_sqlite(sqlite_url: str) -> None:
    assert await _diff(sqlite_url) == []


async def test_migrations_match_the_models_on_postgres(postgres_url: str) -> None:
    assert await _diff(postgres_url) == []


async def test_every_tenant_table_has_forced_rls_and_a_policy(postgres_url: str) -> None:
    engine = create_engine(settings_for_tests(postgres_url), app_role="")
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                        "  (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname) "
                        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                    )
                )
            ).all()
            live_tenant_tables = await conn.run_sync(
                lambda sync: [
                    t
                    for t in inspect(sync).get_table_names()
                    if any(col["name"] == "tenant_id" for col in inspect(sync).get_columns(t))
                ]
            )
    finally:
        await engine.dispose()
    state = {name: (rls, force, policies) for name, rls, force, policies in rows}
    assert set(tenant_tables()) <= set(live_tenant_tables)
    for table in live_tenant_tables:
        if table in tenant_tables():
            assert state[table] == (True, True, 1), table
