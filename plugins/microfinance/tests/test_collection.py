"""Fair collection through the care engine's protection: only the borrower's own loans, contact hours in the member's
zone (across DST), bereavement, holidays, at most 7 contacts in 7 days across channels under several workers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from core.care.policy import Defer, MessageFacts, ProtectionSettings, Send, Suppress
from core.care.protection import reserve
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, MakeTenant, TenantHandle
from plugins.microfinance.tests.conftest import borrower, loan, local_today, ok, product

ARREARS = MessageFacts(channel="sms", purpose="service", category="collection", trigger="microfinance.arrears")
REMINDER = MessageFacts(channel="email", purpose="service", category="reminder", trigger="microfinance.repayment_due")


async def decide(  # type: ignore[no-untyped-def]
    runtime: Runtime, tenant: TenantHandle, member_id: str, message: MessageFacts, now: datetime, holidays=()
):
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        return await reserve(
            session,
            tenant_id=tenant.id,
            member_id=uuid.UUID(member_id),
            message=message,
            settings=ProtectionSettings(),
            now=now,
            holidays=holidays,
        )


async def indebted(tenant: TenantHandle, **member: object) -> dict:
    m = await borrower(tenant, phone="+8613800000000", email="b@example.cn", **member)
    await loan(tenant, m, await product(tenant), "5000", disburse=local_today() - timedelta(days=1))
    return m


async def test_no_collection_for_someone_without_a_loan_of_their_own(mf_tenant: TenantHandle, runtime: Runtime) -> None:
    neighbour = await borrower(mf_tenant, phone="+8613800000001")
    noon = datetime(2026, 12, 1, 4, tzinfo=UTC)  # 12:00 in Shanghai
    verdict = await decide(runtime, mf_tenant, neighbour["id"], ARREARS, noon)
    assert isinstance(verdict, Suppress) and verdict.reason == "microfinance.not_borrower"
    # other care (a greeting) is not the plugin's business
    greeting = MessageFacts(channel="sms", purpose="service", category="notice", trigger="birthday")
    assert isinstance(await decide(runtime, mf_tenant, neighbour["id"], greeting, noon), Send)


async def test_contact_hours_in_the_members_zone_across_the_dst_change(
    mf_tenant: TenantHandle, runtime: Runtime
) -> None:
    member = await indebted(mf_tenant, timezone="Europe/London")
    # 28 March 2027, clocks go forward in London at 01:00 UTC: 06:30 UTC is 07:30 BST, before 08:00
    with time_machine.travel(datetime(2027, 3, 28, 6, 30, tzinfo=UTC), tick=False):
        now = datetime(2027, 3, 28, 6, 30, tzinfo=UTC)
        verdict = await decide(runtime, mf_tenant, member["id"], REMINDER, now)
    assert isinstance(verdict, Defer) and verdict.reason == "microfinance.contact_hours"
    assert verdict.until == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)  # 08:00 BST
    # 19:00 local is already too late: the next morning
    evening = datetime(2027, 3, 28, 18, 0, tzinfo=UTC)  # 19:00 BST
    verdict = await decide(runtime, mf_tenant, member["id"], REMINDER, evening)
    assert isinstance(verdict, Defer) and verdict.until == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    # 10:00 BST goes
    assert isinstance(
        await decide(runtime, mf_tenant, member["id"], REMINDER, datetime(2027, 3, 28, 9, tzinfo=UTC)), Send
    )


async def test_no_contact_during_a_bereavement_or_on_a_holiday(mf_tenant: TenantHandle, runtime: Runtime) -> None:
    member = await indebted(mf_tenant)
    await ok(
        await mf_tenant.post(
            f"/v1/microfinance/borrowers/{member['id']}/bereavements",
            json={"starts_on": "2027-02-01", "ends_on": "2027-02-07", "note": "father passed away"},
        ),
        201,
    )
    noon = datetime(2027, 2, 3, 4, tzinfo=UTC)
    verdict = await decide(runtime, mf_tenant, member["id"], ARREARS, noon)
    assert isinstance(verdict, Defer) and verdict.reason == "microfinance.bereavement"
    assert verdict.until == datetime(2027, 2, 8, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai on the 8th
    # the tenant's holiday (as delivery loads it from the care calendar)
    labour_day = {date(2027, 5, 1)}
    verdict = await decide(runtime, mf_tenant, member["id"], REMINDER, datetime(2027, 5, 1, 4, tzinfo=UTC), labour_day)
    assert isinstance(verdict, Defer) and verdict.reason == "microfinance.holiday"
    assert verdict.until >= datetime(2027, 5, 2, 0, 0, tzinfo=UTC)


@pytest.mark.postgres_only
async def test_seven_contacts_in_seven_days_hold_under_concurrent_workers(
    pg_client: AppClient, make_tenant: MakeTenant
) -> None:
    from core.testing import create_tenant

    runtime: Runtime = pg_client.app.state["runtime"]
    tenant = await create_tenant(pg_client, timezone="Asia/Shanghai", currency="CNY")
    await ok(
        await tenant.patch(
            "/v1/program",
            json={"plugins": ["microfinance"], "plugin_settings": {"microfinance": {"seed_defaults": False}}},
        )
    )
    member = await indebted(tenant)
    member_id = uuid.UUID(member["id"])
    noon = datetime(2027, 6, 9, 4, tzinfo=UTC)
    # two contacts earlier in the week, on other channels
    for days_ago, message in ((3, REMINDER), (5, ARREARS)):
        assert isinstance(await decide(runtime, tenant, member["id"], message, noon - timedelta(days=days_ago)), Send)
    inside = asyncio.Barrier(8)

    async def worker(i: int) -> object:
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            await inside.wait()
            verdict = await reserve(
                session,
                tenant_id=tenant.id,
                member_id=member_id,
                message=ARREARS if i % 2 else REMINDER,
                settings=ProtectionSettings(),
                now=noon,
            )
            await asyncio.sleep(0.05)
            return verdict

    verdicts = await asyncio.gather(*(worker(i) for i in range(8)))
    sent = [v for v in verdicts if isinstance(v, Send)]
    held = [v for v in verdicts if isinstance(v, Defer)]
    assert len(sent) == 5, verdicts  # 2 earlier + 5 today = 7 in 7 days
    assert {v.reason for v in held} == {"microfinance.contact_cap"}
    assert all(v.until == datetime(2027, 6, 10, 0, 0, tzinfo=UTC) for v in held)


async def test_never_a_collection_contact_on_the_day_of_a_greeting(mf_tenant: TenantHandle, runtime: Runtime) -> None:
    member = await indebted(mf_tenant)
    morning = datetime(2027, 6, 9, 2, tzinfo=UTC)  # 10:00 in Shanghai
    greeting = MessageFacts(channel="sms", purpose="service", category="greeting", trigger="birthday")
    assert isinstance(await decide(runtime, mf_tenant, member["id"], greeting, morning), Send)
    verdict = await decide(runtime, mf_tenant, member["id"], ARREARS, morning + timedelta(hours=2))
    assert isinstance(verdict, Defer) and verdict.reason == "category_conflict"
    assert verdict.until >= datetime(2027, 6, 10, 0, 0, tzinfo=UTC)  # 08:00 the next local day at the earliest
