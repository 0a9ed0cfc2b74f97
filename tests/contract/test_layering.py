"""Who may import whom, checked on the real import graph (grimp, as import-linter builds it).

A plugin imports only ``core`` itself (the public API in ``core/__init__.py``), never ``core.<anything>``, and
never another plugin; core never imports plugins. A plugin's own tests (``plugins/<name>/tests``) drive it through
core's test harness, as ``tests/`` does: they may import core's modules, never another plugin.
"""

from __future__ import annotations

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("core", "plugins", include_external_packages=False)


def _plugin_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "plugins" and len(parts) > 1 else None


def _is_test(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 2 and parts[2] == "tests"


def test_plugins_import_only_the_core_package_and_themselves(graph: grimp.ImportGraph) -> None:
    wrong = []
    for module in sorted(m for m in graph.modules if m.startswith("plugins.")):
        for imported in graph.find_modules_directly_imported_by(module):
            if (imported.startswith("core.") and not _is_test(module)) or (
                _plugin_of(imported) is not None and _plugin_of(imported) != _plugin_of(module)
            ):
                wrong.append(f"{module} -> {imported}")
    assert wrong == [], "plugins may import only `core` and themselves"


def test_core_never_imports_plugins(graph: grimp.ImportGraph) -> None:
    wrong = [
        f"{m} -> {i}"
        for m in graph.modules
        if m.split(".")[0] == "core"
        for i in graph.find_modules_directly_imported_by(m)
        if i.split(".")[0] == "plugins"
    ]
    assert wrong == []


@pytest.mark.parametrize("hooks", ["plugins.hotel.hooks", "plugins.fuel_station.hooks"])
def test_each_plugin_is_seen(graph: grimp.ImportGraph, hooks: str) -> None:
    assert hooks in graph.modules
    assert "core" in graph.find_modules_directly_imported_by(hooks)


def test_the_public_api_lists_every_export() -> None:
    import core

    assert set(core.__all__) == {"__version__", *core._EXPORTS}
    for name in core._EXPORTS:
        assert getattr(core, name) is not None, name
