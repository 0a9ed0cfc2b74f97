"""Project-wide test configuration: Fealty's own suite opts in to the ``fealty_testing`` plugin (core/testing.py) and
keeps the short fixture names it has always used as aliases of the plugin's prefixed ones."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from core.runtime import Runtime
from core.settings import Settings
from core.testing import AppClient, LiveServer, MakeTenant, TenantHandle

# Tests never read the developer's environment: set before the app is imported anywhere.
for name in list(os.environ):
    if name.startswith("FEALTY_") and not name.startswith("FEALTY_TEST_"):
        del os.environ[name]
os.environ.setdefault("FEALTY_LOG_LEVEL", "WARNING")

#: Fealty's fixtures, and the moto server (S3, SES, SNS) and redis-server fixtures for every test that asks for them.
pytest_plugins = ["fealty_testing", "tests.moto_server", "tests.redis_server"]


# --- the short names (aliases of the plugin's fealty_* fixtures) ---------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url(fealty_postgres_url: str) -> str:
    return fealty_postgres_url


@pytest.fixture(scope="session")
def sqlite_url(fealty_sqlite_url: str) -> str:
    return fealty_sqlite_url


@pytest.fixture
def backend(fealty_backend: str) -> str:
    return fealty_backend


@pytest.fixture
def database_url(fealty_database_url: str) -> str:
    return fealty_database_url


@pytest.fixture
def client(fealty_client: AppClient) -> AppClient:
    return fealty_client


@pytest.fixture
def pg_client(fealty_pg_client: AppClient) -> AppClient:
    return fealty_pg_client


@pytest.fixture
def app(fealty_app: Litestar) -> Litestar:
    return fealty_app


@pytest.fixture
def runtime(fealty_runtime: Runtime) -> Runtime:
    return fealty_runtime


@pytest.fixture
def platform_headers(fealty_platform_headers: dict[str, str]) -> dict[str, str]:
    return fealty_platform_headers


@pytest.fixture
def make_tenant(fealty_make_tenant: MakeTenant) -> MakeTenant:
    return fealty_make_tenant


@pytest.fixture
def tenant(fealty_tenant: TenantHandle) -> TenantHandle:
    return fealty_tenant


@pytest.fixture
def pg_tenant(fealty_pg_tenant: TenantHandle) -> TenantHandle:
    return fealty_pg_tenant


@pytest.fixture(scope="session")
def live_server_factory(
    fealty_live_server_factory: Callable[[Settings, Any], LiveServer],
) -> Callable[[Settings, Any], LiveServer]:
    return fealty_live_server_factory


@pytest.fixture
def live_server(fealty_live_server: LiveServer) -> LiveServer:
    return fealty_live_server


@pytest.fixture
def live_client(fealty_live_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return fealty_live_client


@pytest.fixture
def live_tenant(fealty_live_tenant: TenantHandle) -> TenantHandle:
    return fealty_live_tenant
