"""The ledger's arithmetic, property-tested: any sequence of operations keeps every invariant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from core.ledger import maths

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class LedgerModel(RuleBasedStateMachine):
    """An account driven only through core.ledger.maths, with an entry log like the database's."""

    def __init__(self) -> None:
        super().__init__()
        self.balance = maths.Balance()
        self.lots: dict[uuid.UUID, maths.LotState] = {}
        self.lot_reversed: dict[uuid.UUID, int] = {}
        #: entry id -> (points, status, lot it belongs to for pending fate)
        self.entries: dict[uuid.UUID, list] = {}
        self.debits: dict[uuid.UUID, tuple[str, list[tuple[uuid.UUID, int]]]] = {}
        self.restored: set[uuid.UUID] = set()
        self.clock = T0
        self.policy: maths.ReversalPolicy = "claw_back"
        self.counter = 0

    def _new_id(self) -> uuid.UUID:
        # Deterministic ids: hypothesis replays must draw the same way.
        self.counter += 1
        return uuid.UUID(int=self.counter)

    @initialize(policy=st.sampled_from(["claw_back", "allow_negative"]))
    def choose_policy(self, policy: maths.ReversalPolicy) -> None:
        self.policy = policy

    def _tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    @rule(
        points=st.integers(1, 500),
        kind=st.sampled_from(["earn", "adjust"]),
        pending=st.booleans(),
        expires_in=st.one_of(st.none(), st.integers(1, 100)),
    )
    def credit(self, points: int, kind: maths.CreditKind, pending: bool, expires_in: int | None) -> None:
        now = self._tick()
        change = maths.credit(self.balance, points, kind=kind, pending=pending)
        lot_id = self._new_id()
        expires = now + timedelta(minutes=expires_in) if expires_in else None
        self.balance = maths.apply(self.balance, self.lots, change, lot_id, earned_at=now, expires_at=expires)
        self.lot_reversed[lot_id] = 0
        self.entries[lot_id] = [points, "pending" if pending else "posted", lot_id]

    @rule(points=st.integers(1, 800), kind=st.sampled_from(["redeem", "adjust"]))
    def debit(self, points: int, kind: maths.DebitKind) -> None:
        try:
            change = maths.debit(self.balance, list(self.lots.values()), points, kind=kind)
        except maths.InsufficientPointsError:
            assert self.balance.available < points
            return
        self.balance = maths.apply(self.balance, self.lots, change)
        entry_id = self._new_id()
        self.entries[entry_id] = [change.entry_points, "posted", None]
        self.debits[entry_id] = (kind, list(change.lot_takes))
        assert change.entry_points == -points

    @precondition(lambda self: self.balance.available > 0)
    @rule(fraction=st.floats(0.5, 1.0))
    def spend_most(self, fraction: float) -> None:
        # Spending most of the balance is what makes later reversals reach already-spent points.
        self.debit(max(1, int(self.balance.available * fraction)), "redeem")

    @precondition(lambda self: any(l.status == "pending" for l in self.lots.values()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        pending = sorted((l for l in self.lots.values() if l.status == "pending"), key=lambda l: l.id)
        lot = data.draw(st.sampled_from(pending))
        change = maths.release(self.balance, lot)
        self.balance = maths.apply(self.balance, self.lots, change)
        for entry in self.entries.values():
            if entry[2] == lot.id and entry[1] == "pending":
                entry[1] = "posted"

    @rule(up_to=st.integers(0, 120))
    def expire(self, up_to: int) -> None:
        cutoff = self.clock + timedelta(minutes=up_to - 60)
        due = [l for l in self.lots.values() if l.expires_at is not None and l.expires_at <= cutoff]
        change = maths.expire(due)
        if change.entry_points:
            self.balance = maths.apply(self.balance, self.lots, change)
            self.entries[self._new_id()] = [change.entry_points, "posted", None]

    @precondition(lambda self: any(l.status != "cancelled" for l in self.lots.values()))
    @rule(data=st.data(), fraction=st.floats(0.01, 1.0))
    def reverse(self, data: st.DataObject, fraction: float) -> None:
        candidates = sorted((l for l in self.lots.values() if l.status != "cancelled"), key=lambda l: l.id)
        lot = data.draw(st.sampled_from(candidates))
        left = lot.points - self.lot_reversed[lot.id]
        if lot.status == "pending":
            left = min(left, lot.remaining)
        assume(left > 0)
        amount = max(1, int(left * fraction))
        change = maths.reverse_credit(self.balance, lot, list(self.lots.values()), amount, self.policy)
        status = "pending" if lot.status == "pending" else "posted"
        self.balance = maths.apply(self.balance, self.lots, change)
        self.lot_reversed[lot.id] += amount
        if self.lots[lot.id].status == "cancelled":
            status = "cancelled"
            for entry in self.entries.values():
                if entry[2] == lot.id and entry[1] == "pending":
                    entry[1] = "cancelled"
        self.entries[self._new_id()] = [change.entry_points, status, lot.id]
        if self.policy == "claw_back":
            assert -change.entry_points + change.written_off == amount
        else:
            assert change.entry_points == -amount or status != "posted"

    @precondition(lambda self: bool(set(self.debits) - self.restored))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        entry_id = data.draw(st.sampled_from(sorted(set(self.debits) - self.restored)))
        kind, takes = self.debits[entry_id]
        change = maths.restore(self.balance, takes, kind=kind)  # type: ignore[arg-type]
        self.balance = maths.apply(self.balance, self.lots, change)
        self.restored.add(entry_id)
        self.entries[self._new_id()] = [change.entry_points, "posted", None]

    @invariant()
    def sound(self) -> None:
        assert maths.check_invariants(self.balance, self.lots.values(), policy=self.policy) == []

    @invariant()
    def available_is_sum_of_posted_entries(self) -> None:
        assert self.balance.available == sum(p for p, status, _ in self.entries.values() if status == "posted")


LedgerModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestLedgerModel = LedgerModel.TestCase


# --- table-driven rules ---------------------------------------------------------------------------------------------


def lot(
    points: int,
    remaining: int | None = None,
    *,
    expires: datetime | None = None,
    earned: int = 0,
    status: str = "posted",
) -> maths.LotState:
    return maths.LotState(
        uuid.uuid4(),
        points,
        points if remaining is None else remaining,
        status,  # type: ignore[arg-type]
        "earn",
        T0 + timedelta(days=earned),
        expires,
    )


def test_debit_consumes_oldest_expiring_first_and_never_expiring_last() -> None:
    never = lot(100, earned=0)
    late = lot(100, expires=T0 + timedelta(days=90), earned=1)
    soon = lot(100, expires=T0 + timedelta(days=10), earned=2)
    change = maths.debit(maths.Balance(available=300, earned=300), [never, late, soon], 150, kind="redeem")
    assert change.lot_takes == ((soon.id, 100), (late.id, 50))


def test_debit_same_expiry_takes_oldest_earned_first() -> None:
    a, b = lot(50, earned=5, expires=T0 + timedelta(days=30)), lot(50, earned=1, expires=T0 + timedelta(days=30))
    change = maths.debit(maths.Balance(available=100, earned=100), [a, b], 60, kind="redeem")
    assert change.lot_takes == ((b.id, 50), (a.id, 10))


def test_debit_refuses_to_overdraw() -> None:
    with pytest.raises(maths.InsufficientPointsError) as info:
        maths.debit(maths.Balance(available=99, earned=99), [lot(99)], 100, kind="redeem")
    assert info.value.available == 99


@pytest.mark.parametrize(
    ("available_before", "points", "fills_lot"),
    [(0, 100, 100), (50, 100, 100), (-30, 100, 70), (-100, 100, 0), (-150, 100, 0)],
)
def test_credit_settles_a_negative_balance_first(available_before: int, points: int, fills_lot: int) -> None:
    change = maths.credit(maths.Balance(available=available_before), points, kind="earn", pending=False)
    assert change.new_lot is not None
    assert change.new_lot.remaining == fills_lot
    assert change.settled == points - fills_lot


@pytest.mark.parametrize(
    ("policy", "entry_points", "written_off", "available_after"),
    [("claw_back", -130, 70, 0), ("allow_negative", -200, 0, -70)],
)
def test_reversal_of_spent_points_follows_policy(
    policy: str, entry_points: int, written_off: int, available_after: int
) -> None:
    own = lot(200, remaining=30)
    other = lot(100)
    balance = maths.Balance(available=130, earned=300, redeemed=170)
    change = maths.reverse_credit(balance, own, [other], 200, policy)  # type: ignore[arg-type]
    assert change.entry_points == entry_points
    assert change.written_off == written_off
    assert balance.plus(change.balance).available == available_after
    assert dict(change.lot_takes) == {own.id: 30, other.id: 100}


def test_reversal_of_pending_lot_only_shrinks_pending() -> None:
    own = lot(100, status="pending")
    change = maths.reverse_credit(maths.Balance(pending=100), own, [], 40, "claw_back")
    assert change.balance == maths.Balance(pending=-40)
    assert change.lot_status == ()
    full = maths.reverse_credit(maths.Balance(pending=100), own, [], 100, "claw_back")
    assert full.lot_status == ((own.id, "cancelled"),)


TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("policy", "earned_at", "expected"),
    [
        (maths.ExpiryPolicy("never"), T0, None),
        (maths.ExpiryPolicy("inactivity", 24), T0, None),
        (
            maths.ExpiryPolicy("days_after_earn", 90),
            datetime(2026, 3, 1, 12, tzinfo=UTC),
            datetime(2026, 5, 30, 12, tzinfo=UTC),
        ),
        # Earned 15 Jan (Shanghai) -> expires when February ends, local midnight = 16:00 UTC on 28 Feb.
        (
            maths.ExpiryPolicy("end_of_month_after", 1),
            datetime(2026, 1, 15, 3, tzinfo=UTC),
            datetime(2026, 2, 28, 16, tzinfo=UTC),
        ),
        # 31 Dec 20:00 UTC is already 1 Jan in Shanghai: the local month decides.
        (
            maths.ExpiryPolicy("end_of_month_after", 12),
            datetime(2026, 12, 31, 20, tzinfo=UTC),
            datetime(2028, 1, 31, 16, tzinfo=UTC),
        ),
    ],
)
def test_lot_expiry(policy: maths.ExpiryPolicy, earned_at: datetime, expected: datetime | None) -> None:
    assert policy.lot_expiry(earned_at, TZ) == expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ((2026, 1, 31), 1, (2026, 2, 28)),
        ((2024, 1, 31), 1, (2024, 2, 29)),
        ((2026, 3, 15), -3, (2025, 12, 15)),
        ((2026, 11, 30), 14, (2028, 1, 30)),
    ],
)
def test_add_months_clamps_to_month_end(
    start: tuple[int, int, int], months: int, expected: tuple[int, int, int]
) -> None:
    assert maths.add_months(datetime(*start, tzinfo=UTC), months) == datetime(*expected, tzinfo=UTC)


def test_expiry_policy_needs_a_value() -> None:
    with pytest.raises(ValueError):
        maths.ExpiryPolicy("days_after_earn")


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=20), st.integers(1, 20000))
def test_debit_takes_exactly_what_was_asked(sizes: list[int], points: int) -> None:
    lots = [lot(n, earned=i) for i, n in enumerate(sizes)]
    total = sum(sizes)
    balance = maths.Balance(available=total, earned=total)
    if points > total:
        with pytest.raises(maths.InsufficientPointsError):
            maths.debit(balance, lots, points, kind="redeem")
        return
    change = maths.debit(balance, lots, points, kind="redeem")
    assert sum(t for _, t in change.lot_takes) == points
    by_id = {l.id: l for l in lots}
    assert all(0 < t <= by_id[i].remaining for i, t in change.lot_takes)
