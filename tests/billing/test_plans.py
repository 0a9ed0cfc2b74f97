"""Plans: platform data managed over the API, synchronised to Stripe idempotently (API and ``fealty billing``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from click.testing import CliRunner

from core.billing.models import Plan
from core.cli import main
from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.db.migrate import upgrade_async
from core.settings import get_settings
from core.testing import AppClient, settings_for_tests
from tests.billing.support import PLATFORM, STRIPE_KEY, LocalStripe, make_plan


async def test_plans_are_created_read_listed_and_changed(billing_client: AppClient) -> None:
    plan = await make_plan(billing_client, rate_limit_per_second="25", max_members=1000)
    assert plan["monthly_price"] == "49.00" and plan["currency"] == "GBP" and plan["stripe_plan_id"] is None
    assert plan["rate_limit_per_second"] == "25.00" and plan["max_members"] == 1000
    again = await billing_client.post("/v1/platform/plans", json={**_body(plan)}, headers=PLATFORM)
    assert again.status_code == 409 and again.json()["type"].endswith("/already-exists")
    listed = (await billing_client.get("/v1/platform/plans", headers=PLATFORM)).json()["items"]
    assert plan["code"] in {p["code"] for p in listed}
    changed = await billing_client.patch(
        f"/v1/platform/plans/{plan['code']}", json={"name": "Growth+", "active": False}, headers=PLATFORM
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Growth+" and changed.json()["active"] is False
    got = await billing_client.get(f"/v1/platform/plans/{plan['code']}", headers=PLATFORM)
    assert got.json()["name"] == "Growth+"
    assert (await billing_client.get("/v1/platform/plans/nope", headers=PLATFORM)).status_code == 404


def _body(plan: dict) -> dict:
    keep = ("code", "name", "currency", "monthly_price")
    return {k: plan[k] for k in keep}


async def test_bad_plans_are_refused(billing_client: AppClient) -> None:
    cases = [
        ({"monthly_price": "-1"}, "monthly_price"),
        ({"monthly_price": "1.001"}, "monthly_price"),
        ({"pricing": "per_block"}, "block_size"),
        ({"currency": "XXY"}, "currency"),
        ({"code": "Not A Code"}, "code"),
    ]
    for fields, field in cases:
        response = await billing_client.post(
            "/v1/platform/plans",
            json={"code": f"bad-{uuid.uuid4().hex[:8]}", "name": "x", "currency": "GBP", "monthly_price": "1"} | fields,
            headers=PLATFORM,
        )
        assert response.status_code == 422, (fields, response.text)
        assert response.json()["field"] == field
    tenant_key_refused = await billing_client.get("/v1/platform/plans")
    assert tenant_key_refused.status_code == 401


async def test_sync_creates_stripe_products_and_plans_once(billing_client: AppClient, localstripe: LocalStripe) -> None:
    plan = await make_plan(billing_client, monthly_price="19.99", currency="EUR")
    first = await billing_client.post("/v1/platform/plans/sync", headers=PLATFORM)
    assert first.status_code == 200, first.text
    mine = next(r for r in first.json() if r["code"] == plan["code"])
    assert mine == {
        "code": plan["code"],
        "stripe_product_id": f"fealty-{plan['code']}",
        "stripe_plan_id": f"fealty-{plan['code']}-eur-1999",
        "product": "created",
        "plan": "created",
        "archived": None,
    }
    stripe_plan = localstripe.get(f"/v1/plans/{mine['stripe_plan_id']}")
    assert stripe_plan["amount"] == 1999 and stripe_plan["currency"] == "eur" and stripe_plan["interval"] == "month"
    assert stripe_plan["metadata"]["fealty_plan_code"] == plan["code"]
    second = await billing_client.post("/v1/platform/plans/sync", headers=PLATFORM)
    again = next(r for r in second.json() if r["code"] == plan["code"])
    assert (again["product"], again["plan"]) == ("unchanged", "unchanged")
    products = [p for p in localstripe.get("/v1/products", limit=1000)["data"] if p["id"] == f"fealty-{plan['code']}"]
    assert len(products) == 1
    # A new price is a new Stripe plan; the old one is archived, never changed under its subscribers.
    await billing_client.patch(
        f"/v1/platform/plans/{plan['code']}", json={"monthly_price": "24.99", "name": "Pro"}, headers=PLATFORM
    )
    third = await billing_client.post("/v1/platform/plans/sync", headers=PLATFORM)
    moved = next(r for r in third.json() if r["code"] == plan["code"])
    assert moved["stripe_plan_id"] == f"fealty-{plan['code']}-eur-2499"
    assert (moved["product"], moved["plan"], moved["archived"]) == ("renamed", "created", mine["stripe_plan_id"])
    # (localstripe keeps the form value of an update as sent: "false")
    assert localstripe.get(f"/v1/plans/{mine['stripe_plan_id']}")["active"] in (False, "false")
    assert localstripe.get(f"/v1/products/fealty-{plan['code']}")["name"] == "Pro"


def test_cli_sync_plans_is_idempotent(tmp_path: Path, localstripe: LocalStripe) -> None:
    """``fealty billing sync-plans`` as the operator runs it: a process reading FEALTY_* from its environment."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    code = f"cli-{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        await upgrade_async(url)
        engine = create_engine(settings_for_tests(url))
        try:
            async with tenant_session(create_sessionmaker(engine), None) as session:
                session.add(Plan(code=code, name="Starter", currency="USD", monthly_price=10))
        finally:
            await engine.dispose()

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")} | {
        "FEALTY_DATABASE_URL": url,
        "FEALTY_STRIPE_API_KEY": STRIPE_KEY,
        "FEALTY_STRIPE_API_BASE": localstripe.url,
        "FEALTY_LOG_LEVEL": "WARNING",
    }
    sync = [sys.executable, "-m", "core.cli", "billing", "sync-plans"]
    first = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"{code}: product fealty-{code} created, plan fealty-{code}-usd-1000 created" in first.stdout
    second = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert f"product fealty-{code} unchanged, plan fealty-{code}-usd-1000 unchanged" in second.stdout
    plans = [p for p in localstripe.get("/v1/plans", limit=1000)["data"] if p["id"].startswith(f"fealty-{code}")]
    assert len(plans) == 1

    # The same commands in-process: the plan list, and sync refused without a Stripe key.
    runner = CliRunner()
    try:
        get_settings.cache_clear()
        listed = runner.invoke(main, ["billing", "plans"], env=env)
        assert listed.exit_code == 0, listed.output
        assert f"{code}: Starter, 10 USD/month, Stripe plan fealty-{code}-usd-1000" in listed.output
        get_settings.cache_clear()
        disabled = runner.invoke(main, ["billing", "sync-plans"], env=env | {"FEALTY_STRIPE_API_KEY": ""})
        assert disabled.exit_code != 0 and "Billing is disabled" in disabled.output
    finally:
        get_settings.cache_clear()
