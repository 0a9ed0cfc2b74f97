from __future__ import annotations

from collections.abc import Callable

import pytest

from core.plugins import PluginManager
from tests.engine.group_commit import faulty


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    def make() -> PluginManager:
        manager = PluginManager()
        manager.register(faulty.PLUGIN)
        return manager

    return make
