from __future__ import annotations

from collections.abc import Callable

import pytest

from core.plugin.manager import PluginManager
from core.testing import registering
from tests.http.group_commit import faulty


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(faulty.PLUGIN)
