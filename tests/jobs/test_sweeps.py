"""The sweeps' conditions (core/jobs/sweeps.py), kind by kind, on both databases: a tenant with due work of a kind is
found, a tenant without is not, and not-yet-due work is not due. On PostgreSQL the worker's role sees one tenant at
a time, so the answers come from ``fealty_due_tenants`` (the migrations' copy of the conditions): the same cases
hold both copies to one meaning."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.db.engine import tenant_session
from core.jobs import sweeps
from core.members.models import Member
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from tests.care.conftest import rule, template


async def _due(runtime: Runtime, kind: str, at: datetime) -> set[uuid.UUID]:
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        return set(await sweeps.due_tenants(session, kind, at))


async def test_pending_points_are_due_for_release_once_available(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    member = await tenant.enrol()
    available = datetime.now(UTC) + timedelta(hours=1)
    await tenant.credit(member["id"], 10, available_at=available.isoformat())
    assert tenant.id not in await _due(runtime, "ledger.release", datetime.now(UTC))
    due = await _due(runtime, "ledger.release", available + timedelta(seconds=1))
    assert tenant.id in due and quiet.id not in due


async def test_undispatched_events_are_due_for_dispatch(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    await tenant.enrol()  # member.enrolled waits in the outbox
    due = await _due(runtime, "outbox.dispatch", datetime.now(UTC))
    assert tenant.id in due and quiet.id not in due


async def test_expired_idempotency_keys_are_due_for_the_purge(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    response = await tenant.post("/v1/members", json={"external_id": "k-1"}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text
    assert tenant.id not in await _due(runtime, "idempotency.purge", datetime.now(UTC))
    due = await _due(runtime, "idempotency.purge", datetime.now(UTC) + timedelta(days=30))
    assert tenant.id in due and quiet.id not in due


async def test_ended_tier_periods_are_due_for_closing(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    member = await tenant.enrol()
    ends = datetime.now(UTC) + timedelta(days=3)
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await session.execute(update(Member).where(Member.id == uuid.UUID(member["id"])).values(tier_valid_until=ends))
    assert tenant.id not in await _due(runtime, "tiers.close_periods", datetime.now(UTC))
    due = await _due(runtime, "tiers.close_periods", ends)
    assert tenant.id in due and quiet.id not in due


async def test_care_occasions_are_looked_for_only_where_a_rule_is_active(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    assert tenant.id not in await _due(runtime, "care.occasions", datetime.now(UTC))
    made = await rule(tenant, "welcome", (await template(tenant, "welcome"))["id"])
    due = await _due(runtime, "care.occasions", datetime.now(UTC))
    assert tenant.id in due and quiet.id not in due
    paused = await tenant.patch(f"/v1/care/rules/{made['id']}", json={"active": False})
    assert paused.status_code == 200, paused.text
    assert tenant.id not in await _due(runtime, "care.occasions", datetime.now(UTC))


async def test_a_suspended_tenant_is_never_due(runtime: Runtime, client: object, tenant: TenantHandle) -> None:
    await tenant.enrol()
    assert tenant.id in await _due(runtime, "outbox.dispatch", datetime.now(UTC))
    async with tenant_session(runtime.sessionmaker, None) as session:
        from core.tenancy.models import Tenant

        await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(status="suspended"))
    assert tenant.id not in await _due(runtime, "outbox.dispatch", datetime.now(UTC))


async def test_open_cases_are_due_for_the_breach_sweep_once_a_clock_runs_out(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    category = {"code": "quality", "names": {"en": "Quality"}, "first_reply_hours": 4, "resolution_hours": 48}
    assert (await tenant.post("/v1/case-categories", json=category)).status_code == 201
    member = await tenant.enrol()
    body = {"member_id": member["id"], "kind": "complaint", "channel": "phone", "category": "quality"}
    opened = await tenant.post("/v1/cases", json=body | {"subject": "Cold coffee"})
    assert opened.status_code == 201, opened.text
    assert tenant.id not in await _due(runtime, "cases.breaches", datetime.now(UTC))
    due = await _due(runtime, "cases.breaches", datetime.now(UTC) + timedelta(hours=5))
    assert tenant.id in due and quiet.id not in due


async def test_surveys_invite_only_where_one_is_active(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    survey = {
        "code": "visit",
        "name": "How was your visit?",
        "status": "active",
        "invite_on": {"trigger": "case.closed"},
        "factors": [{"code": "service", "name": "Service", "questions": [{"code": "q1", "text": "Staff?"}]}],
    }
    created = await tenant.post("/v1/surveys", json=survey)
    assert created.status_code == 201, created.text
    due = await _due(runtime, "surveys.invitations", datetime.now(UTC))
    assert tenant.id in due and quiet.id not in due


async def test_retention_is_due_only_where_there_are_finished_rows(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    from core.outbox.models import OutboxEvent

    quiet = await make_tenant()
    await tenant.enrol()  # member.enrolled waits in the outbox: nothing finished yet
    assert tenant.id not in await _due(runtime, "retention.tenant", datetime.now(UTC))
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await session.execute(update(OutboxEvent).values(dispatched_at=datetime.now(UTC)))
    due = await _due(runtime, "retention.tenant", datetime.now(UTC))
    assert tenant.id in due and quiet.id not in due


async def test_the_loyalty_run_and_the_plugins_members_condition_need_members(
    runtime: Runtime, tenant: TenantHandle, make_tenant: MakeTenant
) -> None:
    quiet = await make_tenant()
    member = await tenant.enrol()
    for condition in ("measurement.loyalty", "members"):
        due = await _due(runtime, condition, datetime.now(UTC))
        assert tenant.id in due and quiet.id not in due, condition
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await session.execute(update(Member).where(Member.id == uuid.UUID(member["id"])).values(status="anonymized"))
    # An anonymized member is still measured (the run clears its figures), but is no one a plugin's job serves.
    assert tenant.id in await _due(runtime, "measurement.loyalty", datetime.now(UTC))
    assert tenant.id not in await _due(runtime, "members", datetime.now(UTC))
