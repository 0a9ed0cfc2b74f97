"""The schema's promises: tenant_id leads every key; migrations and models agree; every tenant table has RLS."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import core.db.models  # noqa: F401  (registers every model)
from core.db.base import Base, tenant_tables
from core.db.engine import create_engine
from core.plugin.manager import installed_plugins
from core.testing import settings_for_tests

# Installed plugins' tables obey the same rules, and their migrations (applied to the test databases) must match
# their models: importing each plugin registers its models.
INSTALLED = installed_plugins()


def test_there_are_tenant_tables() -> None:
    assert {"members", "ledger_entries", "lots", "point_balances", "api_keys"} <= set(tenant_tables())
    if "hotel" in INSTALLED:
        assert {"hotel_stays", "hotel_milestones"} <= set(tenant_tables())


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
                        "  (SELECT count(*) FROM pg_policies p "
                        "   WHERE p.tablename = c.relname AND p.permissive = 'PERMISSIVE'"
                        "   AND p.policyname <> 'sweeper_reads') "
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


#: Tables that carry a tenant_id but are the platform's, without row-level security by design: the job queue (its
#: worker claims jobs of every tenant), Stripe's events and the usage counters billing reads across tenants.
GLOBAL_TABLES_WITH_TENANT_ID = {"jobs", "job_schedules", "stripe_events", "billing_usage", "billing_usage_counts"}

_KEYS_SQL = """
SELECT c.relname AS table_name, i.relname AS index_name, ix.indisprimary AS is_primary, a.attname AS first_column
FROM pg_index ix
JOIN pg_class c ON c.oid = ix.indrelid
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ix.indkey[0]
WHERE n.nspname = 'public' AND (ix.indisprimary OR ix.indisunique)
"""

_FOREIGN_KEYS_SQL = """
SELECT con.conname AS name, c.relname AS table_name,
       (SELECT attname FROM pg_attribute WHERE attrelid = con.conrelid AND attnum = con.conkey[1]) AS first_column,
       f.relname AS referenced_table,
       (SELECT attname FROM pg_attribute WHERE attrelid = con.confrelid AND attnum = con.confkey[1]) AS referenced_first
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_class f ON f.oid = con.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND n.nspname = 'public'
"""

_RLS_SQL = """
SELECT c.relname AS table_name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""


async def test_the_migrated_postgres_database_keeps_every_tenant_promise(postgres_url: str) -> None:
    """The live, migrated database (not the ORM models): every table with a tenant_id column leads its primary key,
    each unique index and each foreign key with it, and has row-level security enabled, forced and its policy."""
    engine = create_engine(settings_for_tests(postgres_url), app_role="")
    try:
        async with engine.connect() as conn:
            with_tenant_id = {
                row.table_name
                for row in await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                    )
                )
            }
            keys = (await conn.execute(text(_KEYS_SQL))).all()
            foreign_keys = (await conn.execute(text(_FOREIGN_KEYS_SQL))).all()
            rls = {row.table_name: (row.enabled, row.forced) for row in await conn.execute(text(_RLS_SQL))}
            policies = (
                await conn.execute(
                    text(
                        "SELECT tablename, policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
                        "WHERE schemaname = 'public'"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    tenant_owned = with_tenant_id - GLOBAL_TABLES_WITH_TENANT_ID
    # Every tenant table the models know is in the database, and the database has no tenant table they do not.
    assert tenant_owned == set(tenant_tables())
    assert {"members", "ledger_entries", "lots", "point_balances", "api_keys"} <= tenant_owned
    problems = []
    primary = {row.table_name: row.first_column for row in keys if row.is_primary}
    for table in sorted(tenant_owned):
        if primary.get(table) != "tenant_id":
            problems.append(f"{table}: primary key starts with {primary.get(table)}")
    for row in keys:
        if row.table_name in tenant_owned and row.first_column != "tenant_id":
            problems.append(f"{row.table_name}: unique index {row.index_name} starts with {row.first_column}")
    for fk in foreign_keys:
        if fk.table_name not in tenant_owned:
            continue
        pairs_tenant = fk.referenced_first == "tenant_id" or (
            fk.referenced_table == "tenants" and fk.referenced_first == "id"
        )
        if fk.first_column != "tenant_id" or not pairs_tenant:
            problems.append(
                f"{fk.table_name}: foreign key {fk.name} ({fk.first_column} -> "
                f"{fk.referenced_table}.{fk.referenced_first})"
            )
    by_table: dict[str, list] = {}
    for policy in policies:
        if policy.permissive == "RESTRICTIVE" and policy.cmd == "DELETE" and policy.policyname == "retention_only":
            continue  # narrows what retention may delete (core.retention.jobs); it can only take rows away
        if policy.policyname == "sweeper_reads":
            # The sweeps' definer function (core.jobs.sweeps) reads due rows across tenants, as its own role only,
            # and answers only tenant ids; the application role never has this policy.
            assert (policy.cmd, list(policy.roles)) == ("SELECT", ["fealty_app_sweeper"]), policy
            continue
        by_table.setdefault(policy.tablename, []).append(policy)
    for table in sorted(tenant_owned):
        if rls.get(table) != (True, True):
            problems.append(f"{table}: row-level security (enabled, forced) is {rls.get(table)}")
        found = by_table.get(table, [])
        if len(found) != 1:
            problems.append(f"{table}: {len(found)} policies")
            continue
        policy = found[0]
        for clause in (policy.qual, policy.with_check):
            if not (clause or "").startswith("(tenant_id = ") or "current_setting('app.tenant_id'" not in clause:
                problems.append(f"{table}: policy {policy.policyname} clause {clause!r}")
        if (policy.permissive, policy.cmd, list(policy.roles)) != ("PERMISSIVE", "ALL", ["public"]):
            problems.append(f"{table}: policy {policy.policyname} is {policy.permissive} {policy.cmd} {policy.roles}")
    assert problems == []
