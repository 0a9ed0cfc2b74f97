"""The lender's pure rules against hand-computed tables: schedules with their rounding, allocation order, days past
due, buckets and the five categories."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from plugins.microfinance import rules
from plugins.microfinance.rules import Owed, Terms


def rows(terms: Terms) -> list[tuple[str, str, str, str]]:
    return [(i.due_on.isoformat(), str(i.principal), str(i.interest), str(i.balance)) for i in rules.schedule(terms)]


def test_flat_monthly_splits_evenly_and_puts_the_remainder_on_the_last_instalment() -> None:
    # 10,000 at 12% flat for 12 months: interest 10,000 x 1% x 12 = 1,200, 100.00 a month; principal 833.33 a month,
    # the last 10,000 - 11 x 833.33 = 833.37.
    table = rules.schedule(Terms(D(10000), D(12), "flat", "monthly", 12, date(2027, 1, 31)))
    assert [i.principal for i in table] == [D("833.33")] * 11 + [D("833.37")]
    assert [i.interest for i in table] == [D("100.00")] * 12
    assert sum(i.principal for i in table) == D(10000)
    # due on the 31st, or the month's last day
    assert [i.due_on for i in table[:3]] == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)]
    assert table[-1].balance == 0


def test_flat_weekly_rounds_each_part_and_the_last_takes_both_remainders() -> None:
    # 1,000 at 10% flat for 52 weeks: interest 100.00; 100 / 52 = 1.923... -> 1.92, last 100 - 51 x 1.92 = 2.08;
    # principal 1,000 / 52 = 19.2307... -> 19.23, last 1,000 - 51 x 19.23 = 19.27.
    table = rules.schedule(Terms(D(1000), D(10), "flat", "weekly", 52, date(2027, 1, 7)))
    assert {i.interest for i in table[:-1]} == {D("1.92")} and table[-1].interest == D("2.08")
    assert {i.principal for i in table[:-1]} == {D("19.23")} and table[-1].principal == D("19.27")
    assert table[1].due_on == date(2027, 1, 14)
    assert sum(i.interest for i in table) == D("100.00")


def test_declining_balance_equal_instalments_by_hand() -> None:
    # 1,000 at 12% a year, 3 monthly: r = 1%; EMI = 1000 x 0.01 / (1 - 1.01^-3) = 340.0221 -> 340.02.
    #  1: interest 10.00, principal 330.02, balance 669.98
    #  2: interest 6.6998 -> 6.70, principal 333.32, balance 336.66
    #  3: interest 3.3666 -> 3.37, principal 336.66 (what is left): 340.03
    assert rows(Terms(D(1000), D(12), "declining", "monthly", 3, date(2027, 2, 15))) == [
        ("2027-02-15", "330.02", "10.00", "669.98"),
        ("2027-03-15", "333.32", "6.70", "336.66"),
        ("2027-04-15", "336.66", "3.37", "0.00"),
    ]


def test_declining_with_grace_and_a_fee_and_half_up() -> None:
    # 2,000 at 24% a year, fortnightly (26 a year): r = 0.923077%; 1 fortnight of grace (interest only: 18.4615
    # -> 18.46), then EMI over 2: 18.4615 / (1 - 1.00923077^-2) = 18.4615 / 0.0182091 = 1013.87; period 2: interest
    # 18.46, principal 995.41, balance 1004.59; period 3: interest 9.2731 -> 9.27, principal 1004.59.
    table = rules.schedule(
        Terms(D(2000), D(24), "declining", "fortnightly", 3, date(2027, 1, 14), grace=1, fee=D("5"), rounding="half_up")
    )
    assert [(i.principal, i.interest, i.fee) for i in table] == [
        (D(0), D("18.46"), D("5.00")),
        (D("995.41"), D("18.46"), D("5.00")),
        (D("1004.59"), D("9.27"), D("5.00")),
    ]
    assert sum(i.principal for i in table) == D(2000)


def test_zero_rate_declining_is_straight_principal() -> None:
    table = rules.schedule(Terms(D(100), D(0), "declining", "monthly", 3, date(2027, 1, 1)))
    assert [i.principal for i in table] == [D("33.33"), D("33.33"), D("33.34")]
    assert {i.interest for i in table} == {D("0.00")}


def test_zero_decimal_currency_rounds_to_whole_units() -> None:
    table = rules.schedule(Terms(D(1000), D(10), "flat", "monthly", 3, date(2027, 1, 1), digits=0))
    assert [i.principal for i in table] == [D(333), D(333), D(334)]
    assert [i.interest for i in table] == [D(8), D(8), D(9)]  # 25 in all: 8.33 -> 8, last 25 - 16


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        (Terms(D(100), D(1), "flat", "monthly", 0, date(2027, 1, 1)), "instalment"),
        (Terms(D(100), D(1), "flat", "monthly", 2, date(2027, 1, 1), grace=2), "grace"),
        (Terms(D(0), D(1), "flat", "monthly", 2, date(2027, 1, 1)), "principal"),
    ],
)
def test_impossible_terms_are_refused(terms: Terms, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        rules.schedule(terms)


def test_allocation_pays_penalties_fees_interest_principal_oldest_first() -> None:
    owed = [
        Owed(2, date(2027, 2, 1), penalty=D(0), fee=D(5), interest=D(10), principal=D(100)),
        Owed(1, date(2027, 1, 1), penalty=D(3), fee=D(5), interest=D(10), principal=D(100)),
    ]
    allocations, left = rules.allocate(D(130), owed, ["penalty", "fee", "interest", "principal"])
    assert [(a.no, a.parts) for a in allocations] == [
        (1, {"penalty": D(3), "fee": D(5), "interest": D(10), "principal": D(100)}),
        (2, {"fee": D(5), "interest": D(7)}),
    ]
    assert left == 0
    # another order: principal before interest
    allocations, _ = rules.allocate(D(110), owed, ["principal", "interest", "fee", "penalty"])
    assert allocations[0].parts == {"principal": D(100), "interest": D(10)}


def test_an_overpayment_is_what_is_left() -> None:
    _, left = rules.allocate(D(50), [Owed(1, date(2027, 1, 1), principal=D(40))], ["principal"])
    assert left == D(10)


def test_days_past_due_from_the_first_day_after_the_due_date() -> None:
    inst = [(date(2027, 1, 31), None), (date(2027, 2, 28), None)]
    assert rules.days_past_due(date(2027, 1, 31), inst) == 0
    assert rules.days_past_due(date(2027, 2, 1), inst) == 1
    assert rules.days_past_due(date(2027, 3, 2), inst) == 30
    # paid on 5 Feb: not late on the 5th, 4 days late on the 4th; then the February one counts
    paid = [(date(2027, 1, 31), date(2027, 2, 5)), (date(2027, 2, 28), None)]
    assert rules.days_past_due(date(2027, 2, 4), paid) == 4
    assert rules.days_past_due(date(2027, 2, 5), paid) == 0
    assert rules.days_past_due(date(2027, 3, 1), paid) == 1


@pytest.mark.parametrize(
    ("dpd", "bucket", "category"),
    [
        (0, "current", "normal"),
        (1, "1-30", "special_mention"),
        (30, "1-30", "special_mention"),
        (31, "31-60", "special_mention"),
        (90, "61-90", "special_mention"),
        (91, "91+", "substandard"),
        (181, "91+", "doubtful"),
        (361, "91+", "loss"),
    ],
)
def test_buckets_and_five_categories(dpd: int, bucket: str, category: str) -> None:
    assert rules.bucket(dpd, [30, 60, 90]) == bucket
    assert rules.five_category(dpd, [90, 180, 360]) == category


def test_tunable_buckets() -> None:
    assert rules.bucket_labels([7, 30]) == ["current", "1-7", "8-30", "31+"]
    assert rules.bucket(8, [7, 30]) == "8-30"


def test_over_indebtedness_and_progressive_lending() -> None:
    r = rules.rounder(2)
    weekly = rules.monthly_equivalent(D(100), "weekly", r)
    assert weekly == D("433.33")
    check = rules.indebtedness(D(2000), D("600"), weekly, D("0.5"), r)
    assert check.limit == D(1000) and check.over
    assert not rules.indebtedness(D(2000), D("500"), D("500"), D("0.5"), r).over
    assert rules.next_cycle_limit(D(10000), 20, D(50000), r) == D(12000)
    assert rules.next_cycle_limit(D(45000), 20, D(50000), r) == D(50000)
    assert rules.rebate(D(1200), D(12), D(3), r) == D(300)
