"""Helpers for the billing tests: localstripe as a process, signed webhook deliveries, plans and tenants."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from core.app import create_app
from core.billing.usage import record_activity
from core.clock import utcnow
from core.db.engine import tenant_session
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.settings import Settings
from core.testing import TEST_PLATFORM_KEY, AppClient, TenantHandle, create_tenant

STRIPE_KEY = "sk_test_fealty_billing_tests"
WEBHOOK_SECRET = "whsec_fealty_billing_tests"
PLATFORM = {"Authorization": f"Bearer {TEST_PLATFORM_KEY}"}
SERVER_SCRIPT = Path(__file__).with_name("localstripe_server.py")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStripe:
    """localstripe as a child process on a free 127.0.0.1 port; stop and start it again at will."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_file = state_file
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, auth=(STRIPE_KEY, ""), timeout=10)

    def start(self) -> None:
        args = [sys.executable, str(SERVER_SCRIPT), str(self.port)]
        if self.state_file is not None:
            args.append(str(self.state_file))
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"localstripe exited: {self.process.stderr.read().decode() if self.process.stderr else ''}"
                )
            try:
                if self.http.get("/v1/customers").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("localstripe did not start")

    def stop(self) -> None:
        """Stop it cleanly (it saves its store when it has a state file); its port refuses connections after."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    # Stripe's side of the world, as a test sees it

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def post(self, path: str, **data: Any) -> httpx.Response:
        return self.http.post(path, data=data)

    def register_webhook(self, name: str, url: str, secret: str = WEBHOOK_SECRET) -> None:
        response = self.http.post(f"/_config/webhooks/{name}", data={"url": url, "secret": secret})
        response.raise_for_status()

    def invoice_items(self, customer: str) -> list[dict[str, Any]]:
        """The customer's invoice items not yet on an invoice."""
        return list(self.get("/v1/invoiceitems", customer=customer, limit=100)["data"])

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get("/v1/invoices", customer=customer, limit=100)["data"])

    def events_of(self, customer: str) -> list[dict[str, Any]]:
        """Every event localstripe made about ``customer``'s objects, oldest first."""
        found = self.get("/v1/events", limit=1000)["data"]
        mine = [e for e in found if _customer_of(e["data"]["object"]) == customer]
        return sorted(mine, key=lambda e: e["created"])

    def customers_with_slug(self, slug: str) -> list[dict[str, Any]]:
        found = self.get("/v1/customers", limit=1000)["data"]
        return [c for c in found if (c.get("metadata") or {}).get("fealty_slug") == slug]

    def renew(self, customer: str, subscription: str) -> dict[str, Any]:
        """Do what Stripe does at a period's end: invoice the subscription (with pending invoice items) and charge
        the default payment method (localstripe has no clock, so a test plays it)."""
        invoice = self.http.post("/v1/invoices", data={"customer": customer, "subscription": subscription})
        invoice.raise_for_status()
        paid = self.http.post(f"/v1/invoices/{invoice.json()['id']}/pay")
        paid.raise_for_status()
        result: dict[str, Any] = paid.json()
        return result

    def declining_card(self) -> str:
        """A card that passes 3-D Secure and is then declined by the bank (localstripe's 4000008260003178)."""
        card = {
            "card[number]": "4000008260003178",
            "card[exp_month]": "12",
            "card[exp_year]": "2031",
            "card[cvc]": "123",
        }
        response = self.http.post("/v1/payment_methods", data={"type": "card", **card})
        response.raise_for_status()
        return str(response.json()["id"])

    def set_default_card(self, customer: str, payment_method: str) -> str:
        """Attach a card and make it the default on Stripe's side only (as the Stripe dashboard would)."""
        attached = self.http.post(f"/v1/payment_methods/{payment_method}/attach", data={"customer": customer})
        attached.raise_for_status()
        card = str(attached.json()["id"])
        self.http.post(
            f"/v1/customers/{customer}", data={"invoice_settings[default_payment_method]": card}
        ).raise_for_status()
        return card

    def decline_renewal(self, customer: str, subscription: str) -> dict[str, Any]:
        """Stripe's clock with a 3-D Secure card that the bank declines: the renewal invoice is charged, the customer
        authenticates, the charge fails -- localstripe then sends invoice.payment_failed and the subscription is
        past due. Returns the open invoice."""
        invoice = self.http.post("/v1/invoices", data={"customer": customer, "subscription": subscription}).json()
        pending = self.http.post(f"/v1/invoices/{invoice['id']}/pay").json()
        intent = self.get(f"/v1/payment_intents/{pending['payment_intent']}")
        declined = self.http.post(
            f"/v1/payment_intents/{intent['id']}/_authenticate",
            data={"client_secret": intent["client_secret"], "success": "true"},
        )
        assert declined.status_code == 402, declined.text
        return self.get(f"/v1/invoices/{invoice['id']}")


