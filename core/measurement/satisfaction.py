"""The satisfaction index from survey results: the tenant's active satisfaction model (AHP) weighs the survey
factors' standardised values (D, 0-100) that match its leaf factors by code. Survey answers are stored per question
with their factor (``survey_answers``); :mod:`core.surveys.service` turns them into factor values per group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.measurement import ahp
from core.measurement.models import MeasurementModel
from core.measurement.service import tree


@dataclass(frozen=True)
class SatisfactionIndex:
    code: str
    root: ahp.Node
    leaves: frozenset[str]

    def score(self, values: Mapping[str, tuple[Decimal | None, int]]) -> tuple[Decimal | None, Decimal | None]:
        """The index (0-100) and the model's weight share that was answered, from ``factor -> (D, answers)``."""
        answered = {
            code: float(value) for code, (value, count) in values.items() if code in self.leaves and value is not None
        }
        if not answered:
            return None, Decimal(0)
        scores = ahp.scores(self.root, answered)
        goal = scores.get("goal")
        index = None if goal is None else Decimal(str(goal)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        coverage = Decimal(str(ahp.coverage(self.root, answered))).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
        return index, coverage


async def active_index(db: AsyncSession) -> SatisfactionIndex | None:
    """The tenant's active satisfaction model, weighed (None when it has none)."""
    model = (
        await db.execute(
            select(MeasurementModel).where(MeasurementModel.kind == "satisfaction", MeasurementModel.active.is_(True))
        )
    ).scalar_one_or_none()
    if model is None:
        return None
    root, leaves = tree(model)
    return SatisfactionIndex(model.code, root, frozenset(leaves))
