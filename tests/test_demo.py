"""``fealty demo``: the seeding through the API on both databases, checked through the API; then the command itself
on a SQLite file, whose printed platform key the API accepts afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import time_machine
from click.testing import CliRunner

from core.app import create_app
from core.cli import main
from core.demo import DEMO_SENDER_DOMAIN, Api, CoffeeDemo, DemoAlreadySeeded, DemoTenant, seed_demo
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.settings import get_settings
from core.testing import TEST_PLATFORM_KEY, AppClient, TenantHandle, registering, settings_for_tests
from plugins import fuel_station, hotel
from tests.care.conftest import use_moto
from tests.moto_server import MotoServer


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(hotel.PLUGIN, fuel_station.PLUGIN)


@pytest.fixture(autouse=True)
def late_in_the_year() -> Iterator[None]:
    """The hotel's status and milestones count the calendar year: run as in mid-November (or later), as the hotel
    plugin's tests do, so that six months of stays fall in this year whatever the day (the clock never goes back)."""
    now = datetime.now(UTC)
    with time_machine.travel(max(now, datetime(now.year, 11, 15, 12, tzinfo=UTC)), tick=True):
        yield


def handle(client: httpx.AsyncClient, tenant: DemoTenant) -> TenantHandle:
    return TenantHandle(uuid.UUID(tenant.id), tenant.slug, tenant.api_key, client)


