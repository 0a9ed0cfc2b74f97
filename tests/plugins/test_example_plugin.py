"""The plugin contract, proven by the example plugin: every hook, per-tenant enablement, settings, routes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pluggy
import pytest

from core.plugin import hookimpl
from core.plugin.manager import PluginManager
from core.plugin.types import PluginInfo
from core.testing import TEST_PLATFORM_KEY, MakeTenant, TenantHandle
from core.worker import tick
from tests.plugins.example import hooks

NOW = datetime.now(UTC).isoformat()


def visit(event_id: str, member: str, site: str = "S-1", minutes: int = 30) -> dict:
    return {
        "type": "example.visit",
        "event_id": event_id,
        "member": {"external_id": member},
        "occurred_at": NOW,
        "attributes": {"site": site, "minutes": minutes},
    }


async def test_care_protection_from_a_plugin_is_combined_with_cores(make_tenant: MakeTenant, runtime) -> None:
    """fealty_care_protection: the example's fair-collection rules hold at delivery, for its tenants only."""
    from core.care.policy import Defer, MessageFacts, ProtectionSettings, Send, Suppress
    from core.care.protection import reserve
    from core.db.engine import tenant_session

    collection = MessageFacts(channel="sms", purpose="service", category="collection", trigger="example.overdue")
    with_plugin = await make_tenant(plugins=["example"])
    without = await make_tenant()

    members = {t.id: uuid.UUID((await t.enrol(phone="+447911123456"))["id"]) for t in (with_plugin, without)}

    async def attempt(tenant: TenantHandle, at: datetime, message: MessageFacts = collection) -> object:
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            return await reserve(
                session,
                tenant_id=tenant.id,
                member_id=members[tenant.id],
                message=message,
                settings=ProtectionSettings(),
                now=at,
            )

    evening = datetime(2026, 1, 15, 19, 30, tzinfo=UTC)  # 19:30 in London: core allows it, the plugin does not
    assert await attempt(without, evening) == Send()
    assert await attempt(with_plugin, evening) == Defer(
        datetime(2026, 1, 16, 8, tzinfo=UTC), "example.collection_hours"
    )
    noon = datetime(2026, 1, 15, 12, tzinfo=UTC)
    assert await attempt(with_plugin, noon) == Send()
    assert await attempt(with_plugin, noon) == Send()
    assert await attempt(with_plugin, noon) == Defer(
        datetime(2026, 1, 16, 8, tzinfo=UTC), "example.collection_attempts"
    )
    written_off = MessageFacts(channel="sms", purpose="service", category="collection", trigger="example.written_off")
    assert await attempt(with_plugin, noon, written_off) == Suppress("example.written_off")
    # most restrictive wins: the plugin's deferral, and a quiet-hours night for the tenant without it
    late = datetime(2026, 1, 15, 22, tzinfo=UTC)
    assert await attempt(with_plugin, late) == Defer(
        datetime(2026, 1, 16, 8, tzinfo=UTC), "example.collection_attempts"
    )
    assert await attempt(without, late) == Defer(datetime(2026, 1, 16, 8, tzinfo=UTC), "quiet_hours")


def calls(kind: str, tenant: TenantHandle | None = None) -> list:
    return [args for name, args in hooks.CALLS if name == kind and (tenant is None or args[0] == tenant.id)]


@pytest.fixture
async def example_tenant(make_tenant: MakeTenant) -> TenantHandle:
    tenant = await make_tenant(plugins=["example"])
    response = await tenant.patch(
        "/v1/program", json={"plugin_settings": {"example": {"points_per_visit": 40, "greeting": "welcome"}}}
    )
    assert response.status_code == 200, response.text
    return tenant


async def test_a_tenant_without_the_plugin_sees_none_of_it(tenant: TenantHandle) -> None:
    await tenant.enrol("m-1")
    response = await tenant.post("/v1/events", json=visit("v-1", "m-1"))
    assert response.status_code == 422 and response.json()["field"] == "type"
    assert (await tenant.get("/v1/example/hello")).status_code == 404
    assert (await tenant.post("/v1/example/echo", json={"text": "x"})).status_code == 404
    await tenant.post(
        "/v1/events",
        json={
            "type": "purchase",
            "event_id": "p-1",
            "member": {"external_id": "m-1"},
            "occurred_at": NOW,
            "amount": "5",
        },
    )
    assert calls("event_processed", tenant) == []  # hooks of a plugin the tenant did not enable never run


