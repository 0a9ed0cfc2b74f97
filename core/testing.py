"""pytest fixtures for Fealty and for plugin authors: the ``fealty_testing`` pytest plugin, loaded only on request.

Opt in with ``pytest -p fealty_testing`` or ``pytest_plugins = ["fealty_testing"]`` in a conftest.py (install
``fealty[testing]`` for pytest and pytest-asyncio). Installing Fealty adds nothing to other projects' pytest sessions.
The async fixtures live in the session's event loop: set ``asyncio_default_test_loop_scope = "session"`` (and
``asyncio_mode = "auto"``) in your pytest configuration, as Fealty's own does.

Every test runs against real databases: a fresh PostgreSQL database made for the test session (on
``FEALTY_TEST_POSTGRES_URL``, default the local server at 127.0.0.1:5432) and a SQLite file, both migrated with the
real migrations. Tests are isolated by tenant, not by wiping tables: each test asks for its own tenant.

Fixtures, all prefixed ``fealty_`` so that they never shadow a project's own:

* ``fealty_backend`` -- ``"sqlite"`` and ``"postgres"`` (tests using it run on both);
  ``FEALTY_TEST_BACKENDS=sqlite`` limits it;
* ``fealty_app`` / ``fealty_client`` -- the Litestar app and an HTTP client for the current backend;
* ``fealty_runtime`` -- the app's runtime (``await core.worker.tick(fealty_runtime, tenant.id)`` runs the worker);
* ``fealty_pg_client`` / ``fealty_pg_tenant`` -- on PostgreSQL, for tests of row-level security and concurrency;
* ``fealty_platform_headers`` -- headers carrying the platform operator key;
* ``fealty_make_tenant`` -- ``await fealty_make_tenant(plugins=[...])`` creates a tenant, returns a
  :class:`TenantHandle`;
* ``fealty_tenant`` -- one fresh tenant on the current backend;
* ``fealty_live_server`` / ``fealty_live_client`` / ``fealty_live_tenant`` -- the API over real HTTP (PostgreSQL);
* ``fealty_postgres_url`` / ``fealty_sqlite_url`` / ``fealty_database_url`` -- the migrated test databases;
* ``fealty_plugins`` -- override to register the plugins under test (default: none, installed ones are not loaded).

:func:`register_inline_plugin` registers a few functions as a plugin, for tests of the contract itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
import pytest_asyncio
from litestar import Litestar

from core.app import create_app
from core.db.migrate import upgrade_async
from core.plugin import PROJECT, hookimpl
from core.plugin.manager import PluginManager
from core.plugin.types import PluginInfo
from core.runtime import Runtime
from core.settings import Settings

TEST_PLATFORM_KEY = "ftp_test-platform-key-for-the-test-session-only"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _backends() -> list[str]:
    wanted = os.environ.get("FEALTY_TEST_BACKENDS", "sqlite,postgres")
    return [b.strip() for b in wanted.split(",") if b.strip()]


@dataclass
class TenantHandle:
    """A tenant made for one test: its id, slug, admin key and a client that sends that key."""

    id: uuid.UUID
    slug: str
    key: str
    client: httpx.AsyncClient
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.headers | kw.pop("headers", {}), **kw)

    async def post(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, json=json, headers=self.headers | kw.pop("headers", {}), **kw)

    async def patch(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.patch(url, json=json, headers=self.headers | kw.pop("headers", {}), **kw)

    async def put(self, url: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.put(url, json=json, headers=self.headers | kw.pop("headers", {}), **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self.headers | kw.pop("headers", {}), **kw)

    async def enrol(self, external_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Enrol a member (a random external id unless given) and return it."""
        body = {"external_id": external_id or f"m-{uuid.uuid4().hex[:12]}", **fields}
        response = await self.post("/v1/members", json=body)
        assert response.status_code == 201, response.text
        member: dict[str, Any] = response.json()
        return member

    async def credit(self, member_id: str, points: int, reason: str = "test credit", **extra: Any) -> dict[str, Any]:
        response = await self.post(
            f"/v1/members/{member_id}/points/adjust", json={"points": points, "reason": reason, **extra}
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def balance(self, member_id: str) -> dict[str, Any]:
        response = await self.get(f"/v1/members/{member_id}/balance")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


# --- databases ------------------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fealty_postgres_url() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database for this test session (dropped afterwards)."""
    import asyncpg

    admin = os.environ.get("FEALTY_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = f"fealty_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    await upgrade_async(url)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fealty_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "fealty-test.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    return url


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "platform_key": TEST_PLATFORM_KEY,
        "embedded_worker": False,
        "migrate_on_start": False,
        "log_level": "WARNING",
        "rate_limit_per_second": 0.0,
        "strict_tenant_checks": True,
        "database_pool_size": 5,
        "database_max_overflow": 15,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


# --- apps and clients -----------------------------------------------------------------------------------------------


def registering(*plugins: Any) -> Callable[[], PluginManager]:
    """A factory of plugin managers with ``plugins`` registered (each a ``PluginInfo``): what an override of
    ``fealty_plugins`` returns, e.g. ``return registering(hotel.PLUGIN)``."""

    def make() -> PluginManager:
        manager = PluginManager()
        for plugin in plugins:
            manager.register(plugin)
        return manager

    return make


def register_inline_plugin(
    manager: PluginManager,
    *hooks: Callable[..., Any],
    name: str | None = None,
    settings: type[msgspec.Struct] | None = None,
) -> PluginInfo:
    """Register plain functions as one plugin (tox's ``register_inline_plugin``): each function is named after the
    hook it implements, and marked with :data:`core.hookimpl` unless it already is (``@hookimpl(wrapper=True)`` for a
    wrapper). The plugin is called after those registered before it. Returns its ``PluginInfo``::

        def fealty_screen_event(ctx: EventContext) -> Screening:
            return Screening("hold", "under review", "test.hold")

        register_inline_plugin(runtime.plugins, fealty_screen_event, name="holds")
    """
    marked = {f.__name__: f if hasattr(f, f"{PROJECT}_impl") else hookimpl(f) for f in hooks}
    name = name or f"inline_{len(manager.available()) + 1}"
    module = types.ModuleType(f"inline_plugin_{name}")
    module.__dict__.update(marked)
    info = PluginInfo(name, f"Inline plugin {name}", "0", module, settings=settings)
    manager.register(info)
    return info


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    """Override to register plugins under test: return a factory of a configured PluginManager
    (:func:`registering`)."""
    return PluginManager


class AppClient(httpx.AsyncClient):
    """An HTTP client bound to one in-process app (same event loop as the tests, so tests may use its runtime)."""

    app: Litestar


class _Apps:
    """One app (and client) per backend for the whole session, created on first use."""

    def __init__(self) -> None:
        self.clients: dict[str, AppClient] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def client(self, backend: str, url: str, plugins: Callable[[], PluginManager]) -> AppClient:
        manager = plugins()
        key = f"{backend}:{','.join(sorted(manager.available()))}"
        if key not in self.clients:
            app = create_app(settings_for_tests(url), plugins=manager)
            started = asyncio.Event()

            async def keep_running() -> None:
                # The lifespan is entered and left in this one task, as anyio's cancel scopes require.
                async with app.lifespan():
                    started.set()
                    await self.stop.wait()

            self.tasks.append(asyncio.create_task(keep_running()))
            await started.wait()
            transport = httpx.ASGITransport(app=cast(Any, app))
            client = AppClient(transport=transport, base_url="http://testserver", timeout=60)
            client.app = app
            self.clients[key] = client
        return self.clients[key]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.stop.set()
        await asyncio.gather(*self.tasks)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fealty_apps() -> AsyncIterator[_Apps]:
    apps = _Apps()
    yield apps
    await apps.close()


@pytest.fixture(params=_backends())
def fealty_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fealty_database_url(fealty_backend: str, request: pytest.FixtureRequest) -> str:
    fixture = "fealty_postgres_url" if fealty_backend == "postgres" else "fealty_sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_client(
    fealty_backend: str, fealty_database_url: str, fealty_apps: _Apps, fealty_plugins: Callable[[], PluginManager]
) -> AppClient:
    return await fealty_apps.client(fealty_backend, fealty_database_url, fealty_plugins)


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_pg_client(
    fealty_postgres_url: str, fealty_apps: _Apps, fealty_plugins: Callable[[], PluginManager]
) -> AppClient:
    return await fealty_apps.client("postgres", fealty_postgres_url, fealty_plugins)


@pytest.fixture
def fealty_app(fealty_client: AppClient) -> Litestar:
    return fealty_client.app


@pytest.fixture
def fealty_runtime(fealty_client: AppClient) -> Runtime:
    rt: Runtime = fealty_client.app.state["runtime"]
    return rt


@pytest.fixture
def fealty_platform_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_PLATFORM_KEY}"}


