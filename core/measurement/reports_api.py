"""HTTP: the measurement reports (``/v1/reports/{name}``), as JSON or CSV, with a ``reports:read`` key.

Reports are reads: they keep working while a tenant is suspended for billing.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from core.exports.service import cell
from core.http.deps import CurrentPrincipal, CurrentProgram, Db
from core.measurement import reports
from core.measurement import settings as measurement_settings
from core.validation import AwareDatetime

CSV = "text/csv"


class ReportOut(msgspec.Struct):
    report: str
    generated_at: datetime
    summary: dict[str, Any]
    columns: list[str]
    items: list[dict[str, Any]]


def to_csv(report: reports.Report) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(report.columns)
    for item in report.items:
        writer.writerow([cell(item.get(c)) for c in report.columns])
    return buffer.getvalue().encode()


async def build(
    db: Any,
    principal: Any,
    program: Any,
    name: str,
    *,
    as_of: datetime | None = None,
    months: int = 12,
    limit: int = 100,
) -> reports.Report:
    builder = reports.REPORTS.get(name)
    if builder is None:
        raise NotFound(f"No report '{name}'. Reports: {', '.join(reports.REPORTS)}.", field="name")
    now = utcnow()
    if as_of is not None and as_of > now:
        raise ValidationFailed("as_of cannot be in the future.", field="as_of")
    assert principal.tenant_id is not None
    config, _ = await measurement_settings.load(db, principal.tenant_id)
    request = reports.Request(principal.tenant_id, program, config, now, as_of, months, limit)
    return await builder(db, request)


class ReportsController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    opt = {"scope": "reports:read"}

    @get("/{name:str}", operation_id="getReport")
    async def get_report(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        name: FromPath[str],
        as_of: FromQuery[AwareDatetime | None] = None,
        months: Annotated[int, QueryParameter(ge=1, le=120, description="Months of liability movement.")] = 12,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Rows of a member list at most.")] = 100,
    ) -> Response[Any]:
        """A report as JSON (``/v1/reports/rfm``) or CSV (``/v1/reports/rfm.csv``): ``loyalty``, ``loyalty-types``,
        ``rfm``, ``churn-risk``, ``key-members``, ``value-concentration``, ``tiers``, ``liability``
        (``as_of``, ``months`` of movement). Member lists hold at most ``limit`` rows."""
        csv_wanted = name.endswith(".csv")
        report = await build(db, principal, program, name.removesuffix(".csv"), as_of=as_of, months=months, limit=limit)
        if csv_wanted:
            filename = f"{report.name}-{utcnow():%Y%m%dT%H%M%SZ}.csv"
            return Response(
                to_csv(report),
                media_type=CSV,
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        return Response(ReportOut(report.name, utcnow(), report.summary, report.columns, report.items))
