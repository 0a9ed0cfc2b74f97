"""An example plugin that implements every hook, so the contract is proven end to end (tests only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from core import PluginInfo
from tests.plugins.example import hooks


class ExampleSettings(msgspec.Struct, forbid_unknown_fields=True):
    points_per_visit: Annotated[int, Meta(ge=0, le=10_000)] = 50
    greeting: str = "hello"
    hold_site: str = "suspicious"


PLUGIN = PluginInfo(
    name="example",
    title="Example vertical",
    version="1.0",
    hooks=hooks,
    settings=ExampleSettings,
    description="Exercises every hook of the plugin contract.",
)
