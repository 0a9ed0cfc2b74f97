"""``utility.bill_credits`` is a webhook event type the plugin declares (``fealty_webhook_event_types``): a tenant
that enabled the plugin subscribes an endpoint to it by name, and the bill credits of a restored outage arrive
there as one signed request; a tenant without the plugin cannot subscribe to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio
import time_machine

from core.runtime import Runtime
from core.testing import MakeTenant
from plugins.utility.tests.conftest import account, enable_utility, outage
from tests.webhooks.helpers import Receiver, add_endpoint, drain, make_worker

NOON = datetime(2031, 6, 10, 10, tzinfo=UTC)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def worker(database_url: str) -> AsyncIterator[Runtime]:
    runtime = make_worker(database_url)
    yield runtime
    await runtime.close()


async def test_an_endpoint_subscribed_to_bill_credits_receives_them_signed(
    make_tenant: MakeTenant, receiver: Receiver, worker: Runtime
) -> None:
    with time_machine.travel(NOON, tick=True):
        t = await enable_utility(await make_tenant())  # compensation as bill credits (the default)
        listed = {e["type"]: e for e in (await t.get("/v1/webhook-event-types")).json()}
        assert listed["utility.bill_credits"]["plugin"] == "utility" and listed["utility.bill_credits"]["description"]
        billing, points = receiver.hook("billing"), receiver.hook("points")
        endpoint = await add_endpoint(t, receiver, billing, ["utility.bill_credits"])
        assert endpoint["event_types"] == ["utility.bill_credits"]
        await add_endpoint(t, receiver, points, ["points.earned"])
        home, shop = await account(t), await account(t, customer_class="sme")
        created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=25)).isoformat(), etr=None)
        assert (await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})).status_code == 200
        await drain(worker, t)
    [delivered] = billing.requests
    assert delivered.signature_error is None and delivered.status == 200
    assert delivered.json["type"] == "utility.bill_credits" and delivered.json["tenant_id"] == str(t.id)
    credits = {c["account_number"]: c for c in delivered.json["data"]["credits"]}
    assert {n: (Decimal(c["amount"]), c["currency"]) for n, c in credits.items()} == {
        home["account_number"]: (Decimal("140.00"), "GBP"),  # 25 h: 95 + 45
        shop["account_number"]: (Decimal("235.00"), "GBP"),  # 190 + 45
    }
    assert all(c["outage_id"] == created["id"] for c in credits.values())
    assert points.requests == []  # bill credits are not points


async def test_a_plugins_event_type_needs_the_plugin(make_tenant: MakeTenant) -> None:
    plain = await make_tenant()
    body = {"url": "https://hooks.example.com/billing", "event_types": ["points.earned", "utility.bill_credits"]}
    refused = await plain.post("/v1/webhook-endpoints", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "event_types[1]", refused.text
    assert (await plain.get("/v1/webhook-endpoints")).json()["items"] == []
    assert "utility.bill_credits" not in {e["type"] for e in (await plain.get("/v1/webhook-event-types")).json()}
    t = await enable_utility(await make_tenant())
    created = await t.post("/v1/webhook-endpoints", json=body | {"event_types": ["points.earned"]})
    assert created.status_code == 201, created.text
    patched = await t.patch(f"/v1/webhook-endpoints/{created.json()['id']}", json={"event_types": body["event_types"]})
    assert patched.status_code == 200 and patched.json()["event_types"] == body["event_types"], patched.text
    refused = await plain.post("/v1/webhook-endpoints", json=body | {"event_types": ["utility.nothing"]})
    assert refused.status_code == 422
