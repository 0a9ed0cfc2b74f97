"""Tier qualification, validity and downgrades as pure functions.

A tier qualifies a member when its criteria hold over its window (``any`` or ``all`` of them): e.g. Silver on 10
nights OR 4 stays OR 25,000 base points in the calendar year. Members move up at once; they move down when their
status validity ends (one step, or to the highest tier they still qualify for), never below a manual floor, or when a
reversal takes back the credits of an upgrade whose qualification window is still open (:func:`on_reversal`).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from core.decimals import decimal_bounds
from core.qualification.service import Window


class Criterion(msgspec.Struct, forbid_unknown_fields=True):
    #: A member metric: points, base_points, spend, events, count:<event type>, or a plugin credit (nights...).
    metric: Annotated[str, Meta(min_length=1, max_length=80)]
    #: More than 0, at most 10**12, to 4 decimal places.
    min: Annotated[Decimal, decimal_bounds(gt=0, le=10**12, places=4)]


class WindowSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    kind: Literal["calendar_year", "rolling_days", "lifetime"] = "calendar_year"
    days: Annotated[int, Meta(ge=1, le=3660)] | None = None

    def window(self) -> Window:
        return Window(self.kind, self.days)


class Qualification(msgspec.Struct, forbid_unknown_fields=True):
    window: WindowSpec = msgspec.field(default_factory=WindowSpec)
    mode: Literal["any", "all"] = "any"
    criteria: list[Criterion] = msgspec.field(default_factory=list)


class Validity(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How long a status lasts once reached: forever; until a date ``years_after`` the year it was reached (end of
    ``month``/``day``, e.g. end of February in year N+2); or a number of days."""

    kind: Literal["none", "fixed_date", "days"] = "none"
    years_after: Annotated[int, Meta(ge=0, le=10)] = 1
    month: Annotated[int, Meta(ge=1, le=12)] = 12
    day: Annotated[int, Meta(ge=1, le=31)] = 31
    days: Annotated[int, Meta(ge=1, le=3660)] | None = None


