from __future__ import annotations

from collections.abc import Callable

import pytest

from core.plugins import PluginManager
from tests.plugins import example


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    def make() -> PluginManager:
        manager = PluginManager()
        manager.register(example.PLUGIN)
        return manager

    return make
