"""Fuel stations: fill-ups and shop purchases in the trade's terms (litres, grades, caps, visits, cents-off
vouchers, fraud review, retention). Tenants enable it as ``fuel``; its routes live under ``/v1/fuel/``."""

from __future__ import annotations

from pathlib import Path

from core import PluginInfo
from plugins.fuel_station import hooks, models
from plugins.fuel_station.settings import FuelSettings

PLUGIN = PluginInfo(
    name="fuel",
    title="Fuel stations",
    version="1.0.0",
    hooks=hooks,
    settings=FuelSettings,
    migrations=Path(__file__).parent / "migrations" / "versions",
    description=(
        "Points per whole litre or per currency unit by grade, premium multipliers and shop purchases; litre and "
        "monthly caps; participating sites; visits with a reward every N; cents-off vouchers; fraud rules with a "
        "review queue; retention report and win-back care requests."
    ),
)

__all__ = ["PLUGIN", "FuelSettings", "models"]
