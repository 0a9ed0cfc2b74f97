"""Billing tests run against a real Stripe-compatible server, localstripe, started on a free loopback port for the test
session (one per xdist worker) and stopped after it. Neither Stripe's SDK nor the database is mocked.

Fixtures:

* ``localstripe`` -- the running server (:class:`~tests.billing.support.LocalStripe`);
* ``billing_client`` -- the app with billing on (its Stripe API base is localstripe), in-process, on the current
  backend's session database; webhooks reach it only when a test delivers them (signed, like Stripe);
* ``billing_runtime`` -- that app's runtime, for calling the worker's functions in the tests' event loop;
* ``billing_live`` -- the app with billing on served over real HTTP on its own database, registered with localstripe
  as its webhook endpoint (localstripe's own deliveries reach it), with a worker runtime on the same database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from core.app import create_app
from core.db.migrate import upgrade_async
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.settings import Settings
from core.testing import DEFAULT_ADMIN_URL, AppClient, LiveServer, settings_for_tests
from tests.billing.support import STRIPE_KEY, WEBHOOK_SECRET, BillingLive, LocalStripe


def billing_settings(database_url: str, stripe: LocalStripe, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "stripe_api_key": STRIPE_KEY,
        "stripe_api_base": stripe.url,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_max_network_retries": 1,
        "stripe_timeout_seconds": 10.0,
        "billing_grace_days": 7,
        # Small pools: these apps live beside the suite's own (PostgreSQL allows 100 connections in all).
        "database_pool_size": 3,
        "database_max_overflow": 7,
    }
    return settings_for_tests(database_url, **(values | overrides))


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    yield server
    server.close()


class _BillingApps:
    """One in-process billing app (and client) per backend for the session, created on first use."""

    def __init__(self) -> None:
        self.clients: dict[str, AppClient] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def client(self, backend: str, settings: Settings) -> AppClient:
        if backend not in self.clients:
            app = create_app(settings, plugins=PluginManager())
            started = asyncio.Event()

            async def keep_running() -> None:
                async with app.lifespan():
                    started.set()
                    await self.stop.wait()

            self.tasks.append(asyncio.create_task(keep_running()))
            await started.wait()
            client = AppClient(
                transport=httpx.ASGITransport(app=cast(Any, app)), base_url="http://testserver", timeout=60
            )
            client.app = app
            self.clients[backend] = client
        return self.clients[backend]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.stop.set()
        await asyncio.gather(*self.tasks)


@pytest_asyncio.fixture(scope="session")
async def _billing_apps() -> AsyncIterator[_BillingApps]:
    apps = _BillingApps()
    yield apps
    await apps.close()


@pytest_asyncio.fixture
async def billing_client(
    backend: str, database_url: str, localstripe: LocalStripe, _billing_apps: _BillingApps
) -> AppClient:
    return await _billing_apps.client(backend, billing_settings(database_url, localstripe))


@pytest.fixture
def billing_runtime(billing_client: AppClient) -> Runtime:
    runtime: Runtime = billing_client.app.state["runtime"]
    return runtime


# --- real HTTP, for localstripe's webhook deliveries ------------------------------------------------------------------


async def _fresh_postgres() -> tuple[str, Callable[[], Any]]:
    import asyncpg

    admin = os.environ.get("FEALTY_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"fealty_billing_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", drop


class _LiveServers:
    def __init__(
        self, tmp: Path, stripe: LocalStripe, start: Callable[[Settings, Callable[[], PluginManager]], LiveServer]
    ):
        self.tmp, self.stripe, self.start = tmp, stripe, start
        self.lives: dict[str, BillingLive] = {}
        self.cleanups: list[Callable[[], Any]] = []

    async def get(self, backend: str) -> BillingLive:
        if backend not in self.lives:
            if backend == "postgres":
                url, drop = await _fresh_postgres()
                self.cleanups.append(drop)
            else:
                url = f"sqlite+aiosqlite:///{self.tmp / 'billing-live.db'}"
            await upgrade_async(url)
            settings = billing_settings(url, self.stripe)
            server = self.start(settings, PluginManager)
            self.stripe.register_webhook(f"fealty-{backend}", f"{server.url}/v1/billing/stripe/webhook")
            runtime = Runtime.create(settings, PluginManager())
            client = httpx.AsyncClient(base_url=server.url, timeout=60)
            self.lives[backend] = BillingLive(backend, server.url, client, runtime)
        return self.lives[backend]

    async def close(self) -> None:
        for live in self.lives.values():
            # Stop localstripe's deliveries before the servers and their databases go away.
            self.stripe.register_webhook(f"fealty-{live.backend}", "http://127.0.0.1:9/gone")
            await live.client.aclose()
            await live.runtime.close()


@pytest_asyncio.fixture(scope="session")
async def _billing_lives(
    tmp_path_factory: pytest.TempPathFactory,
    localstripe: LocalStripe,
    live_server_factory: Callable[[Settings, Callable[[], PluginManager]], LiveServer],
) -> AsyncIterator[_LiveServers]:
    lives = _LiveServers(tmp_path_factory.mktemp("billing-live"), localstripe, live_server_factory)
    yield lives
    await lives.close()
    # The databases are dropped at the very end, after the servers (stopped by live_server_factory) let go of them.
    for cleanup in lives.cleanups:
        await cleanup()


@pytest_asyncio.fixture
async def billing_live(backend: str, _billing_lives: _LiveServers) -> BillingLive:
    return await _billing_lives.get(backend)


def pytest_configure(config: pytest.Config) -> None:
    # stripe-python's HTTPX client posts form bodies with data=<str>, which httpx deprecates (harmless).
    config.addinivalue_line("filterwarnings", "ignore:Use 'content=<...>' to upload raw bytes/text content")
