"""Hotels: stays, nights, eligible folio charges, tier bonus, milestones, perks, pre-arrival care and free nights.

A hotel's property management system sends ``hotel.stay`` events (booked, in house, checked out, cancelled, no-show,
payment failed); the plugin knows what a night, a stay, an eligible charge and a no-show are. Every figure is a
per-tenant setting (:class:`plugins.hotel.settings.HotelSettings`) whose default is the trade's usual figure.
"""

from __future__ import annotations

from pathlib import Path

from core import PluginInfo
from plugins.hotel import hooks, models
from plugins.hotel.settings import HotelSettings

__all__ = ["PLUGIN", "models"]

PLUGIN = PluginInfo(
    name="hotel",
    title="Hotels",
    version="1.0.0",
    hooks=hooks,
    settings=HotelSettings,
    migrations=Path(__file__).parent / "migrations" / "versions",
    description="Stays and nights, points on eligible folio charges, tier bonus, status by nights, stays or base "
    "points, milestones, perks and pre-arrival notices, free-night awards.",
)