class Benefits(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    #: Multiplies base points (1.25 = +25 %): more than 0, at most 10, to 4 decimal places.
    earning_multiplier: Annotated[Decimal, decimal_bounds(gt=0, le=10, places=4)] | None = None
    perks: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class TierSpec:
    id: object
    code: str
    name: str
    rank: int
    qualification: Qualification
    benefits: Benefits
    validity: Validity
    downgrade: Literal["one_step", "to_qualified"]


def metric_windows(tiers: Sequence[TierSpec]) -> set[tuple[str, Window]]:
    return {(c.metric, t.qualification.window.window()) for t in tiers for c in t.qualification.criteria}


def qualifies(tier: TierSpec, sums: Mapping[tuple[str, str], Decimal]) -> bool:
    """Whether ``sums`` meet the tier's criteria. A tier without criteria is the entry level when its rank is 0
    (everyone qualifies), and a by-hand-only tier above that (a VIP list, a status match): nobody qualifies for it."""
    q = tier.qualification
    if not q.criteria:
        return tier.rank == 0
    key = q.window.window().key
    met = [sums.get((c.metric, key), Decimal(0)) >= c.min for c in q.criteria]
    return all(met) if q.mode == "all" else any(met)


def highest_qualified(tiers: Sequence[TierSpec], sums: Mapping[tuple[str, str], Decimal]) -> TierSpec | None:
    qualified = [t for t in tiers if qualifies(t, sums)]
    return max(qualified, key=lambda t: t.rank) if qualified else None


def valid_until(tier: TierSpec, reached_at: datetime, tz: ZoneInfo) -> datetime | None:
    v = tier.validity
    if v.kind == "days":
        assert v.days is not None
        return reached_at + timedelta(days=v.days)
    if v.kind == "fixed_date":
        local = reached_at.astimezone(tz)
        year = local.year + v.years_after
        day = min(v.day, calendar.monthrange(year, v.month)[1])
        end = datetime(year, v.month, day, tzinfo=tz) + timedelta(days=1)  # the end of that local day
        return end.astimezone(UTC)
    return None


@dataclass(frozen=True)
class Move:
    to: TierSpec | None
    valid_until: datetime | None
    reason: Literal["upgrade", "renewal", "downgrade", "enrolment", "reversal"]


def on_activity(
    tiers: Sequence[TierSpec],
    current: TierSpec | None,
    current_valid_until: datetime | None,
    sums: Mapping[tuple[str, str], Decimal],
    now: datetime,
    tz: ZoneInfo,
) -> Move | None:
    """After new credits: move up at once, or extend the current status when re-qualifying pushes it later."""
    target = highest_qualified(tiers, sums)
    if target is None:
        return None
    if current is None or target.rank > current.rank:
        return Move(target, valid_until(target, now, tz), "upgrade" if current else "enrolment")
    if target.rank == current.rank:
        until = valid_until(target, now, tz)
        if current_valid_until is not None and until is not None and until > current_valid_until:
            return Move(target, until, "renewal")
    return None


def at_expiry(
    tiers: Sequence[TierSpec],
    current: TierSpec,
    sums: Mapping[tuple[str, str], Decimal],
    now: datetime,
    tz: ZoneInfo,
    floor: TierSpec | None = None,
) -> Move:
    """The status has run out: renew if still qualified, else move down (one step or to what still qualifies),
    never below a manual floor."""
    ordered = sorted(tiers, key=lambda t: t.rank)
    target = highest_qualified(tiers, sums)
    if target is not None and target.rank >= current.rank:
        return Move(current, valid_until(current, now, tz), "renewal")
    if current.downgrade == "one_step":
        below = [t for t in ordered if t.rank < current.rank]
        new = below[-1] if below else None
    else:
        new = target
    if floor is not None and (new is None or new.rank < floor.rank):
        new = floor
    if new is not None and new.rank >= current.rank:
        return Move(current, valid_until(current, now, tz), "renewal")
    return Move(new, valid_until(new, now, tz) if new else None, "downgrade")


@dataclass(frozen=True)
class HistoryEntry:
    """One row of a member's tier history (``tier_changes``)."""

    from_tier_id: object
    to_tier_id: object
    #: upgrade, enrolment, renewal, downgrade, reversal, or prefixed: ``recalc:upgrade``, ``manual:upgrade``,
    #: ``<a plugin's reason>:upgrade``.
    reason: str
    valid_until: datetime | None
    changed_at: datetime


@dataclass(frozen=True)
class Reached:
    """How the member came to hold their tier: an automatic upgrade, when, and what they had before it."""

    at: datetime
    from_tier: TierSpec | None
    #: The validity the tier before had when the upgrade replaced it.
    from_valid_until: datetime | None


#: The moves core makes on qualification (an event's, or a recalculation's): only these are undone by a reversal.
AUTOMATIC_MOVES = frozenset({"upgrade", "enrolment", "recalc:upgrade", "recalc:enrolment"})


def reached_by(
    history: Sequence[HistoryEntry], current: TierSpec, tiers_by_id: Mapping[Any, TierSpec]
) -> Reached | None:
    """The automatic upgrade that put the member in ``current`` (``history`` newest first), or None when the tier was
    given by hand, by a plugin or by a downgrade. Renewals are skipped, and so are moves above ``current`` that a
    reversal later undid (Silver, then Gold, then Gold reversed: Silver was reached by the first upgrade)."""
    for i, entry in enumerate(history):
        if entry.reason.endswith("renewal"):
            continue
        if entry.to_tier_id == current.id and entry.reason != "reversal":
            if entry.reason not in AUTOMATIC_MOVES:
                return None
            before = tiers_by_id.get(entry.from_tier_id) if entry.from_tier_id is not None else None
            until = None
            if before is not None:
                until = next((e.valid_until for e in history[i + 1 :] if e.to_tier_id == before.id), None)
            return Reached(entry.changed_at, before, until)
        if entry.reason not in AUTOMATIC_MOVES and entry.reason != "reversal":
            return None
    return None


def on_reversal(
    tiers: Sequence[TierSpec],
    current: TierSpec | None,
    reached: Reached | None,
    sums: Mapping[tuple[str, str], Decimal],
    now: datetime,
    tz: ZoneInfo,
    floor: TierSpec | None = None,
) -> Move | None:
    """After a reversal took credits back (``sums`` are what is left). A tier reached by an automatic upgrade whose
    qualification window is still open is lost when the remaining credits no longer qualify for it: the member moves
    down to the highest tier they still qualify for, never below the tier they had before that upgrade (with the
    validity it had then) nor below a manual floor. A status earned in a window that has closed stands until its
    validity ends (:func:`at_expiry` decides then)."""
    if current is None or reached is None or not current.qualification.criteria:
        return None
    start = current.qualification.window.window().start(now.astimezone(tz).date())
    if start is not None and reached.at.astimezone(tz).date() < start:
        return None
    if qualifies(current, sums):
        return None
    lower = [t for t in tiers if t.rank < current.rank and qualifies(t, sums)]
    new = max(lower, key=lambda t: t.rank) if lower else None
    for bound in (reached.from_tier, floor):
        if bound is not None and (new is None or bound.rank > new.rank):
            new = bound
    if new is not None and new.rank >= current.rank:
        return None
    if new is not None and reached.from_tier is not None and new.id == reached.from_tier.id:
        until = reached.from_valid_until
    else:
        until = valid_until(new, now, tz) if new is not None else None
    return Move(new, until, "reversal")


@dataclass(frozen=True)
class Progress:
    metric: str
    window: str
    current: Decimal
    required: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.required - self.current)


def progress_to(tier: TierSpec, sums: Mapping[tuple[str, str], Decimal]) -> list[Progress]:
    key = tier.qualification.window.window().key
    return [Progress(c.metric, key, sums.get((c.metric, key), Decimal(0)), c.min) for c in tier.qualification.criteria]