async def test_enabling_validates_settings_with_the_plugins_schema(tenant: TenantHandle) -> None:
    bad = await tenant.patch(
        "/v1/program", json={"plugins": ["example"], "plugin_settings": {"example": {"points_per_visit": -5}}}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "plugin_settings.example.points_per_visit"
    unknown = await tenant.patch(
        "/v1/program", json={"plugins": ["example"], "plugin_settings": {"example": {"colour": "red"}}}
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "plugin_settings.example.colour"
    assert (await tenant.patch("/v1/program", json={"plugins": ["nope"]})).status_code == 422
    assert (await tenant.get("/v1/example/hello")).status_code == 404  # nothing was enabled
    ok = await tenant.patch("/v1/program", json={"plugins": ["example"]})
    assert ok.status_code == 200
    assert ok.json()["plugin_settings"]["example"] == {
        "points_per_visit": 50,
        "greeting": "hello",
        "hold_site": "suspicious",
    }
    hello = await tenant.get("/v1/example/hello")
    assert hello.status_code == 200 and hello.json() == {"greeting": "hello", "tenant": str(tenant.id)}


async def test_plugin_awards_credits_and_notifications(example_tenant: TenantHandle) -> None:
    t = example_tenant
    await t.post(
        "/v1/earning-rules",
        json={"name": "per visit", "kind": "fixed", "points": "5", "event_types": ["example.visit"]},
    )
    member = await t.enrol("m-1")
    response = await t.post("/v1/events", json=visit("v-1", "m-1", minutes=90))
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert [(a["source"].split(":")[0], a["points"]) for a in outcome["awards"]] == [
        ("rule", 5),
        ("example.visit", 40),
        ("example.long_visit", 10),
    ]
    assert outcome["awards"][2]["available_at"] is not None
    assert outcome["credits"]["visits"] == "1" and outcome["credits"]["minutes"] == "90"
    balance = await t.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (45, 10)
    assert ("example", "v-1") not in calls("event_processed")
    assert calls("event_processed", t)[-1][1:] == ("v-1", "awarded", 55)


async def test_plugin_validation_and_schema_name_the_field(example_tenant: TenantHandle) -> None:
    await example_tenant.enrol("m-1")
    long = await example_tenant.post("/v1/events", json=visit("v-1", "m-1", minutes=601))
    assert long.status_code == 422 and long.json()["field"] == "attributes.minutes"
    bad = visit("v-2", "m-1") | {"attributes": {"site": "S-1", "colour": "red"}}
    response = await example_tenant.post("/v1/events", json=bad)
    assert response.status_code == 422 and response.json()["field"] == "attributes.colour"
    missing = visit("v-3", "m-1") | {"attributes": {}}
    response = await example_tenant.post("/v1/events", json=missing)
    assert response.status_code == 422 and response.json()["field"] == "attributes.site"


async def test_screening_holds_and_approval_awards_once(example_tenant: TenantHandle, backend: str) -> None:
    t = example_tenant
    member = await t.enrol("m-1")
    held = await t.post("/v1/events", json=visit("v-1", "m-1", site="suspicious"))
    assert held.status_code == 201 and held.json()["status"] == "held" and held.json()["points"] == 0
    assert "example.suspicious_site" in held.json()["reason"]
    queue = (await t.get("/v1/events", params={"status": "held"})).json()["items"]
    assert [e["event_id"] for e in queue] == ["v-1"]
    event_id = held.json()["id"]
    decisions = await asyncio.gather(
        *(
            t.post(f"/v1/events/{event_id}/approve", json={"reason": "checked CCTV"})
            for _ in range(3 if backend == "postgres" else 1)
        )
    )
    assert sorted(r.status_code for r in decisions)[0] == 200
    assert sum(r.status_code == 200 for r in decisions) == 1
    assert all(r.status_code == 409 for r in decisions if r.status_code != 200)
    assert (await t.balance(member["id"]))["available"] == 40
    again = await t.post(f"/v1/events/{event_id}/approve", json={"reason": "again"})
    assert again.status_code == 409
    closed = await t.post("/v1/events", json=visit("v-2", "m-1", site="closed"))
    assert closed.json()["status"] == "rejected" and closed.json()["points"] == 0
    held2 = await t.post("/v1/events", json=visit("v-3", "m-1", site="suspicious"))
    rejected = await t.post(f"/v1/events/{held2.json()['id']}/reject", json={"reason": "staff card"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert (await t.balance(member["id"]))["available"] == 40


async def test_batch_hooks_see_earlier_items_of_the_same_member(example_tenant: TenantHandle) -> None:
    await example_tenant.enrol("m-1")
    batch = {"events": [visit(f"b-{i}", "m-1") for i in range(3)]}
    response = await example_tenant.post("/v1/events/batch", json=batch)
    assert [r["outcome"]["status"] for r in response.json()["results"]] == ["awarded", "awarded", "held"]


async def test_enrolment_tier_and_reversal_notifications(example_tenant: TenantHandle) -> None:
    t = example_tenant
    await t.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await t.post(
        "/v1/tiers",
        json={
            "code": "fan",
            "name": "Fan",
            "rank": 1,
            "qualification": {"window": {"kind": "lifetime"}, "criteria": [{"metric": "visits", "min": "2"}]},
        },
    )
    await t.enrol("m-9")
    assert (t.id, "m-9") in calls("member_enrolled")
    assert (
        await t.get(
            f"/v1/members/{(await t.get('/v1/members', params={'external_id': 'm-9'})).json()['items'][0]['id']}/tier"
        )
    ).json()["tier"]["code"] == "base"  # entry tier from enrolment
    first = (await t.post("/v1/events", json=visit("t-1", "m-9"))).json()
    assert first["tier"] is None
    second = (await t.post("/v1/events", json=visit("t-2", "m-9"))).json()
    assert second["tier"] == {"from": "base", "to": "fan", "reason": "upgrade", "valid_until": None}
    assert (t.id, "m-9", "base", "fan") in calls("tier_changed")
    reversed_ = await t.post(f"/v1/events/{second['id']}/reverse", json={"reason": "cancelled"})
    assert reversed_.status_code == 200, reversed_.text
    assert ("t-2", 40) in calls("event_reversed")
    # The reversed visit was what made the member a fan: they are back on base, and the plugin hears of it.
    assert reversed_.json()["tier"]["to"] == "base"
    assert (t.id, "m-9", "fan", "base") in calls("tier_changed")


async def test_a_plugins_reversal_takes_back_the_tier_it_gave(example_tenant: TenantHandle) -> None:
    t = example_tenant
    await t.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    long = {"window": {"kind": "lifetime"}, "criteria": [{"metric": "minutes", "min": "100"}]}
    await t.post("/v1/tiers", json={"code": "long", "name": "Long stayer", "rank": 1, "qualification": long})
    member = await t.enrol("m-l")
    await t.post("/v1/events", json=visit("l-1", "m-l", minutes=60))
    upgraded = (await t.post("/v1/events", json=visit("l-2", "m-l", minutes=50))).json()
    assert upgraded["tier"]["to"] == "long"
    cancel = await t.post("/v1/events", json=visit("l-cancel", "m-l", site="cancel:l-2", minutes=0))
    assert cancel.status_code == 201, cancel.text
    state = (await t.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "base" and state["history"][0]["reason"] == "reversal"
    assert (t.id, "m-l", "long", "base") in calls("tier_changed")


async def test_scheduled_jobs_run_only_for_enabling_tenants(
    example_tenant: TenantHandle, tenant: TenantHandle, runtime
) -> None:
    await tick(runtime, example_tenant.id, tenant.id)
    ran_for = {args[0] for args in calls("scheduled_job")}
    assert example_tenant.id in ran_for and tenant.id not in ran_for
    assert (example_tenant.id, "welcome") in calls("scheduled_job")


async def test_care_triggers_are_offered_only_to_enabling_tenants(
    example_tenant: TenantHandle, tenant: TenantHandle
) -> None:
    offered = {t["name"]: t for t in (await example_tenant.get("/v1/care/triggers")).json()}
    assert offered["example.nudge"]["plugin"] == "example" and offered["example.nudge"]["variables"] == {"n": "int"}
    assert "birthday" in offered
    assert "example.nudge" not in {t["name"] for t in (await tenant.get("/v1/care/triggers")).json()}


async def test_webhook_event_types_are_offered_only_to_enabling_tenants(
    example_tenant: TenantHandle, tenant: TenantHandle
) -> None:
    offered = {t["type"]: t for t in (await example_tenant.get("/v1/webhook-event-types")).json()}
    assert offered["example.visit_recorded"]["plugin"] == "example" and offered["points.earned"]["plugin"] is None
    body = {"url": "https://hooks.example.com/x", "event_types": ["points.earned", "example.visit_recorded"]}
    created = await example_tenant.post("/v1/webhook-endpoints", json=body)
    assert created.status_code == 201, created.text
    assert "example.visit_recorded" not in {t["type"] for t in (await tenant.get("/v1/webhook-event-types")).json()}
    refused = await tenant.post("/v1/webhook-endpoints", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "event_types[1]", refused.text


async def test_the_plugins_demo_tenant_is_seeded_with_its_settings(client, runtime) -> None:
    """``fealty demo`` seeds the example's own demo tenant (tests/plugin/test_demo_hook.py proves the hook whole)."""
    from core.demo import Api, seed_plugin_demo

    [(plugin, demo)] = runtime.plugins.demo_tenants()
    slug = f"x{uuid.uuid4().hex[:8]}-{demo.slug_suffix}"
    seeded = await seed_plugin_demo(Api(client, TEST_PLATFORM_KEY), runtime, plugin, demo, slug, datetime.now(UTC))
    assert (seeded.plugin, seeded.key_variable, seeded.counts["members"]) == ("example", "KX", 1)
    assert seeded.notes["visitor"].startswith("Vera Visitor: ") and seeded.lines == ["# the example's key: $KX"]
    program = (await client.get("/v1/program", headers={"Authorization": f"Bearer {seeded.api_key}"})).json()
    assert program["plugin_settings"]["example"]["greeting"] == "bonjour"


def test_a_misspelled_hook_is_refused() -> None:
    class Sloppy:
        @hookimpl
        def fealty_compute_award(self) -> None:  # missing 's': matches no hook
            pass

    with pytest.raises(pluggy.PluginValidationError):
        PluginManager().register(PluginInfo("sloppy", "Sloppy", "0", Sloppy()))


def test_two_plugins_cannot_share_a_name_or_an_event_type() -> None:
    from tests.plugins import example

    manager = PluginManager()
    manager.register(example.PLUGIN)
    with pytest.raises(ValueError, match="already registered"):
        manager.register(example.PLUGIN)

    class Clash:
        @hookimpl
        def fealty_register_event_types(self) -> list:
            from core import EventType

            return [EventType("purchase", "clash")]

    manager.register(PluginInfo("clash", "Clash", "0", Clash()))
    with pytest.raises(ValueError, match="registered twice"):
        manager.event_types()


def test_plugin_names_are_plain(tmp_path) -> None:
    with pytest.raises(ValueError):
        PluginManager().register(PluginInfo("Bad Name", "x", "0", object()))
    assert uuid


async def test_a_plugin_can_reverse_an_earlier_event_from_its_hook(example_tenant: TenantHandle) -> None:
    member = await example_tenant.enrol("m-r")
    await example_tenant.post("/v1/events", json=visit("first", "m-r"))
    assert (await example_tenant.balance(member["id"]))["available"] == 40
    cancel = await example_tenant.post("/v1/events", json=visit("cancel-first", "m-r", site="cancel:first"))
    assert cancel.status_code == 201
    assert ("cancel-first", 40) in calls("reversed_by_plugin")
    assert ("first", 40) in calls("event_reversed")  # plugins hear of a reversal however it was asked for
    # The cancellation message itself earns its visit bonus; the first visit's 40 are gone.
    assert (await example_tenant.balance(member["id"]))["available"] == 40
    first = (await example_tenant.get("/v1/events", params={"event_id": "first"})).json()["items"][0]
    assert first["reversed_points"] == 40


async def test_assign_tier_sets_a_floor(example_tenant: TenantHandle, runtime) -> None:
    import uuid
    from datetime import timedelta

    from core import assign_tier, utcnow
    from core.db.engine import tenant_session

    await example_tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await example_tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    member = await example_tenant.enrol("m-gold")
    async with tenant_session(runtime.sessionmaker, example_tenant.id) as session:
        await assign_tier(
            session,
            example_tenant.id,
            uuid.UUID(member["id"]),
            "gold",
            until=utcnow() + timedelta(days=180),
            reason="welcome",
            now=utcnow(),
        )
    state = (await example_tenant.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "gold" and state["floor"]["code"] == "gold"


async def test_a_plugin_refusing_one_item_of_a_batch_fails_only_that_item(example_tenant: TenantHandle) -> None:
    t = example_tenant
    await t.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    fan = {"window": {"kind": "lifetime"}, "criteria": [{"metric": "visits", "min": "2"}]}
    await t.post("/v1/tiers", json={"code": "fan", "name": "Fan", "rank": 1, "qualification": fan})
    member = await t.enrol("m-b")
    batch = [visit("ok-1", "m-b"), visit("bad", "m-b", site="refused"), visit("ok-2", "m-b")]
    response = await t.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["result"], r["status"]) for r in results] == [("created", 201), ("error", 422), ("created", 201)]
    assert results[1]["problem"]["field"] == "events[1].attributes.site"
    # The refused visit counts for nothing: ok-2 is the member's second visit, not a third (no velocity hold), and
    # it is the one that reaches Fan.
    assert results[2]["outcome"]["status"] == "awarded"
    assert results[2]["outcome"]["tier"]["to"] == "fan"
    assert (await t.balance(member["id"]))["available"] == 80
    assert {e["event_id"] for e in (await t.get("/v1/events")).json()["items"]} == {"ok-1", "ok-2"}
    assert (await t.get(f"/v1/members/{member['id']}/tier")).json()["tier"]["code"] == "fan"
    assert ("bad", "awarded") not in [(c[1], c[2]) for c in calls("event_processed", t)]
    single = await t.post("/v1/events", json=visit("bad-2", "m-b", site="refused"))
    assert single.status_code == 422 and single.json()["field"] == "attributes.site"
    assert (await t.get("/v1/events", params={"event_id": "bad-2"})).json()["items"] == []
    assert (await t.balance(member["id"]))["available"] == 80


async def test_assign_tier_counts_validity_in_the_programs_time_zone_and_announces_the_move(
    make_tenant: MakeTenant, runtime
) -> None:
    import uuid
    from datetime import timedelta

    from sqlalchemy import select

    from core import assign_tier
    from core.db.engine import tenant_session
    from core.outbox.models import OutboxEvent

    t = await make_tenant(plugins=["example"], timezone="Asia/Shanghai")
    await t.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    yearly = {"kind": "fixed_date", "years_after": 1, "month": 12, "day": 31}
    await t.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1, "validity": yearly})
    member = await t.enrol("m-tz")
    # 31 Dec 2030 17:00 UTC is already 1 Jan 2031 in Shanghai: the status runs to the end of 2032 there.
    now = datetime(2030, 12, 31, 17, 0, tzinfo=UTC)
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        await assign_tier(session, t.id, uuid.UUID(member["id"]), "gold", until=None, reason="welcome", now=now)
    state = (await t.get(f"/v1/members/{member['id']}/tier")).json()
    assert state["tier"]["code"] == "gold"
    assert datetime.fromisoformat(state["valid_until"]) == datetime(2032, 12, 31, 16, 0, tzinfo=UTC)
    assert (t.id, "m-tz", "base", "gold") in calls("tier_changed")
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        payloads = (
            await session.execute(
                select(OutboxEvent.payload).where(OutboxEvent.type == "tier.changed").order_by(OutboxEvent.id)
            )
        ).scalars()
        assert [(p["from"], p["to"]) for p in payloads] == [(None, "base"), ("base", "gold")]  # enrolment, then this
    # The same tier again only renews the floor: no change to announce.
    before = len(calls("tier_changed", t))
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        later = now + timedelta(days=1)
        await assign_tier(session, t.id, uuid.UUID(member["id"]), "gold", until=None, reason="again", now=later)
    assert len(calls("tier_changed", t)) == before
    assert (await t.get(f"/v1/members/{member['id']}/tier")).json()["history"][0]["reason"] == "again:renewal"


async def test_a_plugin_fulfils_its_own_kind_of_reward(example_tenant: TenantHandle) -> None:
    t = example_tenant
    member = await t.enrol("m-gift")
    await t.credit(member["id"], 500)
    created = await t.post(
        "/v1/rewards", json={"code": "mug", "name": "Example mug", "points_cost": 150, "kind": "example.gift"}
    )
    assert created.status_code == 201, created.text
    redeemed = await t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": created.json()["id"]})
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["fulfilment"] == {"gift": "mug"}
    stored = await t.get(f"/v1/redemptions/{redeemed.json()['id']}")
    assert stored.json()["fulfilment"] == {"gift": "mug"} and stored.json()["status"] == "issued"
    assert calls("reward_redeemed", t) == [(t.id, "Example mug")]
    assert (await t.balance(member["id"]))["available"] == 350
    # A kind the plugin does not know: it answers None, the redemption is refused and nothing is taken.
    other = await t.post(
        "/v1/rewards", json={"code": "car", "name": "A car", "points_cost": 100, "kind": "example.car"}
    )
    refused = await t.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": other.json()["id"]})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/reward-not-fulfilled")
    assert (await t.balance(member["id"]))["available"] == 350
    assert calls("reward_redeemed", t) == [(t.id, "Example mug")]


async def test_a_plugin_routes_cases_and_claims_replies(example_tenant: TenantHandle, runtime) -> None:
    """fealty_route_case routes every case opened for the tenant (here: through a plugin's ``services.open_case``);
    fealty_claim_reply takes a reply before core opens a case, and may open one itself."""
    from core.db.engine import tenant_session
    from core.plugin.types import ReplyView
    from core.program.settings import load_program_settings

    t = example_tenant
    key = await t.enrol("m-key", attributes={"account_manager": "am:alice"})
    async with tenant_session(runtime.sessionmaker, t.id) as session:
        program = await load_program_settings(session, t.id)
        tenant = program.tenant_view(t.id, runtime.plugins)
        services = runtime.plugins.services(session, tenant, datetime.now(UTC))
        case = await services.open_case(uuid.UUID(key["id"]), subject="Cold coffee", source="example")
        assert (case.assignee, case.priority, case.status) == ("am:alice", "high", "received")
        reply = ReplyView(
            uuid.uuid4(), "sms", "+447911123456", "Still out!", datetime.now(UTC), None, message_trigger="example.nudge"
        )
        claimed = await program.hooks(runtime.plugins).claim_reply(tenant, reply, session, datetime.now(UTC))
        assert claimed is not None and claimed[0] == "example"
        assert claimed[1].reason == "outage report" and claimed[1].case_id is not None
        other = ReplyView(uuid.uuid4(), "sms", None, "thanks", datetime.now(UTC), None)
        assert await program.hooks(runtime.plugins).claim_reply(tenant, other, session, datetime.now(UTC)) is None
    assert (t.id, "Cold coffee") in calls("route_case", t)
    assert calls("claim_reply", t) == [(t.id, "Still out!")]


def test_these_tests_called_every_hook(request: pytest.FixtureRequest) -> None:
    """Last in this module: the tests above made core call every hook of the example plugin, so a new hook (which
    test_hook_docs makes the example implement) fails here until a test exercises it."""
    from tests.contract.test_hook_docs import declared

    if getattr(request.config.option, "dist", "no") not in ("no", "loadfile", "loadscope"):
        pytest.skip("this module's tests are spread over several processes: run with --dist loadfile")
    module = request.module
    selected = {item.function.__name__ for item in request.session.items if item.module is module}  # type: ignore[attr-defined]
    every = {name for name in vars(module) if name.startswith("test_")}
    if selected != every:
        pytest.skip("only part of this module ran: the hooks it calls are checked when it runs whole")
    assert set(declared()) - hooks.CALLED == set()
