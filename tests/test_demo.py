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
from core.demo import Api, CoffeeDemo, DemoAlreadySeeded, SeededTenant, seed_demo
from core.plugin.demo import DEMO_SENDER_DOMAIN
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.settings import get_settings
from core.testing import TEST_PLATFORM_KEY, AppClient, TenantHandle, registering, settings_for_tests
from plugins import fuel_station, hotel
from tests.care.conftest import use_moto
from tests.demo_checks import check_ledgers, every, handle, json_of
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


async def check_coffee(t: TenantHandle, seeded: SeededTenant) -> None:
    assert len(await every(t, "/v1/members")) == 8
    [campaign] = await json_of(t, "/v1/campaigns")
    assert campaign["running"] is True
    events = await every(t, "/v1/events")
    assert all(e["status"] == "awarded" for e in events)
    assert any(a["campaign_id"] == campaign["id"] for e in events for a in e["awards"])
    assert await check_ledgers(t) > 0
    # Complaints and a survey: four cases, the unanswered billing complaint breached, the cold latte closed with its
    # goodwill; survey answers with results to read.
    cases = await every(t, "/v1/cases")
    assert len(cases) == seeded.counts["cases"] == 4
    assert [c["subject"] for c in cases if c["breached"]] == ["Charged twice for one flat white"]
    closed = next(c for c in cases if c["status"] == "closed")
    assert closed["goodwill"]["points"] == 50 and closed["resolution"]["prevention"]
    [survey] = await json_of(t, "/v1/surveys")
    results = await json_of(t, f"/v1/surveys/{survey['id']}/results")
    assert results["responses"] == seeded.counts["survey_responses"] == 7
    assert results["invitations"] == 9  # the closed case's invitation and the campaign's eight
    assert all(f["standardised"] is not None for f in results["groups"][0]["factors"])


async def check_care(client: AppClient, seeded: dict[str, SeededTenant]) -> None:
    """Care in the demo: each tenant's messages are on record, sent or held back with the reason (the plugins' tests
    check their own triggers and languages); the coffee chain's birthday greetings and lapsing notes went out."""
    for tenant in seeded.values():
        messages = await every(handle(client, tenant), "/v1/messages")
        assert len(messages) == tenant.counts["messages"]
        assert all(m["reason"] for m in messages if m["state"] in ("suppressed", "deferred"))
    assert {m["trigger"] for m in await every(handle(client, seeded["hotel"]), "/v1/messages")} == {"hotel.pre_arrival"}
    coffee = handle(client, seeded["coffee"])
    birthdays = await every(coffee, "/v1/messages", trigger="birthday")
    assert len(birthdays) == 2
    # The two customers away for 20 days: the lapsing rule wrote to both; one never agreed to marketing email.
    lapsing = await every(coffee, "/v1/messages", trigger="lapsing")
    assert sorted((m["state"] == "suppressed", m["reason"]) for m in lapsing)[-1] == (True, "no_consent")
    assert len(lapsing) == 2 and seeded["coffee"].counts["messages"] == len(birthdays) + len(lapsing)


async def test_the_demo_seeds_three_programs_through_the_api(
    client: AppClient, runtime: Runtime, moto_server: MotoServer
) -> None:
    use_moto(runtime, moto_server)
    moto_server.verify_domain(DEMO_SENDER_DOMAIN)
    prefix = f"d{uuid.uuid4().hex[:8]}"
    result = await seed_demo(client, runtime, TEST_PLATFORM_KEY, prefix=prefix)
    assert [t.slug for t in result.tenants] == [f"{prefix}-hotel", f"{prefix}-fuel", f"{prefix}-coffee"]
    seeded = {t.slug.rsplit("-", 1)[1]: t for t in result.tenants}
    # The plugins' tenants came from their demo hooks (plugins/<name>/tests/test_demo.py check them whole).
    assert [(t.plugin, t.key_variable) for t in result.tenants] == [("hotel", "KH"), ("fuel", "KF"), (None, "KC")]
    assert seeded["hotel"].counts["members"] == 25 and seeded["fuel"].counts["events_held"] == 1
    for tenant in seeded.values():
        assert await check_ledgers(handle(client, tenant)) > 0
    await check_coffee(handle(client, seeded["coffee"]), seeded["coffee"])
    for tenant in seeded.values():  # loyalty measured: every member, the dashboard a link away
        assert tenant.counts["members_measured"] == tenant.counts["members"]
        assert tenant.notes["rfm"] and "points outstanding" in tenant.notes["liability"]
        dashboard = await client.get(tenant.extras["dashboard"][tenant.extras["dashboard"].index("/v1/") :])
        assert dashboard.status_code == 200 and dashboard.text.count("<figure data-chart=") == 6
    await check_care(client, seeded)

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
    assert "demo-hotel" in out and "demo-fuel" in out and "demo-coffee" in out and "demo-power" in out
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
                slugs = {t["slug"] for t in listed.json()["items"]}
                # every installed plugin's demo tenant, and core's coffee chain
                assert {"demo-coffee", "demo-fuel", "demo-hotel", "demo-power"} <= slugs
                for key in ("KH", "KF"):
                    reviews = "/v1/fuel/reviews" if key == "KF" else "/v1/hotel/quotes/points-stay"
                    auth = {"Authorization": f"Bearer {variables[key]}"}
                    if key == "KF":
                        response = await http.get(reviews, headers=auth)
                    else:
                        response = await http.post(reviews, headers=auth, json={"category": "4", "nights": 5})
                    assert response.status_code == 200, response.text

    asyncio.run(served())
