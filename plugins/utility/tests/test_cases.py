"""Replies and cases: "still out" (in the tenant's languages) reopens the restored outage for the account and opens a
case, urgent for a medical-equipment customer; large customers' cases go to their account manager."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from core.cases.models import Case
from core.clock import utcnow
from core.db.engine import tenant_session
from core.plugin.types import MemberView, ReplyContext, ReplyView
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import TenantHandle
from plugins.utility import cases
from plugins.utility.tests.conftest import account, outage


async def reply(runtime: Runtime, t: TenantHandle, member_id: str, text: str, occasion: str | None = None) -> Any:
    """What core does with ``POST /v1/care/replies``: offer the reply to the plugin's ``fealty_claim_reply``."""
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        program = await load_program_settings(session, t.id)
        tenant, now = program.tenant_view(t.id, runtime.plugins), utcnow()
        member = MemberView(uuid.UUID(member_id), "x", now, None, None, {})
        view = ReplyView(new := uuid.uuid4(), "sms", None, text, now, member, message_occasion=occasion)
        assert new
        ctx = ReplyContext(
            tenant=tenant, session=session, now=now, services=runtime.plugins.services(session, tenant, now), reply=view
        )
        return await cases.claim_reply(ctx)


async def all_cases(runtime: Runtime, t: TenantHandle) -> list[Case]:
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        return list((await session.execute(select(Case).where(Case.tenant_id == t.id))).scalars().all())


async def test_still_out_reopens_for_the_account_and_opens_one_case(
    utility_tenant: TenantHandle, runtime: Runtime
) -> None:
    t = utility_tenant
    home = await account(t, psr={"needs": ["medical_equipment"], "consent": True, "source": "call"})
    neighbour = await account(t)
    created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=14)).isoformat(), etr=None)
    assert (await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})).status_code == 200
    assert await reply(runtime, t, home["member_id"], "thanks, all good") is None
    claim = await reply(runtime, t, home["member_id"], "我家仍然停电")
    assert claim is not None and claim.detail["reopened"] is True and claim.case_id is not None
    again = await reply(
        runtime, t, home["member_id"], "STILL OUT!", occasion=f"utility:{created['id']}:{home['id']}:restored"
    )
    assert again.case_id == claim.case_id  # one case per outage and account
    [case] = await all_cases(runtime, t)
    assert (case.priority, case.kind, case.reference) == (
        "urgent",
        "request",
        f"utility.still_out:{created['id']}:{home['id']}",
    )
    items = (await t.get(f"/v1/utility/outages/{created['id']}/accounts")).json()["items"]
    state = {i["account_id"]: (i["restored_at"] is None, i["reopened_at"] is not None) for i in items}
    assert state == {home["id"]: (True, True), neighbour["id"]: (False, False)}
    # restored on its own 3 hours later: 17 h in all, the compensation recomputed (95 already; still 95 for 17 h)
    later = datetime.now(UTC) + timedelta(minutes=1)
    done = await t.post(
        f"/v1/utility/outages/{created['id']}/accounts/{home['id']}/restore", json={"restored_at": later.isoformat()}
    )
    assert done.status_code == 200, done.text
    assert "restored:" in done.json()["stages"][-1]


async def test_large_customers_cases_go_to_their_manager(utility_tenant: TenantHandle, runtime: Runtime) -> None:
    t = utility_tenant
    big = await account(t, customer_class="large", account_manager="zhang.min")
    small = await account(t)
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        program = await load_program_settings(session, t.id)
        tenant, now = program.tenant_view(t.id, runtime.plugins), utcnow()
        services = runtime.plugins.services(session, tenant, now)
        routed = await services.open_case(uuid.UUID(big["member_id"]), subject="Voltage dips", source="test")
        plain = await services.open_case(uuid.UUID(small["member_id"]), subject="Bill question", source="test")
    assert (routed.assignee, routed.priority) == ("am:zhang.min", "high")
    assert plain.assignee is None
