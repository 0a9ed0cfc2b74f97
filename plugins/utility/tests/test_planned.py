"""Planned outages: each stage at its lead time (priority customers earlier, with a call task), reminders, a late
notice that says so, edits and cancellation told once to those already told, in the tenant's zone across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from core import worker
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages, planned

LONDON = ZoneInfo("Europe/London")
TRIGGERS = (
    "utility.planned_notice",
    "utility.planned_reminder",
    "utility.planned_changed",
    "utility.planned_cancelled",
)


async def stages(t: TenantHandle, outage_id: str) -> dict[str, list[str]]:
    response = await t.get(f"/v1/utility/outages/{outage_id}/accounts", params={"limit": 200})
    assert response.status_code == 200, response.text
    return {i["account_id"]: i["stages"] for i in response.json()["items"]}


async def test_each_stage_at_its_lead_time_across_the_spring_change(make_tenant: MakeTenant, runtime: Runtime) -> None:
    # the outage is at 09:00 London time on 30 March 2031, after the clocks go forward (30 March 2031, 01:00 UTC)
    start = datetime(2031, 3, 31, 9, tzinfo=LONDON)
    with time_machine.travel(datetime(2031, 3, 15, 12, tzinfo=UTC), tick=True) as clock:
        t = await enable_utility(await make_tenant(timezone="Europe/London"))
        await care_rules(t, *TRIGGERS)
        home = await account(t)
        vip = await account(t, customer_class="large", account_manager="li.wei@example.com")
        psr = await account(t, psr={"needs": ["medical_equipment"], "consent": True, "source": "customer-call"})
        created = await planned(t, start)
        assert created["told"] == {} and created["affected_accounts"] == 3

        async def at(when: datetime) -> dict[str, list[str]]:
            clock.move_to(when)
            await worker.tick(runtime, t.id)
            return await stages(t, created["id"])

        # 10 days before, 09:00 GMT: the priority customers, and their managers' call tasks
        assert (await at(datetime(2031, 3, 21, 8, 59, tzinfo=UTC))) == {home["id"]: [], vip["id"]: [], psr["id"]: []}
        seen = await at(datetime(2031, 3, 21, 9, 1, tzinfo=UTC))
        assert seen == {home["id"]: [], vip["id"]: ["priority_notice"], psr["id"]: ["priority_notice"]}
        tasks = (await t.get("/v1/utility/call-tasks", params={"outage_id": created["id"]})).json()["items"]
        assert {(x["account_id"], x["assignee"]) for x in tasks} == {
            (vip["id"], "li.wei@example.com"),
            (psr["id"], "priority-desk"),
        }
        # 7 days before: everyone else; running again changes nothing
        seen = await at(datetime(2031, 3, 24, 9, 5, tzinfo=UTC))
        assert seen[home["id"]] == ["notice"]
        assert await at(datetime(2031, 3, 24, 9, 10, tzinfo=UTC)) == seen
        # 6 days before, then 1 day before at 09:00 BST (08:00 UTC) after the change
        seen = await at(datetime(2031, 3, 25, 9, 5, tzinfo=UTC))
        assert all(s[-1] == "reminder:6" for s in seen.values())
        assert (await at(datetime(2031, 3, 30, 7, 59, tzinfo=UTC)))[home["id"]][-1] == "reminder:6"
        seen = await at(datetime(2031, 3, 30, 8, 1, tzinfo=UTC))
        assert all(s == ([*s[:1], "reminder:6", "reminder:1"]) for s in seen.values())
    sent = await messages(t, trigger="utility.planned_notice")
    assert len(sent) == 3 and all(m["purpose"] == "service" for m in sent)
    assert all(m["subject"].endswith("late=False") for m in sent)
    assert len(await messages(t, trigger="utility.planned_reminder")) == 6


async def test_a_late_notice_says_so_and_skips_passed_reminders(utility_tenant: TenantHandle, runtime: Runtime) -> None:
    t = utility_tenant
    await care_rules(t, *TRIGGERS)
    home = await account(t)
    created = await planned(t, datetime.now(UTC) + timedelta(days=3))
    assert created["told"] == {"notice": 1}
    [notice] = await messages(t, trigger="utility.planned_notice")
    assert notice["subject"].endswith("late=True")
    await worker.tick(runtime, t.id)
    assert (await stages(t, created["id"])) == {home["id"]: ["notice"]}


async def test_edits_and_cancellation_told_once_to_those_told(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    await care_rules(t, *TRIGGERS)
    home = await account(t)
    start = datetime.now(UTC) + timedelta(days=5)
    created = await planned(t, start)
    late = await account(t)  # joins the feeder after the notice: never told, so not told of changes
    await t.post(f"/v1/utility/outages/{created['id']}", json={})  # a POST to the item is not a route
    moved = start + timedelta(days=1)
    body = {"starts_at": moved.isoformat(), "ends_at": (moved + timedelta(hours=8)).isoformat()}
    first = await t.patch(f"/v1/utility/outages/{created['id']}", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["window_version"] == 1 and first.json()["told"] == {"changed:1": 1}
    again = await t.patch(f"/v1/utility/outages/{created['id']}", json=body)
    assert again.json()["window_version"] == 1 and again.json()["told"] == {}
    for _ in range(2):
        cancel = await t.post(f"/v1/utility/outages/{created['id']}/cancel")
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    seen = await stages(t, created["id"])
    assert seen[home["id"]] == ["notice", "changed:1", "cancelled"]
    assert late["id"] not in seen
    assert len(await messages(t, trigger="utility.planned_cancelled")) == 1
    refused = await t.patch(f"/v1/utility/outages/{created['id']}", json=body | {"starts_at": start.isoformat()})
    assert refused.status_code == 409
