"""Rural microfinance: borrowers and joint-liability groups, loan products, loans with their schedules, repayments
through core's events, arrears and PAR, credit follow-ups, repayment incentives and fair collection.

Every figure is a per-tenant setting (:class:`plugins.microfinance.settings.MicrofinanceSettings`) whose default is
the trade's usual figure (docs/domain.md, "Rural microfinance").
"""

from __future__ import annotations

from pathlib import Path

from core import PluginInfo
from plugins.microfinance import hooks, models
from plugins.microfinance.settings import MicrofinanceSettings

__all__ = ["PLUGIN", "models"]

PLUGIN = PluginInfo(
    name="microfinance",
    title="Rural microfinance",
    version="1.0.0",
    hooks=hooks,
    settings=MicrofinanceSettings,
    migrations=Path(__file__).parent / "migrations" / "versions",
    description="Borrowers and groups, loan products, loans and schedules (flat and declining balance), repayments "
    "as events, arrears and PAR, credit follow-ups, repayment incentives and fair collection.",
)
