"""The ledger's arithmetic as pure functions: no I/O, so every rule is tested without a database.

Each operation takes the member's balance (and the lots it needs) and returns a :class:`Change`: the signed points of
the one entry it writes, what it takes from (or gives back to) each lot, the lot it creates, and the deltas to the
balance row. :mod:`core.ledger.service` reads the state under the member's balance lock, calls these, and writes the
change; the property tests apply the same changes in memory. Invariants every change preserves:

* ``available == earned - redeemed - expired + adjusted + written_off`` (also a CHECK constraint);
* ``max(available, 0) == sum(remaining of posted lots)``: a negative balance (only under the ``allow_negative``
  reversal policy) means no posted points are left, and the next credits settle it before they fill a lot;
* ``pending == sum(remaining of pending lots)``; ``0 <= remaining <= points`` for every lot.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

ExpiryKind = Literal["never", "days_after_earn", "end_of_month_after", "inactivity"]
ReversalPolicy = Literal["allow_negative", "claw_back"]
CreditKind = Literal["earn", "adjust"]
DebitKind = Literal["redeem", "adjust"]

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class InsufficientPointsError(Exception):
    def __init__(self, available: int, requested: int) -> None:
        super().__init__(f"{requested} points requested, {available} available")
        self.available = available
        self.requested = requested


# --- calendar -------------------------------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def start_of_next_month(local: datetime) -> datetime:
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return local.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    """When points expire: never; N days after earning; at the end of the month N months after earning (in the
    program's time zone); or all at once after N months without qualifying activity."""

    kind: ExpiryKind = "never"
    value: int | None = None

    def __post_init__(self) -> None:
        if self.kind != "never" and (self.value is None or self.value <= 0):
            raise ValueError(f"expiry policy {self.kind} needs a positive value")

    def lot_expiry(self, earned_at: datetime, tz: ZoneInfo) -> datetime | None:
        """The instant a lot earned at ``earned_at`` expires (it is expired once ``now >= expires_at``)."""
        if self.kind == "days_after_earn":
            assert self.value is not None
            return earned_at + timedelta(days=self.value)
        if self.kind == "end_of_month_after":
            assert self.value is not None
            local = earned_at.astimezone(tz)
            target = add_months(local.replace(day=1), self.value)
            return start_of_next_month(target).astimezone(UTC)
        return None

    def inactivity_deadline(self, last_activity_at: datetime) -> datetime | None:
        if self.kind != "inactivity":
            return None
        assert self.value is not None
        return add_months(last_activity_at, self.value)


# --- state and changes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Balance:
    available: int = 0
    pending: int = 0
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    adjusted: int = 0
    written_off: int = 0

    def totals_add_up(self) -> bool:
        return self.available == self.earned - self.redeemed - self.expired + self.adjusted + self.written_off

    def plus(self, delta: Balance) -> Balance:
        return Balance(
            self.available + delta.available,
            self.pending + delta.pending,
            self.earned + delta.earned,
            self.redeemed + delta.redeemed,
            self.expired + delta.expired,
            self.adjusted + delta.adjusted,
            self.written_off + delta.written_off,
        )


@dataclass(frozen=True, slots=True)
class LotState:
    id: uuid.UUID
    points: int
    remaining: int
    status: Literal["pending", "posted", "cancelled"]
    kind: CreditKind
    earned_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewLot:
    points: int
    remaining: int
    status: Literal["pending", "posted"]
    kind: CreditKind


@dataclass(frozen=True, slots=True)
class Change:
    """What one ledger operation does. ``lot_takes``: positive takes points from a lot, negative gives them back."""

    entry_points: int
    balance: Balance
    lot_takes: tuple[tuple[uuid.UUID, int], ...] = ()
    new_lot: NewLot | None = None
    #: Lot status changes (release: pending -> posted; full reversal of a pending lot: -> cancelled).
    lot_status: tuple[tuple[uuid.UUID, str], ...] = ()
    written_off: int = 0
    #: Part of a credit that paid off a negative balance instead of filling a lot.
    settled: int = 0
    details: dict[str, int] = field(default_factory=dict)


def consumption_order(lots: Iterable[LotState]) -> list[LotState]:
    """Posted lots with points left, oldest-expiring first (never-expiring last), then oldest earned."""
    usable = [lot for lot in lots if lot.status == "posted" and lot.remaining > 0]
    return sorted(usable, key=lambda lot: (lot.expires_at or FAR_FUTURE, lot.earned_at, lot.id))


def _take(lots: Sequence[LotState], points: int) -> tuple[list[tuple[uuid.UUID, int]], int]:
    """Take up to ``points`` from ``lots`` in consumption order; returns the takes and what could not be taken."""
    takes: list[tuple[uuid.UUID, int]] = []
    left = points
    for lot in consumption_order(lots):
        if left == 0:
            break
        take = min(lot.remaining, left)
        takes.append((lot.id, take))
        left -= take
    return takes, left


def settle(available_before: int, points: int) -> int:
    """How much of a credit of ``points`` fills its lot once any negative balance is paid off first."""
    return max(0, min(points, available_before + points))


# --- operations -----------------------------------------------------------------------------------------------------


def credit(balance: Balance, points: int, *, kind: CreditKind, pending: bool) -> Change:
    """Earn or admin credit. Pending credits wait for release; posted ones settle a negative balance first."""
    if points <= 0:
        raise ValueError("a credit must be positive")
    if pending:
        return Change(
            entry_points=points,
            balance=Balance(pending=points),
            new_lot=NewLot(points, points, "pending", kind),
        )
    remaining = settle(balance.available, points)
    delta = Balance(
        available=points, earned=points if kind == "earn" else 0, adjusted=points if kind == "adjust" else 0
    )
    return Change(
        entry_points=points,
        balance=delta,
        new_lot=NewLot(points, remaining, "posted", kind),
        settled=points - remaining,
    )


def debit(balance: Balance, lots: Sequence[LotState], points: int, *, kind: DebitKind) -> Change:
    """Redeem or admin debit: never overdraws; takes from lots oldest-expiring first."""
    if points <= 0:
        raise ValueError("a debit must be positive")
    if balance.available < points:
        raise InsufficientPointsError(max(balance.available, 0), points)
    takes, short = _take(lots, points)
    if short:
        # available says yes but the lots say no: the invariant is broken; refuse rather than guess.
        raise InsufficientPointsError(points - short, points)
    delta = Balance(
        available=-points,
        redeemed=points if kind == "redeem" else 0,
        adjusted=-points if kind == "adjust" else 0,
    )
    return Change(entry_points=-points, balance=delta, lot_takes=tuple(takes))


def release(balance: Balance, lot: LotState) -> Change:
    """A pending lot becomes available (its remaining, after any partial reversal, settles a negative first)."""
    if lot.status != "pending":
        raise ValueError("only a pending lot can be released")
    points = lot.remaining
    filled = settle(balance.available, points)
    delta = Balance(
        available=points,
        pending=-points,
        earned=points if lot.kind == "earn" else 0,
        adjusted=points if lot.kind == "adjust" else 0,
    )
    takes = ((lot.id, points - filled),) if points - filled else ()
    return Change(
        entry_points=0, balance=delta, lot_takes=takes, lot_status=((lot.id, "posted"),), settled=points - filled
    )


def expire(lots: Sequence[LotState]) -> Change:
    """Expire everything left in ``lots`` (posted ones only)."""
    takes = tuple((lot.id, lot.remaining) for lot in lots if lot.status == "posted" and lot.remaining > 0)
    total = sum(take for _, take in takes)
    return Change(entry_points=-total, balance=Balance(available=-total, expired=total), lot_takes=takes)


def reverse_credit(
    balance: Balance,
    own_lot: LotState,
    other_lots: Sequence[LotState],
    amount: int,
    policy: ReversalPolicy,
) -> Change:
    """Take back ``amount`` of what ``own_lot``'s credit earned.

    Pending: the lot shrinks (cancelled when nothing is left). Posted: first what remains of the lot itself, then the
    member's other points oldest-expiring first; what is still missing was already spent, and the policy decides:
    ``allow_negative`` drives the balance below zero, ``claw_back`` writes the rest off (the member keeps it).
    """
    if amount <= 0:
        raise ValueError("a reversal must be positive")
    if own_lot.status == "pending":
        if amount > own_lot.remaining:
            raise ValueError("cannot reverse more than is pending")
        status = ((own_lot.id, "cancelled"),) if amount == own_lot.remaining else ()
        return Change(
            entry_points=-amount,
            balance=Balance(pending=-amount),
            lot_takes=((own_lot.id, amount),),
            lot_status=status,
        )
    if own_lot.status != "posted":
        raise ValueError("a cancelled lot has nothing to reverse")
    from_own = min(own_lot.remaining, amount)
    others = [lot for lot in other_lots if lot.id != own_lot.id]
    other_takes, missing = _take(others, amount - from_own)
    takes = ([(own_lot.id, from_own)] if from_own else []) + other_takes
    taken = amount - missing
    earned_part = amount if own_lot.kind == "earn" else 0
    adjusted_part = -amount if own_lot.kind == "adjust" else 0
    if policy == "allow_negative":
        delta = Balance(available=-amount, earned=-earned_part, adjusted=adjusted_part)
        return Change(entry_points=-amount, balance=delta, lot_takes=tuple(takes), details={"negative": missing})
    delta = Balance(available=-taken, earned=-earned_part, adjusted=adjusted_part, written_off=missing)
    return Change(entry_points=-taken, balance=delta, lot_takes=tuple(takes), written_off=missing)


def restore(balance: Balance, consumed: Sequence[tuple[uuid.UUID, int]], *, kind: DebitKind) -> Change:
    """Give back what a debit took (a cancelled redemption), to the lots it came from.

    With a negative balance the returned points settle it first; only the rest goes back into lots.
    """
    total = sum(points for _, points in consumed)
    if total <= 0:
        raise ValueError("nothing to restore")
    to_lots = settle(balance.available, total)
    gives: list[tuple[uuid.UUID, int]] = []
    left = to_lots
    for lot_id, points in consumed:
        if left == 0:
            break
        give = min(points, left)
        gives.append((lot_id, -give))
        left -= give
    delta = Balance(
        available=total,
        redeemed=-total if kind == "redeem" else 0,
        adjusted=total if kind == "adjust" else 0,
    )
    return Change(entry_points=total, balance=delta, lot_takes=tuple(gives), settled=total - to_lots)


# --- applying a change in memory (the tests' model of the database writes) -------------------------------------------


def apply(
    balance: Balance,
    lots: dict[uuid.UUID, LotState],
    change: Change,
    new_lot_id: uuid.UUID | None = None,
    *,
    earned_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Balance:
    """Apply ``change`` to in-memory state exactly as the service applies it to the database."""
    for lot_id, take in change.lot_takes:
        lot = lots[lot_id]
        lots[lot_id] = replace(lot, remaining=lot.remaining - take)
    for lot_id, status in change.lot_status:
        lots[lot_id] = replace(lots[lot_id], status=status)  # type: ignore[arg-type]
    if change.new_lot is not None:
        if new_lot_id is None:
            raise ValueError("a change that creates a lot needs its id")
        new = change.new_lot
        lots[new_lot_id] = LotState(
            new_lot_id, new.points, new.remaining, new.status, new.kind, earned_at or datetime.now(UTC), expires_at
        )
    return balance.plus(change.balance)


def check_invariants(balance: Balance, lots: Iterable[LotState], *, policy: ReversalPolicy) -> list[str]:
    """Every broken invariant, in words (empty when the state is sound)."""
    lots = list(lots)
    problems = []
    posted = sum(lot.remaining for lot in lots if lot.status == "posted")
    pending = sum(lot.remaining for lot in lots if lot.status == "pending")
    if not balance.totals_add_up():
        problems.append(f"lifetime totals do not add up to available: {balance}")
    if max(balance.available, 0) != posted:
        problems.append(f"available {balance.available} but posted lots hold {posted}")
    if balance.pending != pending:
        problems.append(f"pending {balance.pending} but pending lots hold {pending}")
    if policy == "claw_back" and balance.available < 0:
        problems.append(f"negative balance {balance.available} under claw_back")
    for lot in lots:
        if not 0 <= lot.remaining <= lot.points:
            problems.append(f"lot {lot.id} remaining {lot.remaining} outside 0..{lot.points}")
    return problems
