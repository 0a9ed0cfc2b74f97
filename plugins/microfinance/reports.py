"""Portfolio at risk and the arrears ageing table at any past date, computed set-based from the repayment history.

At the end of local day ``as_of``: a loan counts if it was disbursed by then and neither closed nor written off
before; its outstanding principal is the principal less what repayments made by then (and not reversed) paid into
principal; its days past due run from the day after the oldest due date not paid off by then. PAR(x) is the
outstanding principal of loans more than x days past due over the gross outstanding principal: by balance, not count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.microfinance import rules

ZERO = Decimal(0)


def days_between(later: str, earlier: str, dialect: str) -> str:
    """SQL for whole days from ``earlier`` to ``later`` (two date expressions)."""
    if dialect == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def date_param(name: str, dialect: str) -> str:
    return f"CAST(:{name} AS DATE)" if dialect == "postgresql" else f"date(:{name})"


def per_loan_sql(dialect: str) -> str:
    """One row per loan counted at ``:as_of``: its outstanding principal and days past due."""
    as_of = date_param("as_of", dialect)
    return f"""
        WITH counted AS (
            SELECT l.id, l.officer, l.group_id, l.product_id, l.principal
            FROM microfinance_loans l
            WHERE l.tenant_id = :tenant AND l.disbursed_on IS NOT NULL AND l.disbursed_on <= {as_of}
              AND (l.closed_on IS NULL OR l.closed_on > {as_of})
              AND (l.written_off_on IS NULL OR l.written_off_on > {as_of})
        ),
        paid AS (
            SELECT a.loan_id, SUM(a.principal) AS principal
            FROM microfinance_allocations a
            WHERE a.tenant_id = :tenant AND a.paid_on <= {as_of} AND a.reversed = :false
            GROUP BY a.loan_id
        ),
        late AS (
            SELECT i.loan_id, MIN(i.due_on) AS oldest
            FROM microfinance_instalments i
            WHERE i.tenant_id = :tenant AND i.due_on < {as_of}
              AND (i.paid_off_on IS NULL OR i.paid_off_on > {as_of})
            GROUP BY i.loan_id
        )
        SELECT c.id, c.officer, c.group_id, c.product_id,
               c.principal - COALESCE(p.principal, 0) AS outstanding,
               COALESCE({days_between(as_of, "late.oldest", dialect)}, 0) AS dpd
        FROM counted c
        LEFT JOIN paid p ON p.loan_id = c.id
        LEFT JOIN late ON late.loan_id = c.id
    """


def _bucket_case(bounds: list[int]) -> str:
    whens = " ".join(f"WHEN dpd <= {int(b)} THEN {n}" for n, b in enumerate(bounds, start=1))
    return f"CASE WHEN dpd <= 0 THEN 0 {whens} ELSE {len(bounds) + 1} END"


def rollup_sql(dialect: str, bounds: list[int]) -> str:
    """The per-loan rows summed by officer, group, product and bucket: a few hundred rows for any portfolio."""
    return f"""
        WITH loans AS ({per_loan_sql(dialect)})
        SELECT loans.officer, loans.group_id, g.centre, loans.product_id, {_bucket_case(bounds)} AS bucket,
               COUNT(*) AS n, SUM(outstanding) AS outstanding,
               SUM(CASE WHEN dpd > :days THEN outstanding ELSE 0 END) AS at_risk,
               SUM(CASE WHEN dpd > :days THEN 1 ELSE 0 END) AS n_at_risk
        FROM loans
        LEFT JOIN microfinance_groups g ON g.tenant_id = :tenant AND g.id = loans.group_id
        GROUP BY loans.officer, loans.group_id, g.centre, loans.product_id, {_bucket_case(bounds)}
    """


@dataclass
class Line:
    loans: int = 0
    outstanding: Decimal = ZERO
    at_risk: Decimal = ZERO
    loans_at_risk: int = 0

    def add(self, n: int, outstanding: Decimal, at_risk: Decimal, n_at_risk: int) -> None:
        self.loans += n
        self.outstanding += outstanding
        self.at_risk += at_risk
        self.loans_at_risk += n_at_risk

    def as_dict(self, key: str | None = None, name: str | None = None) -> dict[str, Any]:
        ratio = (self.at_risk / self.outstanding) if self.outstanding else ZERO
        out: dict[str, Any] = {
            "loans": self.loans,
            "outstanding_principal": str(self.outstanding),
            "at_risk_principal": str(self.at_risk),
            "loans_at_risk": self.loans_at_risk,
            "par": str(ratio.quantize(Decimal("0.0001"))),
        }
        if key is not None:
            out = {name or "key": key} | out
        return out


@dataclass
class Report:
    as_of: date
    days: int
    portfolio: Line = field(default_factory=Line)
    by: dict[str, dict[str, Line]] = field(default_factory=dict)
    ageing: dict[str, Line] = field(default_factory=dict)


async def par(
    session: AsyncSession, tenant_id: uuid.UUID, as_of: date, days: int, bounds: list[int], currency_digits: int
) -> Report:
    dialect = session.get_bind().dialect.name
    rows = await session.execute(
        text(rollup_sql(dialect, bounds)),
        {
            "tenant": tenant_id if dialect == "postgresql" else tenant_id.hex,
            "as_of": as_of.isoformat() if dialect != "postgresql" else as_of,
            "days": days,
            "false": False,
        },
    )
    labels = rules.bucket_labels(bounds)
    report = Report(as_of, days, ageing={label: Line() for label in labels})
    for name in ("officer", "group", "centre", "product"):
        report.by[name] = {}
    quantum = Decimal(1).scaleb(-currency_digits)
    for officer, group_id, centre, product_id, bucket, n, outstanding, at_risk, n_at_risk in rows:
        money = Decimal(str(outstanding or 0)).quantize(quantum)
        risk = Decimal(str(at_risk or 0)).quantize(quantum)
        values = (int(n), money, risk, int(n_at_risk or 0))
        report.portfolio.add(*values)
        report.ageing[labels[int(bucket)]].add(*values)
        for name, key in (
            ("officer", officer),
            ("group", _id(group_id)),
            ("centre", centre),
            ("product", _id(product_id)),
        ):
            report.by[name].setdefault(str(key) if key is not None else "", Line()).add(*values)
    return report


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(uuid.UUID(str(value)))