MakeTenant = Callable[..., Awaitable[TenantHandle]]


async def create_tenant(client: httpx.AsyncClient, **fields: Any) -> TenantHandle:
    slug = fields.pop("slug", None) or f"t-{uuid.uuid4().hex[:12]}"
    body = {"name": fields.pop("name", slug), "slug": slug, "timezone": "Europe/London", "currency": "GBP"} | fields
    response = await client.post(
        "/v1/platform/tenants", json=body, headers={"Authorization": f"Bearer {TEST_PLATFORM_KEY}"}
    )
    assert response.status_code == 201, response.text
    data = response.json()
    return TenantHandle(uuid.UUID(data["tenant"]["id"]), slug, data["api_key"]["secret"], client, data)


@pytest.fixture
def fealty_make_tenant(fealty_client: AppClient) -> MakeTenant:
    async def make(**fields: Any) -> TenantHandle:
        return await create_tenant(fealty_client, **fields)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_tenant(fealty_make_tenant: MakeTenant) -> TenantHandle:
    return await fealty_make_tenant()


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_pg_tenant(fealty_pg_client: AppClient) -> TenantHandle:
    return await create_tenant(fealty_pg_client)


# --- a real server on a loopback port -------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    app: Litestar


@pytest.fixture(scope="session")
def fealty_live_server_factory() -> Iterator[Callable[[Settings, Callable[[], PluginManager]], LiveServer]]:
    """Start uvicorn on a free loopback port in a thread (its own event loop); stopped after the session."""
    import socket

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings, plugins: Callable[[], PluginManager] = PluginManager) -> LiveServer:
        app = create_app(settings, plugins=plugins())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", loop="asyncio")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        else:
            raise RuntimeError("the live server did not start")
        servers.append((server, thread))
        return LiveServer(f"http://127.0.0.1:{port}", app)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def fealty_live_servers() -> dict[str, LiveServer]:
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_live_server(
    fealty_postgres_url: str,
    fealty_live_server_factory: Callable[[Settings, Callable[[], PluginManager]], LiveServer],
    fealty_plugins: Callable[[], PluginManager],
    fealty_live_servers: dict[str, LiveServer],
) -> LiveServer:
    """The API served over real HTTP on a loopback port, on PostgreSQL: one server per set of plugins for the
    session (a directory's ``fealty_plugins`` override gets its own)."""
    key = ",".join(sorted(fealty_plugins().available()))
    if key not in fealty_live_servers:
        fealty_live_servers[key] = fealty_live_server_factory(settings_for_tests(fealty_postgres_url), fealty_plugins)
    return fealty_live_servers[key]


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_live_client(fealty_live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=fealty_live_server.url, timeout=60, limits=limits) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def fealty_live_tenant(fealty_live_client: httpx.AsyncClient) -> TenantHandle:
    return await create_tenant(fealty_live_client)
