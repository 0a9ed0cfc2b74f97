"""The demo hook (``fealty_demo_tenants``) as a plugin author relies on it: ``fealty demo`` creates the plugin's
tenant with its key, enables the plugin with the demo's settings, awaits the plugin's ``seed`` (which works through
the real HTTP API, in the tenant's zone), runs the worker for the tenant, measures it and prints what ``seed``
returned; a second run changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import msgspec
import pytest

from core import DemoContext, DemoError, DemoSeeded, DemoTenant, JobContext, ScheduledJob
from core.app import create_app
from core.cli import _demo_report
from core.demo import DemoAlreadySeeded, DemoRun, seed_demo
from core.plugin.manager import PluginManager
from core.testing import TEST_PLATFORM_KEY, register_inline_plugin, settings_for_tests


class GymSettings(msgspec.Struct, forbid_unknown_fields=True):
    visit_points: int = 1


def gym_plugin(manager: PluginManager, seen: dict[str, Any], *, suffix: str = "gym") -> None:
    """An inline plugin with a demo tenant (in Tokyo) and a daily job, recording what its seed and job saw."""

    async def seed(ctx: DemoContext) -> DemoSeeded:
        seen["program"] = await ctx.api.get("/v1/program")
        seen["today"], seen["tz"], seen["locale"] = ctx.today, ctx.tz, ctx.locale
        ids = await ctx.api.enrol(
            [{"external_id": "M-1", "name": "Aiko Tanaka"}, {"external_id": "M-2", "name": "Ren"}]
        )
        # 07:00 in Tokyo, yesterday: the API stores the instant (22:00 UTC the day before).
        at = ctx.local(ctx.today - timedelta(days=1), 7)
        seen["at"] = at
        purchase = {"type": "purchase", "member": {"external_id": "M-1"}, "amount": "1200", "currency": "JPY"}
        statuses = await ctx.api.send_events([purchase | {"event_id": "p-1", "occurred_at": at.isoformat()}])
        seen["statuses"] = dict(statuses)
        seen["jobs_before_work"] = len(seen.setdefault("jobs", []))
        await ctx.work()
        seen["jobs_after_work"] = len(seen["jobs"])
        member = ids["M-1"]
        return DemoSeeded(
            members={"regular": member},
            extras={"first_purchase": "p-1"},
            counts={"gyms": 3},
            lines=[
                f"MEMBER={member}   # {await ctx.describe(member)}",
                f'curl -s $B/v1/members/$MEMBER/balance -H "Authorization: Bearer ${ctx.key_variable}"',
            ],
        )

    def fealty_demo_tenants() -> list[DemoTenant]:
        return [
            DemoTenant(
                slug_suffix=suffix,
                name="Shibuya Gyms (demo)",
                currency="JPY",
                timezone="Asia/Tokyo",
                country="JP",
                locale="ja-JP",
                settings={"visit_points": 10},
                program={"points_name": "Reps"},
                seed=seed,
            )
        ]

    async def nightly(ctx: JobContext) -> None:
        seen.setdefault("jobs", []).append((ctx.tenant.id, ctx.tenant.settings_for("gym").visit_points))

    def fealty_scheduled_jobs() -> list[ScheduledJob]:
        return [ScheduledJob("nightly", 86400, nightly)]

    register_inline_plugin(manager, fealty_demo_tenants, fealty_scheduled_jobs, name="gym", settings=GymSettings)


async def test_a_plugins_demo_tenant_is_created_enabled_seeded_worked_and_printed(database_url: str) -> None:
    manager = PluginManager()
    seen: dict[str, Any] = {}
    gym_plugin(manager, seen)
    app = create_app(settings_for_tests(database_url, rate_limit_per_second=0.0), plugins=manager)
    prefix = f"g{uuid.uuid4().hex[:8]}"
    async with app.lifespan():
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            result = await seed_demo(client, app.state["runtime"], TEST_PLATFORM_KEY, prefix=prefix)
            # A second run finds the tenants and writes nothing (the seed is not called again).
            seen.pop("program")
            with pytest.raises(DemoAlreadySeeded) as refused:
                await seed_demo(client, app.state["runtime"], TEST_PLATFORM_KEY, prefix=prefix)
            assert "program" not in seen
            gym = result.tenant("gym")
            assert gym is not None
            headers = {"Authorization": f"Bearer {gym.api_key}"}
            program = (await client.get("/v1/program", headers=headers)).json()
            events = (await client.get("/v1/events", headers=headers)).json()["items"]
    assert refused.value.slugs == [f"{prefix}-gym", f"{prefix}-coffee"]
    assert [t.slug for t in result.tenants] == [f"{prefix}-gym", f"{prefix}-coffee"]

    # The tenant was made as described, the plugin enabled with its settings before the seed ran.
    assert (gym.name, gym.plugin, gym.key_variable) == ("Shibuya Gyms (demo)", "gym", "KGYM")
    assert program["plugins"] == ["gym"] and program["points_name"] == "Reps"
    assert program["plugin_settings"]["gym"] == {"visit_points": 10}
    assert (program["timezone"], program["currency"]) == ("Asia/Tokyo", "JPY")
    # The seed worked in the tenant's zone: its 07:00 yesterday in Tokyo is the instant stored.
    assert str(seen["tz"]) == "Asia/Tokyo" and seen["locale"] == "ja-JP"
    assert seen["today"] == datetime.now(UTC).astimezone(seen["tz"]).date()
    [event] = events
    assert datetime.fromisoformat(event["occurred_at"]) == seen["at"] and seen["at"].utcoffset() == timedelta(hours=9)
    assert seen["statuses"] == {"awarded": 1}
    # ctx.work() ran the plugin's job for this tenant (with its settings); core ran the worker again after the seed.
    assert seen["jobs_before_work"] == 0 and seen["jobs_after_work"] == 1
    assert {job for job in seen["jobs"]} == {(uuid.UUID(gym.id), 10)}

    # What was made is counted and measured; the seed's members, extras, counts and lines are reported.
    assert gym.counts["members"] == 2 and gym.counts["events_awarded"] == 1 and gym.counts["gyms"] == 3
    assert gym.counts["members_measured"] == 2
    assert gym.members == {"regular": event["member_id"]} and gym.notes["regular"].startswith("Aiko Tanaka: ")
    assert gym.extras["first_purchase"] == "p-1"
    printed = _demo_report(DemoRun(result, TEST_PLATFORM_KEY, "environment", database_url), 1.0)
    assert f"KGYM={gym.api_key}   # {prefix}-gym: its admin API key" in printed
    assert f"MEMBER={event['member_id']}   # Aiko Tanaka: no tier, " in printed
    assert 'curl -s $B/v1/members/$MEMBER/balance -H "Authorization: Bearer $KGYM"' in printed


def test_a_slug_suffix_contributed_twice_is_refused() -> None:
    manager = PluginManager()
    gym_plugin(manager, {})

    def fealty_demo_tenants() -> list[DemoTenant]:
        async def seed(ctx: DemoContext) -> None:
            return None

        return [DemoTenant(slug_suffix="gym", name="Other", currency="EUR", timezone="UTC", seed=seed)]

    register_inline_plugin(manager, fealty_demo_tenants, name="other")
    with pytest.raises(ValueError, match="'gym' contributed twice"):
        manager.demo_tenants()


async def test_a_seed_that_meets_an_unexpected_answer_fails_the_demo_with_the_answer(sqlite_url: str) -> None:
    async def seed(ctx: DemoContext) -> None:
        await ctx.api.post("/v1/members", {"external_id": "M-1", "name": "x", "email": "not an address"})

    def fealty_demo_tenants() -> list[DemoTenant]:
        return [DemoTenant(slug_suffix="broken", name="Broken (demo)", currency="EUR", timezone="UTC", seed=seed)]

    manager = PluginManager()
    register_inline_plugin(manager, fealty_demo_tenants, name="broken")
    app = create_app(settings_for_tests(sqlite_url, rate_limit_per_second=0.0), plugins=manager)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            with pytest.raises(DemoError, match=r"POST /v1/members answered 422: .*email"):
                await seed_demo(client, app.state["runtime"], TEST_PLATFORM_KEY, prefix=f"x{uuid.uuid4().hex[:8]}")
