"""On PostgreSQL, as the app role under row-level security: a statement that looks rows up by a list of strings keeps
its index in a generic plan (what a prepared statement runs after its fifth execution).

Bound as ``varchar(n)[]``, the list was cast element by element with a length check PostgreSQL does not know to be
leakproof, so row-level security kept the comparison out of the index: every group of single events read the whole
events table (bench/README.md, "Open-loop latency"), and a group's members lookup at 1M members read all of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.events.pipeline.members import _members_by
from core.events.pipeline.retries import _stored_events
from core.testing import TenantHandle, settings_for_tests


@pytest.fixture
async def app_role_sessions(postgres_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions exactly as the application makes them: the app role, row-level security on."""
    engine = create_engine(settings_for_tests(postgres_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


async def generic_plan(session: AsyncSession, statement: Any, arguments: str) -> str:
    """The generic plan of ``statement`` (compiled as the app sends it), prepared and explained in SQL; sequential
    and bitmap scans off, so the plan goes through the index whatever the tables' size."""
    sql = str(statement.compile(dialect=session.get_bind().dialect))
    name = f"p_{uuid.uuid4().hex[:12]}"
    await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    await session.execute(text("SET LOCAL enable_bitmapscan = off"))
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute(f"PREPARE {name} AS {sql}")
    try:
        rows = await driver.fetch(f"EXPLAIN EXECUTE {name}({arguments})")
    finally:
        await driver.execute(f"DEALLOCATE {name}")
    return "\n".join(row[0] for row in rows)


def assert_indexable(plan: str, column: str) -> None:
    """The list is compared as it was bound, with no cast of each element: nothing keeps the comparison out of the
    index (on these small tables the planner may still prefer to filter the tenant's rows; on the bench's tables it
    takes the comparison as the index condition, bench/README.md)."""
    assert "Seq Scan" not in plan, plan
    compared = [line for line in plan.splitlines() if f"({column})::text = ANY" in line]
    assert compared, plan
    assert all("character varying" not in line and "::text[]" not in line for line in compared), plan


async def test_events_by_event_id_use_the_index_in_a_generic_plan(
    app_role_sessions: async_sessionmaker[AsyncSession], pg_tenant: TenantHandle
) -> None:
    async with tenant_session(app_role_sessions, pg_tenant.id) as session:
        plan = await generic_plan(session, _stored_events(True), f"'{pg_tenant.id}', ARRAY['e-1', 'e-2']")
    assert_indexable(plan, "event_id")


async def test_members_by_external_id_use_the_index_in_a_generic_plan(
    app_role_sessions: async_sessionmaker[AsyncSession], pg_tenant: TenantHandle
) -> None:
    async with tenant_session(app_role_sessions, pg_tenant.id) as session:
        plan = await generic_plan(session, _members_by(("external_id",), True), f"'{pg_tenant.id}', ARRAY['m-1']")
    assert_indexable(plan, "external_id")
