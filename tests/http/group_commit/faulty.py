"""A plugin with a bug: it raises for events marked ``{"fail": true}`` (to prove a group's failure is contained)."""

from __future__ import annotations

import sys

from core import Award, AwardsContext, PluginInfo, hookimpl


@hookimpl
def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    if isinstance(ctx.event.attributes, dict) and ctx.event.attributes.get("fail"):
        raise RuntimeError("a bug in a plugin")
    return None


PLUGIN = PluginInfo(name="faulty", title="Faulty", version="1.0", hooks=sys.modules[__name__])
