"""The lender's rules as pure functions: schedules (flat and declining balance), allocation of a repayment, days past
due, arrears buckets, the five-category classification, the over-indebtedness check and progressive lending.

Money is ``Decimal`` throughout, rounded to the currency's minor unit; what rounding leaves over goes to the last
instalment, as Apache Fineract does (``LoanApplicationTerms.adjustPrincipalIfLastRepaymentPeriod`` and
``adjustInterestIfLastRepaymentPeriod``).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Literal

Frequency = Literal["weekly", "fortnightly", "monthly"]
Method = Literal["flat", "declining"]
FREQUENCIES: tuple[Frequency, ...] = ("weekly", "fortnightly", "monthly")
METHODS: tuple[Method, ...] = ("flat", "declining")
#: Repayment periods in a year, as Fineract's ``DefaultPaymentPeriodsInOneYearCalculator`` counts them.
PERIODS_PER_YEAR: dict[str, int] = {"weekly": 52, "fortnightly": 26, "monthly": 12}
ZERO = Decimal(0)
Rounder = Callable[[Decimal], Decimal]
HUNDRED = Decimal(100)


def rounder(digits: int, mode: str = "half_even") -> Rounder:
    """A function rounding to ``digits`` places (the currency's minor unit)."""
    quantum = Decimal(1).scaleb(-digits)
    how = ROUND_HALF_EVEN if mode == "half_even" else ROUND_HALF_UP

    def r(value: Decimal) -> Decimal:
        return value.quantize(quantum, rounding=how)

    return r


def add_months(day: date, months: int, anchor_day: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def due_dates(first_due: date, count: int, frequency: Frequency) -> list[date]:
    """Every due date: weekly and fortnightly by 7 and 14 days; monthly on the first due date's day of the month
    (the 31st falls on each month's last day)."""
    if frequency == "monthly":
        return [add_months(first_due, i, first_due.day) for i in range(count)]
    step = 7 if frequency == "weekly" else 14
    return [first_due + timedelta(days=step * i) for i in range(count)]


def first_due_after(disbursed_on: date, frequency: Frequency) -> date:
    """One period after disbursement."""
    return due_dates(disbursed_on, 2, frequency)[1]


@dataclass(frozen=True)
class Terms:
    principal: Decimal
    #: Nominal annual interest rate in percent (12 = 12% a year).
    annual_rate: Decimal
    method: Method
    frequency: Frequency
    instalments: int
    first_due: date
    #: Grace on principal: the first ``grace`` instalments carry interest (and fees) only.
    grace: int = 0
    #: A fee due with each instalment.
    fee: Decimal = ZERO
    digits: int = 2
    rounding: str = "half_even"


@dataclass(frozen=True)
class Instalment:
    no: int
    due_on: date
    principal: Decimal
    interest: Decimal
    fee: Decimal
    #: Principal still owed after this instalment.
    balance: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee


def schedule(terms: Terms) -> list[Instalment]:
    """The repayment schedule (Fineract's cumulative generators, interest "same as repayment period")."""
    if terms.instalments < 1:
        raise ValueError("at least one instalment")
    if not 0 <= terms.grace < terms.instalments:
        raise ValueError("grace must leave at least one instalment with principal")
    if terms.principal <= 0:
        raise ValueError("principal must be positive")
    r = rounder(terms.digits, terms.rounding)
    dates = due_dates(terms.first_due, terms.instalments, terms.frequency)
    n, g = terms.instalments, terms.grace
    with localcontext(Context(prec=34)):
        rate = terms.annual_rate / HUNDRED / PERIODS_PER_YEAR[terms.frequency]
        if terms.method == "flat":
            return _flat(terms, dates, rate, r)
        return _declining(terms, dates, rate, r, n, g)


def _flat(terms: Terms, dates: list[date], rate: Decimal, r: Rounder) -> list[Instalment]:
    """Flat: interest on the whole principal for the whole term, in equal parts; principal in equal parts after the
    grace; each part rounded, the remainder of both on the last instalment."""
    n, g = terms.instalments, terms.grace
    total_interest = r(terms.principal * rate * n)
    interest_each = r(total_interest / n)
    principal_each = r(terms.principal / (n - g))
    out: list[Instalment] = []
    paid_principal = paid_interest = ZERO
    for i, due in enumerate(dates, start=1):
        last = i == n
        principal = r(ZERO) if i <= g else (terms.principal - paid_principal if last else principal_each)
        interest = total_interest - paid_interest if last else interest_each
        paid_principal += principal
        paid_interest += interest
        out.append(Instalment(i, due, principal, interest, r(terms.fee), terms.principal - paid_principal))
    return out


def _declining(terms: Terms, dates: list[date], rate: Decimal, r: Rounder, n: int, g: int) -> list[Instalment]:
    """Declining balance, equal instalments: interest on the balance each period; the instalment (EMI) is
    ``B r / (1 - (1 + r)^-m)`` over the ``m`` periods after the grace, rounded; principal is the instalment less
    the interest, and the last instalment takes whatever principal is left."""
    m = n - g
    balance = terms.principal
    emi = r(balance / m) if rate == 0 else r(balance * rate / (1 - (1 + rate) ** -m))
    out: list[Instalment] = []
    for i, due in enumerate(dates, start=1):
        interest = r(balance * rate)
        if i <= g:
            principal = r(ZERO)
        elif i == n:
            principal = balance
        else:
            principal = min(balance, emi - interest)
        balance -= principal
        out.append(Instalment(i, due, principal, interest, r(terms.fee), balance))
    return out


# --- repayments -----------------------------------------------------------------------------------------------------


@dataclass
class Owed:
    """What one instalment still owes, by part."""

    no: int
    due_on: date
    penalty: Decimal = ZERO
    fee: Decimal = ZERO
    interest: Decimal = ZERO
    principal: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.penalty + self.fee + self.interest + self.principal


@dataclass
class Allocation:
    no: int
    parts: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum(self.parts.values(), ZERO)


def allocate(amount: Decimal, owed: Sequence[Owed], order: Sequence[str]) -> tuple[list[Allocation], Decimal]:
    """Pay ``amount`` into the instalments oldest first (due or not: a prepayment pays the next ones, without
    penalty), each instalment's parts in ``order``. Returns the allocations and what is left over (0 unless the
    amount exceeds everything owed)."""
    left = amount
    out: list[Allocation] = []
    for inst in sorted(owed, key=lambda o: (o.due_on, o.no)):
        if left <= 0:
            break
        parts: dict[str, Decimal] = {}
        for part in order:
            take = min(left, getattr(inst, part))
            if take > 0:
                parts[part] = take
                left -= take
        if parts:
            out.append(Allocation(inst.no, parts))
    return out, left


# --- arrears --------------------------------------------------------------------------------------------------------


def days_past_due(as_of: date, instalments: Sequence[tuple[date, date | None]]) -> int:
    """Days past due at the end of local day ``as_of``: from the first day after the oldest due date not paid off by
    then (``(due_on, paid_off_on)`` pairs)."""
    late = [due for due, paid in instalments if due < as_of and (paid is None or paid > as_of)]
    return (as_of - min(late)).days if late else 0


def bucket(dpd: int, bounds: Sequence[int]) -> str:
    """``current`` for 0, then ``1-30``, ``31-60``, ``61-90``, ``91+`` for bounds (30, 60, 90)."""
    if dpd <= 0:
        return "current"
    low = 1
    for high in bounds:
        if dpd <= high:
            return f"{low}-{high}"
        low = high + 1
    return f"{low}+"


def bucket_labels(bounds: Sequence[int]) -> list[str]:
    labels, low = ["current"], 1
    for high in bounds:
        labels.append(f"{low}-{high}")
        low = high + 1
    return [*labels, f"{low}+"]


FIVE_CATEGORIES = ("normal", "special_mention", "substandard", "doubtful", "loss")


def five_category(dpd: int, bounds: Sequence[int]) -> str:
    """China's five-category loan classification by days past due (bounds (90, 180, 360))."""
    if dpd <= 0:
        return "normal"
    for name, high in zip(FIVE_CATEGORIES[1:4], bounds, strict=True):
        if dpd <= high:
            return name
    return "loss"


# --- lending decisions ----------------------------------------------------------------------------------------------


def monthly_equivalent(instalment: Decimal, frequency: str, r: Rounder) -> Decimal:
    """An instalment as a monthly burden: weekly x 52 / 12, fortnightly x 26 / 12."""
    return r(instalment * PERIODS_PER_YEAR[frequency] / 12)


@dataclass(frozen=True)
class Indebtedness:
    monthly_income: Decimal
    existing_monthly: Decimal
    this_loan_monthly: Decimal
    limit: Decimal

    @property
    def total(self) -> Decimal:
        return self.existing_monthly + self.this_loan_monthly

    @property
    def over(self) -> bool:
        return self.total > self.limit


def indebtedness(
    income: Decimal, existing_monthly: Decimal, this_loan_monthly: Decimal, share: Decimal, r: Rounder
) -> Indebtedness:
    return Indebtedness(income, existing_monthly, this_loan_monthly, r(income * share))


def next_cycle_limit(principal: Decimal, increase_percent: int, product_max: Decimal | None, r: Rounder) -> Decimal:
    """Progressive lending: after a clean cycle the next loan may be ``increase_percent`` larger, up to the maximum."""
    limit = r(principal * (HUNDRED + increase_percent) / HUNDRED)
    return min(limit, product_max) if product_max is not None else limit


def rebate(total_interest: Decimal, annual_rate: Decimal, points: Decimal, r: Rounder) -> Decimal:
    """The interest a perfectly repaid loan may get back: ``points`` of the annual rate (3 of 12%: a quarter)."""
    if annual_rate <= 0:
        return r(ZERO)
    return r(total_interest * min(points, annual_rate) / annual_rate)
