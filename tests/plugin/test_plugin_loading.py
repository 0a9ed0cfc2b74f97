"""What a process serves: ``fealty serve`` and ``fealty worker`` load the installed plugins (entry points
``fealty.plugins``), only those ``FEALTY_PLUGINS`` names when set, none when ``FEALTY_LOAD_ENTRY_POINT_PLUGINS`` is
false."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.app import create_app
from core.plugin.manager import PluginManager
from core.settings import Settings


def test_the_installed_plugins_are_loaded_unless_the_settings_say_otherwise() -> None:
    assert {"hotel", "fuel"} <= set(PluginManager.for_settings(Settings.from_env({})).available())
    only = Settings.from_env({"FEALTY_PLUGINS": "hotel"})
    assert set(PluginManager.for_settings(only).available()) == {"hotel"}
    none = Settings.from_env({"FEALTY_LOAD_ENTRY_POINT_PLUGINS": "false"})
    assert PluginManager.for_settings(none).available() == {}
    with pytest.raises(ValueError, match="not installed"):
        PluginManager.for_settings(Settings.from_env({"FEALTY_PLUGINS": "hotel,bakery"}))


def test_the_app_without_a_plugin_manager_serves_the_installed_plugins_routes(tmp_path: Path) -> None:
    settings = Settings.from_env({}, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", log_level="WARNING")
    paths = {route.path for route in create_app(settings).routes}
    assert "/v1/hotel/quotes/points-stay" in paths and "/v1/fuel/reviews" in paths
    bare = create_app(settings, plugins=PluginManager())
    assert not any(route.path.startswith(("/v1/hotel", "/v1/fuel")) for route in bare.routes)
