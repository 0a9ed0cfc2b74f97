"""What every demo tenant's test uses: seed one plugin's demo tenant through core's demo hook, read it through the
API, check that every member's balance is what their ledger adds up to (``tests/test_demo.py`` and the plugins'
``plugins/<name>/tests/test_demo.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from core.demo import Api, SeededTenant, seed_plugin_demo
from core.plugin.demo import DEMO_SENDER_DOMAIN
from core.runtime import Runtime
from core.testing import TEST_PLATFORM_KEY, TenantHandle
from tests.care.conftest import use_moto
from tests.moto_server import MotoServer


def handle(client: httpx.AsyncClient, tenant: SeededTenant) -> TenantHandle:
    return TenantHandle(uuid.UUID(tenant.id), tenant.slug, tenant.api_key, client)


async def seed_plugin_tenant(
    client: httpx.AsyncClient, runtime: Runtime, moto_server: MotoServer, plugin: str
) -> SeededTenant:
    """Seed ``plugin``'s demo tenant alone, as ``fealty demo`` does (its emails and SMS to the moto server)."""
    use_moto(runtime, moto_server)
    moto_server.verify_domain(DEMO_SENDER_DOMAIN)
    [demo] = [demo for name, demo in runtime.plugins.demo_tenants() if name == plugin]
    slug = f"d{uuid.uuid4().hex[:8]}-{demo.slug_suffix}"
    platform = Api(client, TEST_PLATFORM_KEY)
    return await seed_plugin_demo(platform, runtime, plugin, demo, slug, datetime.now(UTC))


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