async def every(t: TenantHandle, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await t.get(path, params={"limit": 200, **params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def json_of(t: TenantHandle, path: str, **params: Any) -> Any:
    response = await t.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def check_ledgers(t: TenantHandle) -> int:
    """Every member's balance is what their ledger entries add up to (posted ones available, pending ones
    pending); returns the points available in the tenant."""
    total = 0
    for member in await every(t, "/v1/members"):
        balance = await t.balance(member["id"])
        entries = await every(t, f"/v1/members/{member['id']}/ledger")
        posted = sum(e["points"] for e in entries if e["status"] == "posted")
        pending = sum(e["points"] for e in entries if e["status"] == "pending")
        assert (balance["available"], balance["pending"]) == (posted, pending), member["external_id"]
        assert balance["available"] >= 0
        total += balance["available"]
    return total


async def check_hotel(t: TenantHandle, seeded: DemoTenant) -> None:
    assert len(await every(t, "/v1/members")) == 25
    holders = {tier["code"]: tier["members"] for tier in await json_of(t, "/v1/tiers")}
    assert holders["diamond"] >= 1 and holders["gold"] >= 1 and holders["silver"] >= 3
    diamond, gold = seeded.members["diamond"], seeded.members["gold"]
    status = await json_of(t, f"/v1/members/{diamond}/tier")
    assert status["tier"]["code"] == "diamond" and status["valid_until"] is not None
    progress = (await json_of(t, f"/v1/members/{gold}/tier"))["next"]
    assert progress["tier"]["code"] == "diamond" and {p["metric"] for p in progress["progress"]} == {
        "nights",
        "stays",
        "hotel_base_points",
    }
    perks = await json_of(t, f"/v1/hotel/members/{diamond}/perks")
    assert perks["butler"] is True and perks["welcome_gift"] == "a selection of green tea in the room"

    # Milestones: offered on the way, the first two chosen (points credited, a suite upgrade handed to care).
    milestones = await json_of(t, f"/v1/hotel/members/{diamond}/milestones")
    assert milestones["nights_this_year"] >= 60
    assert [(m["nights"], m["choice"]) for m in milestones["items"][:2]] == [(20, "points"), (30, "suite_upgrade")]
    care = {kind: await every(t, "/v1/care/requests", kind=kind) for kind in ("hotel.milestone", "hotel.pre_arrival")}
    assert len(care["hotel.milestone"]) >= 4
    assert {r["member_id"] for r in care["hotel.pre_arrival"]} == {diamond, gold}
    assert len(await every(t, "/v1/care/requests", kind="hotel.milestone_choice")) == 1

    # The failed payment and the corrected folio took back what their stays had earned.
    rejected = await every(t, "/v1/events", status="rejected")
    reasons = [e["reason"] for e in rejected]
    assert sum(r.startswith("hotel.payment_failed") for r in reasons) == 1
    assert sum(r.startswith("hotel.cancelled") for r in reasons) == 1
    assert any(r.startswith("hotel.ineligible_channel") for r in reasons)
    reversed_ = [e for e in await every(t, "/v1/events", status="awarded") if e["reversed_points"]]
    assert len(reversed_) == 2 and all(e["reversed_points"] == e["points"] for e in reversed_)

    # Redemptions: a free-night certificate and an afternoon tea used at the hotel.
    redemptions = await every(t, "/v1/redemptions")
    night = next(r for r in redemptions if r["member_id"] == diamond)
    assert night["fulfilment"]["certificate"] == night["voucher_code"] == seeded.extras["free_night_voucher"]
    assert [r["status"] for r in redemptions if r["member_id"] == gold] == ["used"]
    assert await check_ledgers(t) > 0


async def check_fuel(t: TenantHandle, seeded: DemoTenant) -> None:
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


async def check_coffee(t: TenantHandle, seeded: DemoTenant) -> None:
    assert len(await every(t, "/v1/members")) == 8
    [campaign] = await json_of(t, "/v1/campaigns")
    assert campaign["running"] is True
    events = await every(t, "/v1/events")
    assert all(e["status"] == "awarded" for e in events)
    assert any(a["campaign_id"] == campaign["id"] for e in events for a in e["awards"])
    assert await check_ledgers(t) > 0


async def check_care(client: AppClient, seeded: dict[str, DemoTenant], moto_server: MotoServer) -> None:
    """Care in the demo: the hotel's pre-arrival emails went out in each guest's language, the fuel network's
    win-back SMS and the coffee chain's birthday greetings are on record, sent or held back with the reason."""
    hotel_messages = await every(handle(client, seeded["hotel"]), "/v1/messages")
    assert {m["trigger"] for m in hotel_messages} == {"hotel.pre_arrival"} and len(hotel_messages) == 2
    for message in hotel_messages:
        assert message["state"] in ("sent", "deferred"), message
        if message["state"] == "sent":
            [mail] = moto_server.emails(header=("X-Fealty-Reference", message["reference"]))
            assert ("期待" in mail.subject) == (message["locale"] == "zh-CN")
    fuel_messages = await every(handle(client, seeded["fuel"]), "/v1/messages")
    assert {(m["trigger"], m["channel"]) for m in fuel_messages} == {("fuel.win_back", "sms")}
    assert all(m["reason"] for m in fuel_messages if m["state"] in ("suppressed", "deferred"))
    coffee_messages = await every(handle(client, seeded["coffee"]), "/v1/messages", trigger="birthday")
    assert len(coffee_messages) == 2
    assert seeded["coffee"].counts["messages"] == len(coffee_messages)


async def test_the_demo_seeds_three_programs_through_the_api(
    client: AppClient, runtime: Runtime, moto_server: MotoServer
) -> None:
    use_moto(runtime, moto_server)
    moto_server.verify_domain(DEMO_SENDER_DOMAIN)
    prefix = f"d{uuid.uuid4().hex[:8]}"
    result = await seed_demo(client, runtime, TEST_PLATFORM_KEY, prefix=prefix)
    assert [t.slug for t in result.tenants] == [f"{prefix}-hotel", f"{prefix}-fuel", f"{prefix}-coffee"]
    assert result.skipped == []
    seeded = {t.slug.rsplit("-", 1)[1]: t for t in result.tenants}
    await check_hotel(handle(client, seeded["hotel"]), seeded["hotel"])
    await check_fuel(handle(client, seeded["fuel"]), seeded["fuel"])
    await check_coffee(handle(client, seeded["coffee"]), seeded["coffee"])
    assert seeded["hotel"].counts["members"] == 25 and seeded["fuel"].counts["events_held"] == 1
    for tenant in seeded.values():  # loyalty measured: every member, the dashboard a link away
        assert tenant.counts["members_measured"] == tenant.counts["members"]
        assert tenant.notes["rfm"] and "points outstanding" in tenant.notes["liability"]
        dashboard = await client.get(tenant.extras["dashboard"][tenant.extras["dashboard"].index("/v1/") :])
        assert dashboard.status_code == 200 and dashboard.text.count("<figure data-chart=") == 6
    await check_care(client, seeded, moto_server)

    # A second run finds the tenants and writes nothing.
    tenants = await client.get("/v1/platform/tenants", params={"limit": 200})
    with pytest.raises(DemoAlreadySeeded) as refused:
        await seed_demo(client, runtime, TEST_PLATFORM_KEY, prefix=prefix)
    assert refused.value.slugs == [t.slug for t in result.tenants]
    # ... and so does a tenant made meanwhile (the slug's 409 when it is created).
    with pytest.raises(DemoAlreadySeeded):
        await CoffeeDemo(Api(client, TEST_PLATFORM_KEY), runtime, f"{prefix}-coffee", datetime.now(UTC)).seed()
    assert (await client.get("/v1/platform/tenants", params={"limit": 200})).json() == tenants.json()


async def test_without_the_plugins_only_the_core_tenant_is_seeded(sqlite_url: str, moto_server: MotoServer) -> None:
    settings = settings_for_tests(sqlite_url, **moto_server.settings())
    app = create_app(settings, plugins=PluginManager())  # no plugin registered
    prefix = f"b{uuid.uuid4().hex[:8]}"
    async with app.lifespan():
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://bare") as bare:
            result = await seed_demo(bare, app.state["runtime"], TEST_PLATFORM_KEY, prefix=prefix)
    assert [t.slug for t in result.tenants] == [f"{prefix}-coffee"]
    assert len(result.skipped) == 2


def test_the_command_seeds_a_sqlite_file_and_prints_a_key_serve_accepts(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'fealty.db'}"
    env = {"FEALTY_DATABASE_URL": url, "FEALTY_LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    try:
        get_settings.cache_clear()
        seeded = runner.invoke(main, ["demo"], env=env)
        assert seeded.exit_code == 0, seeded.output
        get_settings.cache_clear()
        again = runner.invoke(main, ["demo"], env=env)
    finally:
        get_settings.cache_clear()
    out = seeded.output
    assert "demo-hotel" in out and "demo-fuel" in out and "demo-coffee" in out
    assert "A platform operator key was generated and stored" in out
    variables = dict(
        line.split("   #")[0].split("=", 1) for line in out.splitlines() if line[:3] in ("PK=", "KH=", "KF=", "KC=")
    )
    assert variables["PK"].startswith("ftp_") and variables["KH"].startswith("fty_")
    assert 'curl -s "$B/v1/fuel/reports/retention?days=30" -H "Authorization: Bearer $KF"' in out
    assert again.exit_code == 1 and "exist already" in again.output and "rm -f" in again.output

    async def served() -> None:
        """The API as `fealty serve` builds it (the key stored, not given): the printed keys work."""
        from core.settings import Settings

        app = create_app(Settings.from_env({}, database_url=url, log_level="WARNING", embedded_worker=False))
        async with app.lifespan():
            transport = httpx.ASGITransport(app=cast(Any, app))
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
                listed = await http.get("/v1/platform/tenants", headers={"Authorization": f"Bearer {variables['PK']}"})
                assert listed.status_code == 200, listed.text
                assert sorted(t["slug"] for t in listed.json()["items"]) == ["demo-coffee", "demo-fuel", "demo-hotel"]
                for key in ("KH", "KF"):
                    reviews = "/v1/fuel/reviews" if key == "KF" else "/v1/hotel/quotes/points-stay"
                    auth = {"Authorization": f"Bearer {variables[key]}"}
                    if key == "KF":
                        response = await http.get(reviews, headers=auth)
                    else:
                        response = await http.post(reviews, headers=auth, json={"category": "4", "nights": 5})
                    assert response.status_code == 200, response.text

    asyncio.run(served())
