"""Working out which segments a member is in (pure, from facts and metric sums)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.metrics.service import Window, flatten
from core.program.config import SegmentSpec
from core.rules.conditions import all_hold
from core.tiers.rules import TierSpec


def member_facts(
    *,
    tier: TierSpec | None,
    attributes: Mapping[str, Any],
    locale: str | None,
    timezone: str | None,
    enrolled_at: datetime,
    last_activity_at: datetime | None,
    birthday: date | None,
    now: datetime,
    segments: Iterable[str] = (),
    sums: Mapping[tuple[str, str], Decimal] | None = None,
) -> dict[str, Any]:
    """The ``member.*`` and ``metric.*`` facts conditions read."""
    return {
        "member": {
            "tier": tier.code if tier else None,
            "tier_rank": tier.rank if tier else None,
            "attributes": dict(attributes),
            "locale": locale,
            "timezone": timezone,
            "days_enrolled": (now - enrolled_at).days,
            "days_since_last_activity": (now - last_activity_at).days if last_activity_at else None,
            "birthday_month": birthday.month if birthday else None,
            "segments": sorted(segments),
        },
        "metric": flatten(sums or {}),
    }


def metric_windows(segments: Iterable[SegmentSpec]) -> set[tuple[str, Window]]:
    return {(metric, Window.parse(window)) for s in segments for metric, window in s.metric_fields}


def segments_of(segments: Iterable[SegmentSpec], facts: Mapping[str, Any]) -> set[str]:
    return {s.code for s in segments if all_hold(s.conditions, facts, s.match)}  # type: ignore[arg-type]
