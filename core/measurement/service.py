"""Measurement models as the rest of the system uses them: weighed once, scoring members."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from core.jobs import queue
from core.measurement import ahp
from core.measurement.models import MeasurementModel
from core.measurement.spec import FactorIn, Kind, ModelSpec, build, loyalty_index, weights_of

#: The job kind of the loyalty run (nightly, and on request).
LOYALTY_RUN = "measurement.loyalty"


def weigh(spec: ModelSpec, kind: Kind) -> list[dict[str, Any]]:
    """The stored consistency and weights of a model (raises SpecError or Inconsistent)."""
    root, _ = build(spec, kind)
    return weights_of(root)


@lru_cache(maxsize=256)
def _tree(encoded: bytes, kind: Kind) -> tuple[ahp.Node, dict[str, FactorIn]]:
    return build(msgspec.json.decode(encoded, type=ModelSpec), kind)


def tree(model: MeasurementModel) -> tuple[ahp.Node, dict[str, FactorIn]]:
    """The weighed hierarchy of a stored model (cached by content: scoring a million members weighs it once)."""
    return _tree(msgspec.json.encode(model.spec), model.kind)


def score_member(model: MeasurementModel, facts: Mapping[str, Any]) -> dict[str, float]:
    root, leaves = tree(model)
    return loyalty_index(root, leaves, facts)


async def model_changed(db: AsyncSession, model: MeasurementModel) -> None:
    """A loyalty model changed: the members' loyalty indices are recomputed by the next loyalty run (queued now)."""
    if model.kind != "loyalty":
        return
    await request_run(db, model.tenant_id)


async def request_run(db: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Queue a loyalty run now (in the caller's transaction): a loyalty model changed, or an admin asked."""
    await queue.enqueue_or_wake(db, LOYALTY_RUN, tenant_id=tenant_id, dedupe_key=f"{LOYALTY_RUN}:{tenant_id}:requested")
