"""Plugin discovery and the plugin manager (entry-point group ``fealty.plugins``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed

ENTRY_POINT_GROUP = "fealty.plugins"


def installed_migration_dirs() -> list[Path]:
    dirs: list[Path] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.load()
        path = getattr(module, "MIGRATIONS_DIR", None)
        if path is not None and Path(path).is_dir():
            dirs.append(Path(path))
    return dirs


class PluginManager:
    def __init__(self) -> None:
        self._plugins: dict[str, Any] = {}

    def available(self) -> dict[str, Any]:
        return dict(self._plugins)

    def validate_settings(self, name: str, value: dict[str, Any]) -> dict[str, Any]:
        if name not in self._plugins:
            raise ValidationFailed(f"Unknown plugin '{name}'.", field="plugins")
        return value
