"""Power utilities: service accounts with Priority Services Register needs, planned and unplanned outage notices
through the care engine, guaranteed-standards compensation, call tasks for account managers, rewards for paying on
time, going paperless and saving at peak times, and service by customer class and credit rating.

Every figure is a per-tenant setting (:class:`plugins.utility.settings.UtilitySettings`) whose default is the trade's
(docs/domain.md, "Power utilities").
"""

from __future__ import annotations

from pathlib import Path

from core import PluginInfo
from plugins.utility import hooks, models
from plugins.utility.settings import UtilitySettings

__all__ = ["PLUGIN", "models"]

PLUGIN = PluginInfo(
    name="utility",
    title="Power utilities",
    version="1.0.0",
    hooks=hooks,
    settings=UtilitySettings,
    migrations=Path(__file__).parent / "migrations" / "versions",
    description="Service accounts and priority customers, planned and unplanned outage notices, guaranteed-standards "
    "compensation, call tasks, on-time payment, paperless and peak-time rewards.",
)
