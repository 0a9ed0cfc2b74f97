"""The fuel network's demo tenant (plugins/fuel_station/demo.py), seeded alone through core's demo hook as
``fealty demo`` seeds it, checked through the API on both databases: sites, the review queue, retention, levels,
the monthly cap, win-back care by SMS, cents off at the pump, the report's lines."""

from __future__ import annotations

from core.demo import SeededTenant
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.demo_checks import check_ledgers, every, handle, json_of, seed_plugin_tenant
from tests.moto_server import MotoServer


async def check_fuel(t: TenantHandle, seeded: SeededTenant) -> None:
    assert len(await every(t, "/v1/members")) == 30
    sites = await every(t, "/v1/fuel/sites")
    assert len(sites) == 6 and [s["code"] for s in sites if not s["participating"]] == ["HZ-900"]

    # The review queue: the fill-up of more litres than a tank holds waits; the repeat fill was rejected.
    [waiting] = await every(t, "/v1/fuel/reviews")
    assert waiting["id"] == seeded.extras["held_event"] and waiting["status"] == "held"
    assert [f["code"] for f in waiting["flags"]] == ["fuel.tank_size"]
    [decided] = await every(t, "/v1/fuel/reviews", status="rejected")
    assert decided["decision"] is not None

    retention = await json_of(t, "/v1/fuel/reports/retention", days=30)
    network = retention["network"]
    assert network["cohort"] >= 20 and network["returned"] >= 15 and network["churned"] == 2
    assert len(retention["sites"]) >= 4
    assert len(await every(t, "/v1/care/requests", kind="fuel.win_back")) == 2

    # Levels on 90 days of spend, the monthly cap, a fill-up at the franchise outside the programme.
    holders = {tier["code"]: tier["members"] for tier in await json_of(t, "/v1/tiers")}
    assert holders["gold"] >= 2 and holders["silver"] >= 2 and sum(holders.values()) == 30
    taxi = seeded.members["taxi"]
    taxi_events = await every(t, "/v1/events", member_id=taxi)
    assert any(a["capped_from"] is not None for e in taxi_events for a in e["awards"])
    rejected = await every(t, "/v1/events", status="rejected")
    assert any("does not take part" in (e["reason"] or "") for e in rejected)

    # 2,000 points became 20 fen off a litre at the pump.
    [cents_off] = await every(t, "/v1/redemptions", member_id=taxi)
    assert cents_off["status"] == "used" and seeded.extras["amount_off"] == "8.50"
    assert await check_ledgers(t) > 0


async def test_the_fuel_demo_seeds_a_fuel_network_through_the_api(
    client: AppClient, runtime: Runtime, moto_server: MotoServer
) -> None:
    seeded = await seed_plugin_tenant(client, runtime, moto_server, "fuel")
    assert (seeded.plugin, seeded.key_variable, seeded.counts["members"]) == ("fuel", "KF", 30)
    assert seeded.counts["events_held"] == 1 and seeded.counts["sites"] == 6
    t = handle(client, seeded)
    await check_fuel(t, seeded)
    messages = await every(t, "/v1/messages")
    assert {(m["trigger"], m["channel"]) for m in messages} == {("fuel.win_back", "sms")}
    assert all(m["reason"] for m in messages if m["state"] in ("suppressed", "deferred"))
    held = seeded.extras["held_event"]
    assert f"HELD={held}   # a fill-up held for review: more litres than a car's tank" in seeded.lines
    assert 'curl -s "$B/v1/fuel/reports/retention?days=30" -H "Authorization: Bearer $KF"' in seeded.lines
