"""Who may import whom: a plugin imports only ``core`` (the package root: its public API) and itself."""

from __future__ import annotations

import grimp
import pytest

GRAPH = grimp.build_graph("core", "plugins", include_external_packages=True)
PLUGINS = sorted(m for m in GRAPH.find_children("plugins"))


def test_there_are_plugins() -> None:
    assert "plugins.fuel_station" in PLUGINS


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_plugin_imports_only_core_and_itself(plugin: str) -> None:
    wrong = []
    for module in {plugin, *GRAPH.find_descendants(plugin)}:
        for imported in GRAPH.find_modules_directly_imported_by(module):
            if imported == "core" or imported == plugin or imported.startswith(f"{plugin}."):
                continue
            if imported.split(".")[0] in ("core", "plugins"):
                wrong.append(f"{module} -> {imported}")
    assert wrong == [], "plugins import core's public API (from core import ...) and themselves only"


def test_core_never_imports_plugins() -> None:
    assert not [m for m in GRAPH.find_descendants("core") if GRAPH.direct_import_exists(importer=m, imported="plugins")]
    assert not GRAPH.chain_exists(importer="core", imported="plugins", as_packages=True)
