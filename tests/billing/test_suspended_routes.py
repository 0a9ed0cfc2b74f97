"""Every route of the app, walked while the tenant is suspended for billing (with the hotel, fuel and microfinance
plugins enabled, so their routes are walked too): each write answers 402 except the allow-listed ones, which answer on
their merits; every read still answers. The routes come from the app itself, so a new route is covered without
touching this test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from core.billing.rules import BillingState
from core.billing.service import apply_billing_status, lock_tenant
from core.clock import utcnow
from core.db.engine import tenant_session
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.testing import AppClient, MakeTenant, registering
from plugins import fuel_station, hotel, microfinance

WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: Writes a suspended tenant may still make: billing itself, read-only POSTs, security and erasure. (Method, route
#: template, query string.)
ALLOWED = {
    ("POST", "/v1/billing/payment-method", ""),
    ("POST", "/v1/billing/subscription", ""),
    ("PATCH", "/v1/billing/subscription", ""),
    ("POST", "/v1/billing/pay", ""),
    ("POST", "/v1/events/simulate", ""),
    ("POST", "/v1/tiers/recalculate", "preview=true"),
    ("POST", "/v1/hotel/quotes/points-stay", ""),
    ("DELETE", "/v1/api-keys/{key_id:uuid}", ""),
    ("POST", "/v1/webhook-endpoints/{endpoint_id:uuid}/rotate-secret", ""),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id:uuid}", ""),
    ("POST", "/v1/members/{member_id:uuid}/anonymize", ""),
    ("POST", "/v1/exports", ""),  # an export is a read (into S3)
}
#: The same route without the flag that makes it read-only is a write like any other.
REFUSED_VARIANTS = {("POST", "/v1/tiers/recalculate", ""), ("POST", "/v1/tiers/recalculate", "preview=false")}


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(hotel.PLUGIN, fuel_station.PLUGIN, microfinance.PLUGIN)


def _url(template: str) -> str:
    """The route with each path parameter filled by a value of its type (an id no tenant has)."""
    values = {"uuid": str(uuid.uuid4()), "str": "nothing-here", "int": "1"}
    return re.sub(r"{(\w+):(\w+)}", lambda m: values[m.group(2)], template)


def _tenant_routes(client: AppClient) -> list[tuple[str, str]]:
    """(method, route template) of every /v1 route a tenant key may call (not the platform's, not Stripe's)."""
    found = []
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            if handler.opt.get("auth", "tenant") != "tenant":
                continue
            found += [(method, route.path) for method in handler.http_methods if method not in ("HEAD", "OPTIONS")]
    return sorted(set(found))


async def test_every_write_is_refused_while_suspended_except_the_allowed_ones_and_every_read_answers(
    client: AppClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(plugins=["hotel", "fuel", "microfinance"])
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        row = await lock_tenant(session, tenant.id)
        state = BillingState("suspended", utcnow() - timedelta(days=9))
        await apply_billing_status(session, row, state, reason="test", now=utcnow())
    routes = _tenant_routes(client)
    assert {(m, p) for m, p, _ in ALLOWED} <= set(routes), "an allow-listed route no longer exists"
    assert any(p.startswith("/v1/hotel/") for _, p in routes) and any(p.startswith("/v1/fuel/") for _, p in routes)

    refused: list[str] = []
    answered: list[str] = []
    for method, template in routes:
        if method not in WRITES:
            continue
        variants = {q for m, p, q in ALLOWED | REFUSED_VARIANTS if (m, p) == (method, template)} or {""}
        for query in sorted(variants):
            url = _url(template) + (f"?{query}" if query else "")
            response = await tenant.client.request(method, url, json={}, headers=tenant.headers)
            what = f"{method} {template}{'?' + query if query else ''}: {response.status_code} {response.text[:200]}"
            suspended = response.status_code == 402 and response.json()["type"].endswith("/tenant-suspended")
            if (method, template, query) in ALLOWED:
                assert not suspended and response.status_code < 500, what
                answered.append(what)
            else:
                assert suspended, what
                assert "POST /v1/billing/pay" in response.json()["detail"], what
                refused.append(what)
    assert len(answered) == len(ALLOWED)
    assert len(refused) >= 40  # core's writes and the plugins' (a sanity check that the walk found them)

    for method, template in routes:
        if method != "GET":
            continue
        response = await tenant.get(_url(template))
        ok = 200 <= response.status_code < 300 or response.status_code == 404
        assert ok, f"GET {template}: {response.status_code} {response.text[:200]}"
        assert response.headers["fealty-billing-warning"].startswith("suspended")


def test_the_walk_fills_every_kind_of_path_parameter(client: AppClient) -> None:
    """A route with a path parameter of a new type fails here first (add its type to ``_url``)."""
    kinds: set[Any] = set()
    for _, template in _tenant_routes(client):
        kinds |= set(re.findall(r"{\w+:(\w+)}", template))
    assert kinds <= {"uuid", "str", "int"}, kinds
    assert all("{" not in _url(template) for _, template in _tenant_routes(client))