def _customer_of(obj: dict[str, Any]) -> str | None:
    if obj.get("object") == "customer":
        return str(obj.get("id"))
    customer = obj.get("customer")
    return customer if isinstance(customer, str) else None


# --- webhooks -------------------------------------------------------------------------------------------------------


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header, computed the way Stripe (and localstripe) do."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


async def deliver(client: httpx.AsyncClient, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    """POST ``event`` to the webhook endpoint exactly as Stripe would (raw JSON body, signed)."""
    payload = json.dumps(event).encode()
    return await client.post(
        "/v1/billing/stripe/webhook",
        content=payload,
        headers={"content-type": "application/json", "stripe-signature": sign(payload, secret)},
    )


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 15.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (webhooks arrive about a second after the fact)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.1)


# --- plans and tenants ------------------------------------------------------------------------------------------------


async def make_plan(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A new plan with a unique code (plans are global; tests never share one)."""
    body = {
        "code": f"p-{uuid.uuid4().hex[:10]}",
        "name": "Growth",
        "currency": "GBP",
        "monthly_price": "49.00",
        "included_active_members": 2,
        "included_events": 1000,
        "overage_price_per_member": "0.50",
        "overage_price_per_1000_events": "2.00",
    } | fields
    response = await client.post("/v1/platform/plans", json=body, headers=PLATFORM)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def make_tenant(client: httpx.AsyncClient, **fields: Any) -> TenantHandle:
    return await create_tenant(client, **fields)


async def customer_of(client: httpx.AsyncClient, tenant: TenantHandle) -> str:
    response = await client.get(f"/v1/platform/tenants/{tenant.id}", headers=PLATFORM)
    customer: str = response.json()["stripe_customer_id"]
    assert customer and customer.startswith("cus_")
    return customer


async def billing(tenant: TenantHandle) -> dict[str, Any]:
    response = await tenant.get("/v1/billing")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def subscribe(
    tenant: TenantHandle, plan: dict[str, Any], *, card: str = "pm_card_visa", **extra: Any
) -> dict[str, Any]:
    if card:
        attached = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": card})
        assert attached.status_code == 200, attached.text
    started = await tenant.post("/v1/billing/subscription", json={"plan": plan["code"], **extra})
    assert started.status_code == 201, started.text
    result: dict[str, Any] = started.json()
    return result


async def activity(runtime: Runtime, tenant: TenantHandle, members: list[str], events_each: int = 1) -> None:
    """Activity as the events API records it (many events at once, quicker than sending them): ``events_each``
    events processed for each member."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        for member in members:
            await record_activity(
                session, tenant_id=tenant.id, member_ids=[uuid.UUID(member)], now=utcnow(), events=events_each
            )


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AppClient]:
    """An app of its own for one test (e.g. pointed at a localstripe the test stops and starts)."""
    app = create_app(settings, plugins=PluginManager())
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with app.lifespan(), AppClient(transport=transport, base_url="http://testserver") as client:
        client.app = app
        yield client


@dataclass
class BillingLive:
    """The app served over real HTTP (localstripe delivers its webhooks there) and a worker on its database."""

    backend: str
    url: str
    client: httpx.AsyncClient
    runtime: Runtime
