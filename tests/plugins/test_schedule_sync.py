"""A tenant's recurring work is scheduled when the tenant is created, suspended or resumed and when its plugins
change, in that request's transaction — not at the worker's next sync pass (``FEALTY_SCHEDULE_SYNC_SECONDS``): the
schedule rows are there as the request answers, and their first run falls due within the kind's interval. A worker's
full sync at the same time as the requests neither fails them nor doubles a row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs import schedules
from core.jobs.models import Job, JobSchedule
from core.runtime import Runtime
from core.testing import AppClient, MakeTenant, TenantHandle
from core.worker import build_registry

NIGHTLY = "plugin.example.nightly"


async def rows(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, JobSchedule]:
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        found = (await session.execute(select(JobSchedule).where(JobSchedule.scope == str(tenant_id)))).scalars()
        return {row.kind: row for row in found}


def core_kinds(runtime: Runtime) -> set[str]:
    """The per-tenant kinds a tenant without plugins has rows for (swept and platform kinds have one row for all)."""
    wanted = schedules._wanted(build_registry(runtime).recurring, [(uuid.uuid4(), [])], platform=False)
    return {kind for kind, _ in wanted}


async def test_a_new_tenants_work_is_scheduled_at_creation_and_follows_its_plugins_and_status(
    client: AppClient, runtime: Runtime, make_tenant: MakeTenant, platform_headers: dict[str, str]
) -> None:
    before = utcnow()
    tenant = await make_tenant()
    scheduled = await rows(runtime, tenant.id)
    # Every per-tenant kind of core's is swept (core/jobs/sweeps.py): a tenant without plugins has no row of its own.
    assert set(scheduled) == core_kinds(runtime) == set(), "core kinds have no per-tenant rows"
    assert all(before <= r.next_due_at.replace(tzinfo=before.tzinfo) for r in scheduled.values())

    # Enabling a plugin schedules its jobs at once, first due within their interval; the worker then runs it.
    assert (await tenant.patch("/v1/program", json={"plugins": ["example"]})).status_code == 200
    nightly = (await rows(runtime, tenant.id))[NIGHTLY]
    due = nightly.next_due_at.replace(tzinfo=before.tzinfo)
    assert nightly.every_seconds == 3600 and before <= due <= utcnow() + timedelta(seconds=3600)
    assert await schedules.materialize_due(runtime.sessionmaker, due + timedelta(seconds=1)) >= 1
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        queued = (
            await session.execute(
                select(func.count()).where(Job.tenant_id == tenant.id, Job.kind == NIGHTLY, Job.status == "queued")
            )
        ).scalar_one()
    assert queued == 1

    # Disabling it removes them; suspending the tenant removes everything, resuming brings it back.
    assert (await tenant.patch("/v1/program", json={"plugins": []})).status_code == 200
    assert NIGHTLY not in await rows(runtime, tenant.id)
    suspend = await client.patch(
        f"/v1/platform/tenants/{tenant.id}", json={"status": "suspended"}, headers=platform_headers
    )
    assert suspend.status_code == 200 and await rows(runtime, tenant.id) == {}
    resume = await client.patch(
        f"/v1/platform/tenants/{tenant.id}", json={"status": "active"}, headers=platform_headers
    )
    assert resume.status_code == 200 and set(await rows(runtime, tenant.id)) == core_kinds(runtime)


async def test_a_tenant_created_with_a_plugin_has_its_jobs_scheduled_in_the_same_request(
    make_tenant: MakeTenant, runtime: Runtime
) -> None:
    tenant = await make_tenant(plugins=["example"])
    assert set(await rows(runtime, tenant.id)) == core_kinds(runtime) | {NIGHTLY}


async def test_requests_and_a_workers_full_sync_at_once_never_fail_nor_double_a_row(
    tenant: TenantHandle, runtime: Runtime
) -> None:
    registry = build_registry(runtime)
    for plugins in (["example"], [], ["example"]):
        answers = await asyncio.gather(
            tenant.patch("/v1/program", json={"plugins": plugins}),
            schedules.sync(runtime.sessionmaker, registry, utcnow()),
            tenant.patch("/v1/program", json={"plugins": plugins}),
        )
        assert [a.status_code for a in (answers[0], answers[2])] == [200, 200]
        assert (NIGHTLY in await rows(runtime, tenant.id)) == bool(plugins)
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        counts = (
            await session.execute(
                select(JobSchedule.kind, func.count())
                .where(JobSchedule.scope == str(tenant.id))
                .group_by(JobSchedule.kind)
            )
        ).all()
    assert counts and all(n == 1 for _, n in counts)
