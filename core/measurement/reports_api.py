"""HTTP: the measurement reports (``/v1/reports/{name}``) as JSON or CSV, their charts (SVG, PNG, the Vega-Lite
spec), and the read-only dashboard page (with a ``reports:read`` key, or a short-lived signed link).

Reports are reads: they keep working while a tenant is suspended for billing.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.care.optouts import link_secret, public_url
from core.care.protection_models import PlatformSecret
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.db.engine import tenant_session
from core.errors import InvalidLink, LinkExpired, NotFound, ValidationFailed
from core.exports.service import cell
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.measurement import charts, reports
from core.measurement import settings as measurement_settings
from core.program.settings import ProgramSettings, load_program_settings
from core.runtime import Runtime
from core.validation import AwareDatetime

CSV = "text/csv"
DASHBOARD_SALT = "fealty.reports.dashboard.v1"
#: The platform secret that signs links (unsubscribe links too; a different salt keeps the two apart).
SECRET_NAME = "care_link_secret"
MAX_LINK_MINUTES = 24 * 60
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


class ReportOut(msgspec.Struct):
    report: str
    generated_at: datetime
    summary: dict[str, Any]
    columns: list[str]
    items: list[dict[str, Any]]


class LinkIn(msgspec.Struct, forbid_unknown_fields=True):
    #: How long the link works (1 minute to 24 hours).
    expires_in_minutes: Annotated[int, Meta(ge=1, le=MAX_LINK_MINUTES)] = 15


class LinkOut(msgspec.Struct):
    url: str
    expires_at: datetime


def to_csv(report: reports.Report) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(report.columns)
    for item in report.items:
        writer.writerow([cell(item.get(c)) for c in report.columns])
    return buffer.getvalue().encode()


async def build(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    program: ProgramSettings,
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
    config, last_run = await measurement_settings.load(db, tenant_id)
    return await builder(db, reports.Request(tenant_id, program, config, now, as_of, months, limit, last_run))


async def _chart_spec(db: AsyncSession, tenant_id: uuid.UUID, program: ProgramSettings, name: str) -> dict[str, Any]:
    if name not in charts.CHARTS:
        raise NotFound(f"No chart for '{name}'. Charts: {', '.join(charts.CHARTS)}.", field="name")
    return charts.spec(await build(db, tenant_id, program, name))


async def _secret_in(db: AsyncSession, runtime: Runtime) -> str:
    """The platform's link-signing secret (the one :func:`link_secret` keeps) read, or made, in the request's own
    transaction (on SQLite a second writer would wait for this request's lock)."""
    if runtime.settings.care_link_secret:
        return runtime.settings.care_link_secret
    secrets_table = table_of(PlatformSecret)
    query = select(secrets_table.c.value).where(secrets_table.c.name == SECRET_NAME)
    value = (await db.execute(query)).scalar_one_or_none()
    if value is None:
        dialect = postgresql if bulk.is_postgres(db) else sqlite
        await db.execute(
            dialect.insert(secrets_table)
            .values(name=SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = (await db.execute(query)).scalar_one()
    return str(value)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=DASHBOARD_SALT)


async def _tenant_of(runtime: Runtime, token: str) -> uuid.UUID:
    if not token or len(token) > 1000:
        raise InvalidLink("This dashboard link is not valid.", field="token")
    secret = await link_secret(runtime.sessionmaker, runtime.settings)
    try:
        claims: Any = _serializer(secret).loads(token, max_age=MAX_LINK_MINUTES * 60)
        tenant_id, expires = uuid.UUID(hex=claims["t"]), float(claims["e"])
    except SignatureExpired:
        raise LinkExpired("This dashboard link has expired; ask for a new one.", field="token") from None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise InvalidLink("This dashboard link is not valid.", field="token") from None
    if utcnow().timestamp() > expires:
        raise LinkExpired("This dashboard link has expired; ask for a new one.", field="token")
    return tenant_id


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{title}</title>
<style>
body{{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2rem auto;max-width:76rem;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .cards{{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0 2rem}}
.card{{border:1px solid #ddd;border-radius:.5rem;padding:.6rem .9rem;min-width:10rem}}
.card b{{display:block;font-size:1.3rem}} .charts{{display:flex;flex-wrap:wrap;gap:1.5rem}}
figure{{margin:0;border:1px solid #eee;border-radius:.5rem;padding:.5rem}} figcaption{{font-size:.85rem;color:#666}}
</style></head><body><h1>{title}</h1><p>As of {as_of}. Figures from the last loyalty run ({computed}).</p>
<section class="cards">{cards}</section><section class="charts">{figures}</section></body></html>"""


#: The dashboard's reports, the slowest first: each is built, and its chart drawn, as a worker becomes free.
#: (The loyalty report holds the loyalty types' rows: their chart is drawn from it.)
DASHBOARD_REPORTS = ("churn-risk", "liability", "loyalty", "rfm", "tiers", "value-concentration")
#: Connections a dashboard builds its reports on at once on PostgreSQL: the request's own and two more.
DASHBOARD_CONNECTIONS = 3


async def dashboard_reports(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, program: ProgramSettings
) -> dict[str, tuple[reports.Report, str]]:
    """Every report the dashboard shows with its chart's SVG (``loyalty`` has none; ``loyalty-types`` comes from it).

    On PostgreSQL the reports are built on :data:`DASHBOARD_CONNECTIONS` connections at once, each further one in a
    read-only transaction of its own as the tenant (so each report reads its own snapshot, taken within the same
    request), and the charts are drawn in threads meanwhile; SQLite's one file gains nothing from that, and builds them
    one after another on the request's own transaction."""
    waiting = list(reversed(DASHBOARD_REPORTS))
    found: dict[str, tuple[reports.Report, str]] = {}

    async def draw(report: reports.Report) -> None:
        svg = await charts.svg(charts.spec(report)) if report.name in charts.CHARTS else ""
        found[report.name] = (report, svg)

    async def work(session: AsyncSession) -> None:
        while waiting:
            report = await build(session, tenant_id, program, waiting.pop())
            await draw(report)
            if report.name == "loyalty":
                await draw(reports.loyalty_types_of(report))

    async def work_apart() -> None:
        async with tenant_session(sessionmaker, tenant_id, writes=False) as session:
            await work(session)

    if not bulk.is_postgres(db):
        await work(db)
        return found
    apart = DASHBOARD_CONNECTIONS - 1
    tasks = [asyncio.ensure_future(work(db)), *(asyncio.ensure_future(work_apart()) for _ in range(apart))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # One report failed: the others stop before the request's transaction ends under them; the first error
        # is the answer.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return found


async def dashboard_page(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, program: ProgramSettings
) -> Response[str]:
    """The read-only page: headline figures and every chart, rendered here (inline SVG, no script)."""
    found = await dashboard_reports(db, sessionmaker, tenant_id, program)
    s, li = found["loyalty"][0].summary, found["liability"][0].summary

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value:.0%}"

    cards = [
        ("Members measured", str(s["members"])),
        ("Active in the window", str(s["active_in_window"])),
        ("Churn rate", pct(s["churn_rate"])),
        ("Repeat purchase rate", pct(s["repeat_purchase_rate"])),
        ("Outstanding points", f"{li['outstanding_points']:,}"),
        ("Liability net of breakage", f"{li['net_liability_value']} {li['currency']}"),
    ]
    figures = [
        f'<figure data-chart="{name}">{found[name][1]}<figcaption>{html.escape(name)}</figcaption></figure>'
        for name in charts.CHARTS
    ]
    body = _PAGE.format(
        title="Loyalty dashboard",
        as_of=html.escape(utcnow().strftime("%Y-%m-%d %H:%M UTC")),
        computed=html.escape(str(s["computed_at"] or "not run yet")),
        cards="".join(f'<div class="card">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in cards),
        figures="".join(figures),
    )
    return Response(body, media_type="text/html; charset=utf-8", headers=NO_STORE)


class ReportsController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    opt = {"scope": "reports:read"}

    @get("/dashboard", operation_id="getReportsDashboard", media_type="text/html")
    async def dashboard(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, runtime: CurrentRuntime
    ) -> Response[str]:
        """The read-only report page for tenant admins (HTML, every chart inline as SVG)."""
        assert principal.tenant_id is not None
        return await dashboard_page(db, runtime.sessionmaker, principal.tenant_id, program)

    @post("/links", operation_id="createReportsLink", status_code=201)
    async def link(
        self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime, data: JSONBody[LinkIn]
    ) -> LinkOut:
        """A short-lived signed link to the dashboard that works without an API key (default 15 minutes, at most
        24 hours): share it with a colleague; it shows nothing but the dashboard."""
        assert principal.tenant_id is not None
        expires = utcnow() + timedelta(minutes=data.expires_in_minutes)
        secret = await _secret_in(db, runtime)
        token = _serializer(secret).dumps({"t": principal.tenant_id.hex, "e": expires.timestamp()})
        return LinkOut(f"{public_url(runtime.settings)}/v1/reports/dashboard/shared?token={token}", expires)

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
        assert principal.tenant_id is not None
        csv_wanted = name.endswith(".csv")
        report = await build(
            db, principal.tenant_id, program, name.removesuffix(".csv"), as_of=as_of, months=months, limit=limit
        )
        if csv_wanted:
            filename = f"{report.name}-{utcnow():%Y%m%dT%H%M%SZ}.csv"
            return Response(
                to_csv(report),
                media_type=CSV,
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        return Response(ReportOut(report.name, utcnow(), report.summary, report.columns, report.items))

    @get("/{name:str}/chart.json", operation_id="getReportChartSpec")
    async def chart_spec(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, name: FromPath[str]
    ) -> dict[str, Any]:
        """The chart's Vega-Lite spec (data inline), for a tenant's own dashboard."""
        assert principal.tenant_id is not None
        return await _chart_spec(db, principal.tenant_id, program, name)

    @get("/{name:str}/chart.svg", operation_id="getReportChartSvg", media_type="image/svg+xml")
    async def chart_svg(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, name: FromPath[str]
    ) -> Response[str]:
        """The chart rendered as SVG: ``tiers``, ``rfm``, ``loyalty-types``, ``churn-risk``, ``value-concentration``,
        ``liability``."""
        assert principal.tenant_id is not None
        chart = await _chart_spec(db, principal.tenant_id, program, name)
        return Response(await charts.svg(chart), media_type="image/svg+xml")

    @get("/{name:str}/chart.png", operation_id="getReportChartPng", media_type="image/png")
    async def chart_png(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, name: FromPath[str]
    ) -> Response[bytes]:
        """The chart rendered as PNG (twice the SVG's pixel size)."""
        assert principal.tenant_id is not None
        chart = await _chart_spec(db, principal.tenant_id, program, name)
        return Response(await charts.png(chart), media_type="image/png")


class SharedDashboardController(Controller):
    path = "/v1/reports/dashboard/shared"
    tags = ["reports"]

    @get(operation_id="getSharedDashboard", opt={"auth": "none", "problems": (400,)}, media_type="text/html")
    async def shared(self, runtime: CurrentRuntime, token: FromQuery[str] = "") -> Response[str]:
        """The dashboard through a signed link from ``POST /v1/reports/links`` (no API key; read-only)."""
        tenant_id = await _tenant_of(runtime, token)
        async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as db:
            try:
                program = await load_program_settings(db, tenant_id)
            except NoResultFound:  # the tenant is gone
                raise InvalidLink("This dashboard link is not valid.", field="token") from None
            return await dashboard_page(db, runtime.sessionmaker, tenant_id, program)
