"""A server of the whole API (every vertical plugin installed) on a loopback port, for the fuzz and the client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytest_asyncio

from core.db.migrate import upgrade_async
from core.plugin.manager import PluginManager
from core.settings import Settings
from core.testing import LiveServer, registering, settings_for_tests
from plugins import fuel_station, hotel, microfinance, utility

every_plugin = registering(hotel.PLUGIN, fuel_station.PLUGIN, utility.PLUGIN, microfinance.PLUGIN)


@pytest_asyncio.fixture(scope="session")
async def contract_server(
    tmp_path_factory: pytest.TempPathFactory,
    live_server_factory: Callable[[Settings, Callable[[], PluginManager]], LiveServer],
) -> LiveServer:
    """Its own SQLite database: what the fuzz writes (plans, tenants) is seen by no other test."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('contract') / 'contract.db'}"
    await upgrade_async(url)
    return live_server_factory(settings_for_tests(url), every_plugin)
