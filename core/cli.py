"""The ``fealty`` command: serve, worker, migrate, config, platform-key, demo, billing, citus-ddl."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from core.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from core.demo import DemoRun
    from core.runtime import Runtime


class _Fealty(click.Group):
    """The command group: wrong settings end any command with the list of wrong variables, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(f"fealty: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Fealty)
def main() -> None:
    """Fealty: a multi-tenant loyalty platform."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
def config(as_json: bool) -> None:
    """Print the effective settings (secrets masked) and where each comes from; refuse wrong ones."""
    settings = get_settings()
    sources = settings.sources()
    if as_json:
        click.echo(json.dumps(dict(settings.effective()), indent=2, default=list))
        return
    for name, value in settings.effective():
        shown = ",".join(value) if isinstance(value, tuple) else "" if value is None else value
        if isinstance(shown, bool):
            shown = str(shown).lower()
        click.echo(f"{Settings.variable(name)}={shown}  # {sources[name]}")


@main.command()
@click.option("--host", default=None, help="Interface to listen on (FEALTY_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (FEALTY_PORT, default 8000).")
@click.option("--workers", default=1, type=int, show_default=True, help="Worker processes (PostgreSQL only).")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API. On SQLite (the default) migrations are applied and the worker runs in-process."""
    import uvicorn

    from core import serving
    from core.logging import configure_logging

    settings = get_settings()
    # Before anything logs (the migrations, uvicorn's supervisor): every line in one format.
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.migrates_on_start:
        _migrate(settings.owner_database_url)
    if not settings.platform_key:
        _print_new_platform_key()
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError("Several worker processes need PostgreSQL (FEALTY_DATABASE_URL).")
    options: dict[str, Any] = {
        "log_level": settings.log_level.lower(),
        # uvicorn's own logging config would print plain text: its loggers propagate to core.logging's handler.
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
    }
    host, port = host or settings.host, port or settings.port
    if workers > 1:
        _multiprocess_metrics(settings.metrics_dir)
        if serving.reuse_port_supported():
            # A listening socket per worker (SO_REUSEPORT): the kernel spreads the connections over the workers.
            sys.exit(serving.serve("core.asgi:app", host, port, workers, options))
    uvicorn.run("core.asgi:app", host=host, port=port, workers=workers, **options)


def _multiprocess_metrics(directory: str) -> None:
    """Prometheus multiprocess mode for ``--workers N``: each process writes its samples to files in one directory
    and every scrape of ``/metrics``, whichever process answers it, adds up all of them. The directory is emptied
    first (samples of processes of a previous run would count)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="fealty-metrics-"))
    if path.exists():
        for entry in path.glob("*.db"):
            entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    if not directory:
        import atexit

        atexit.register(shutil.rmtree, path, True)


def _migrate(url: str) -> None:
    from core.db.migrate import upgrade

    upgrade(url)


def _print_new_platform_key(rotate: bool = False) -> None:
    from core.db.engine import create_engine, create_sessionmaker
    from core.tenancy.service import ensure_platform_key

    async def run() -> str | None:
        engine = create_engine(get_settings())
        try:
            _, key = await ensure_platform_key(create_sessionmaker(engine), generate=True, rotate=rotate)
            return key
        finally:
            await engine.dispose()

    key = asyncio.run(run())
    if not key:
        return
    if get_settings().log_json:
        # One JSON line like every other (written directly: the log processors would redact the key).
        notice = {
            "event": "platform_key_generated",
            "level": "warning",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "detail": "Shown once and stored only as a hash: keep it safe (or set FEALTY_PLATFORM_KEY).",
            "platform_operator_key": key,
        }
        click.echo(json.dumps(notice))
        sys.stdout.flush()
        return
    click.secho("A platform operator key was generated. It is shown once and stored only as a hash:", bold=True)
    click.secho(f"  {key}", fg="yellow")
    click.echo("Keep it safe (or set FEALTY_PLATFORM_KEY to choose your own).")


@main.command()
def migrate() -> None:
    """Apply every pending migration (core and installed plugins) with the owner role."""
    settings = get_settings()
    _migrate(settings.owner_database_url)
    click.echo("Database is at the latest migration.")


@main.command("citus-ddl")
def citus_ddl() -> None:
    """Print the Citus DDL distributing every tenant table on tenant_id (co-located) and making every global table a
    reference table, from the models of core and the installed plugins."""
    from core.db.citus import schema_distribution

    click.echo(schema_distribution().sql(), nl=False)


@main.command("platform-key")
@click.option("--rotate", is_flag=True, help="Replace the stored key with a new one (restart the API afterwards).")
def platform_key(rotate: bool) -> None:
    """Generate the platform operator key if none exists (or rotate it) and print it once."""
    if get_settings().platform_key:
        raise click.UsageError("FEALTY_PLATFORM_KEY is set: the platform key comes from the environment.")
    _print_new_platform_key(rotate=rotate)


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve this worker's Prometheus metrics (FEALTY_WORKER_METRICS_PORT).",
)
def worker(once: bool, metrics_port: int | None) -> None:
    """Run due background work (release pending points, expiry, deliveries) until stopped."""
    from core.logging import configure_logging
    from core.plugin.manager import PluginManager
    from core.runtime import Runtime
    from core.worker import run_forever, tick

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    if port and not once:
        from prometheus_client import start_http_server

        # Its own port: a worker serves no HTTP otherwise, and each worker process is scraped on its own.
        start_http_server(port, addr=settings.host)

    async def run() -> None:
        runtime = Runtime.create(settings, PluginManager.for_settings(settings))
        try:
            if once:
                report = await tick(runtime)
                click.echo(
                    f"ran={report.ran} failed={report.failed} "
                    + " ".join(f"{kind}={count}" for kind, count in sorted(report.kinds.items()))
                )
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_forever(runtime, stop)
        finally:
            await runtime.close()

    asyncio.run(run())


@main.command()
@click.option(
    "--prefix",
    default="demo",
    show_default=True,
    help="Slug prefix of the demo tenants (<prefix>-coffee, <prefix>-hotel, ...).",
)
def demo(prefix: str) -> None:
    """Seed demo tenants through the API (core's coffee chain, and each installed vertical plugin's own: a hotel
    group, a fuel network...) and print what to try."""
    import time

    from core.demo import DemoAlreadySeeded, run_demo

    settings = get_settings()
    started = time.monotonic()
    try:
        run = asyncio.run(run_demo(settings, prefix=prefix))
    except DemoAlreadySeeded as exc:
        click.secho(f"{exc} Nothing was changed.", fg="yellow", bold=True)
        if settings.sqlite_path is not None:
            files = " ".join(f"{settings.sqlite_path}{suffix}" for suffix in ("", "-wal", "-shm"))
            click.echo(f"To start afresh, stop `make serve` and delete the database: rm -f {files}")
        else:
            click.echo("To start afresh, recreate the database (FEALTY_DATABASE_URL).")
        click.echo(f"Or seed another set beside it: fealty demo --prefix {prefix}2")
        sys.exit(1)
    click.echo(_demo_report(run, time.monotonic() - started))


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _demo_report(run: DemoRun, seconds: float) -> str:
    """What ``fealty demo`` prints: the tenants, the keys, and curl commands to paste once ``make serve`` runs."""
    result = run.result
    lines = [click.style(f"Seeded the demo into {run.database_url} in {seconds:.1f} s:", bold=True), ""]
    for t in result.tenants:
        c = t.counts
        kind = f"plugin {t.plugin}" if t.plugin else "core only"
        lines.append(f"  {t.slug:<14} {t.name}, {kind}: {_many(c['members'], 'member')},")
        lines.append(
            f"  {'':<14} {_many(c['events'], 'event')} ({c['events_awarded']} awarded, {c['events_held']} held, "
            f"{c['events_rejected']} rejected), {_many(c['redemptions'], 'redemption')}, "
            f"{_many(c['care_requests'], 'care request')}"
        )
        states = ", ".join(
            f"{c[f'messages_{state}']} {state}"
            for state in ("sent", "queued", "deferred", "suppressed", "failed")
            if c.get(f"messages_{state}")
        )
        reasons = t.extras.get("message_reasons")
        lines.append(
            f"  {'':<14} {_many(c.get('messages', 0), 'care message')}"
            + (f" ({states})" if states else "")
            + (f"; held back: {reasons}" if reasons else "")
        )
        if "members_measured" in c:
            lines.append(f"  {'':<14} loyalty: {t.notes.get('rfm', '')}; types: {t.notes.get('loyalty_types', '-')}")
            lines.append(f"  {'':<14} liability: {t.notes.get('liability', '')}; dashboard: GET /v1/reports/dashboard")
        if "cases" in c:
            lines.append(
                f"  {'':<14} {_many(c['cases'], 'case')}, {c['cases_breached']} past its SLA: {t.notes['cases']}"
            )
        if "survey" in t.notes:
            lines.append(f"  {'':<14} survey: {t.notes['survey']}")
    if result.delivered is not None:
        emails, sms = result.delivered
        lines.append(
            f"  {_many(emails, 'email')} and {sms} SMS went to a local SES/SNS stand-in (no AWS endpoint set)."
        )
    lines.append("")
    key_line = f"PK={run.platform_key}"
    if run.platform_key_origin == "generated":
        lines.append("A platform operator key was generated and stored (hashed); `make serve` accepts it from now on.")
        lines.append("It is shown once (below, as PK): keep it.")
    elif run.platform_key_origin == "environment":
        lines.append("The platform operator key is FEALTY_PLATFORM_KEY (as PK below).")
        key_line = 'PK="$FEALTY_PLATFORM_KEY"'
    else:
        lines.append("A platform key was stored before: the demo used a temporary one, valid only while it ran.")
        lines.append("Use the key printed when it was made (by the first `make serve` or `fealty demo`) as PK,")
        lines.append("or make a new one with `fealty platform-key --rotate` (then restart `make serve`).")
        key_line = "PK=ftp_...   # the platform key printed when it was made"
    lines += ["", click.style("Start the API with `make serve` in another terminal, then paste:", bold=True), ""]
    lines += ["B=http://127.0.0.1:8000", key_line]
    coffee = result.tenant("coffee")
    for tenant in result.tenants:
        lines.append(f"{tenant.key_variable}={tenant.api_key}   # {tenant.slug}: its admin API key")
    if coffee is not None:
        lines.append(f"REGULAR={coffee.members['regular']}   # {coffee.notes['regular']} (a regular)")
    for tenant in result.tenants:  # the plugins' demos say what to try (fealty_demo_tenants)
        if tenant.lines:
            lines += ["", *tenant.lines]
    if coffee is not None:
        lines += [
            "",
            "# Coffee (core only): earning rules, the weekend campaign, a regular's balance",
            'curl -s $B/v1/earning-rules -H "Authorization: Bearer $KC"',
            'curl -s $B/v1/campaigns -H "Authorization: Bearer $KC"',
            'curl -s $B/v1/members/$REGULAR/balance -H "Authorization: Bearer $KC"',
            "# Complaints: the case past its SLA, a closed one's history; the survey's results by tier",
            'curl -s "$B/v1/cases?breached=true" -H "Authorization: Bearer $KC"',
            'curl -s "$B/v1/cases?status=closed" -H "Authorization: Bearer $KC"',
            'curl -s $B/v1/surveys -H "Authorization: Bearer $KC"',
            f'curl -s "$B{coffee.extras.get("survey_results", "/v1/surveys")}?group_by=tier" '
            '-H "Authorization: Bearer $KC"',
        ]
    lines += [
        "",
        "# The platform operator, and operations",
        'curl -s $B/v1/platform/tenants -H "Authorization: Bearer $PK"',
        "curl -s $B/readyz",
        "curl -s $B/metrics | grep '^fealty_requests_total' | head",
    ]
    return "\n".join(lines)


@main.group()
def billing() -> None:
    """Billing through Stripe: plans, their synchronisation, closing usage periods."""


def _run_with_runtime(work: Callable[[Runtime], Awaitable[None]]) -> None:
    from core.logging import configure_logging
    from core.plugin.manager import PluginManager
    from core.runtime import Runtime

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def run() -> None:
        runtime = Runtime.create(settings, PluginManager.for_settings(settings))
        try:
            await work(runtime)
        finally:
            await runtime.close()

    asyncio.run(run())


@billing.command("plans")
def billing_plans() -> None:
    """List the plans (define them with POST /v1/platform/plans)."""
    from core.billing.plans import list_plans
    from core.db.engine import tenant_session

    async def work(runtime: Runtime) -> None:
        async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
            found = await list_plans(session)
        if not found:
            click.echo("No plans yet: define them with POST /v1/platform/plans.")
        for plan in found:
            price = f"{plan.monthly_price.normalize():f} {plan.currency}"
            per = f" per {plan.block_size} active members" if plan.pricing == "per_block" else ""
            state = "" if plan.active else " (not offered)"
            click.echo(f"{plan.code}: {plan.name}, {price}/month{per}, Stripe plan {plan.stripe_plan_id or '-'}{state}")

    _run_with_runtime(work)


@billing.command("sync-plans")
def billing_sync_plans() -> None:
    """Create or update every offered plan's Stripe product and plan (idempotent: run it as often as you like)."""
    from core.billing.plans import sync_plans
    from core.billing.service import stripe_gateway
    from core.clock import utcnow
    from core.db.engine import tenant_session

    async def work(runtime: Runtime) -> None:
        gateway = stripe_gateway(runtime)
        if gateway is None:
            raise click.UsageError("Billing is disabled: set FEALTY_STRIPE_API_KEY (and FEALTY_STRIPE_API_BASE).")
        async with tenant_session(runtime.sessionmaker, None) as session:
            results = await sync_plans(session, gateway, utcnow())
        if not results:
            click.echo("No plans to synchronise.")
        for r in results:
            archived = f", archived {r.archived}" if r.archived else ""
            click.echo(
                f"{r.code}: product {r.stripe_product_id} {r.product}, plan {r.stripe_plan_id} {r.plan}{archived}"
            )

    _run_with_runtime(work)


@billing.command("close-periods")
def billing_close_periods() -> None:
    """Close the usage periods that are due and bill their overage (the worker does this by itself; idempotent)."""
    from core.billing.periods import close_billing_periods
    from core.clock import utcnow

    async def work(runtime: Runtime) -> None:
        report = await close_billing_periods(runtime, utcnow())
        amounts = ", ".join(f"{amount} {currency}" for currency, amount in report.amounts.items()) or "nothing"
        click.echo(f"closed={report.closed} billed={report.billed} ({amounts})")
        for error in report.errors:
            click.secho(f"failed: {error}", fg="red")

    _run_with_runtime(work)


# --- jobs -----------------------------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Follow background jobs."""


async def _watch(runtime: Runtime, job_id: uuid.UUID, running: asyncio.Task[Any] | None = None) -> dict[str, Any]:
    """Draw a progress bar for a job until it is done or dead; returns its final state."""
    from sqlalchemy import select

    from core.db.engine import tenant_session
    from core.jobs.models import Job

    bar: Any = None
    shown = 0
    try:
        while True:
            async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
                job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one_or_none()
            if job is None:
                raise click.ClickException(f"No job {job_id}.")
            if bar is None and job.progress_total is not None:
                bar = click.progressbar(length=max(job.progress_total, 1), label=job.kind, file=sys.stderr)
                bar.__enter__()
            if bar is not None and job.progress_done > shown:
                bar.update(job.progress_done - shown)
                shown = job.progress_done
            if job.status in ("done", "dead"):
                return {"id": str(job.id), "status": job.status, "result": job.result, "problem": job.problem}
            if running is not None and running.done():
                running.result()  # the in-process run failed outright: say so
                running = None
            await asyncio.sleep(0.3)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@jobs.command("watch")
@click.argument("job_id", type=click.UUID)
def jobs_watch(job_id: uuid.UUID) -> None:
    """Show a job's progress until it ends (a worker runs it), then its result."""

    async def work(runtime: Runtime) -> None:
        click.echo(json.dumps(await _watch(runtime, job_id)))

    _run_with_runtime(work)


@jobs.command("dead")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
def jobs_dead(limit: int) -> None:
    """List dead jobs (they failed every attempt) with the last line of their error, for the operator."""
    from sqlalchemy import select

    from core.db.engine import tenant_session
    from core.jobs.models import Job

    async def work(runtime: Runtime) -> None:
        async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
            dead = (
                await session.execute(
                    select(Job).where(Job.status == "dead").order_by(Job.finished_at.desc()).limit(limit)
                )
            ).scalars()
            for job in dead:
                error = (job.last_error or "").strip().splitlines()[-1:] or [""]
                click.echo(
                    f"{job.finished_at:%Y-%m-%d %H:%M} {job.id} {job.kind} tenant={job.tenant_id or 'platform'} "
                    f"attempts={job.attempts} {error[0][:200]}"
                )

    _run_with_runtime(work)


@main.group()
def tiers() -> None:
    """Tier maintenance."""


@tiers.command("recalculate")
@click.option("--tenant", "slug", required=True, help="The tenant's slug (or id).")
@click.option("--run/--no-run", default=True, show_default=True, help="Run the job here, or leave it to a worker.")
def tiers_recalculate(slug: str, run: bool) -> None:
    """Re-evaluate every member of a tenant (the job POST /v1/tiers/recalculate starts), with a progress bar."""
    from sqlalchemy import String, cast, or_, select

    from core.db.engine import tenant_session
    from core.jobs.queue import start_task
    from core.tenancy.models import Tenant
    from core.tiers.jobs import RECALCULATE_JOB
    from core.worker import build_registry, run_due, worker_name

    async def work(runtime: Runtime) -> None:
        async with tenant_session(runtime.sessionmaker, None) as session:
            tenant_id = (
                await session.execute(
                    select(Tenant.id).where(or_(Tenant.slug == slug, cast(Tenant.id, String) == slug))
                )
            ).scalar_one_or_none()
            if tenant_id is None:
                raise click.ClickException(f"No tenant {slug!r}.")
            job_id = await start_task(session, RECALCULATE_JOB, tenant_id=tenant_id)
        click.echo(f"job {job_id}", err=True)
        running = None
        if run:
            registry = build_registry(runtime)
            running = asyncio.create_task(
                run_due(runtime, registry, worker_name(), tenant_ids=[tenant_id], kinds=[RECALCULATE_JOB])
            )
        final = await _watch(runtime, job_id, running)
        if running is not None:
            await running
        click.echo(json.dumps(final))
        if final["status"] != "done":
            raise SystemExit(1)

    _run_with_runtime(work)


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--kind", type=click.Choice(["members", "opening_balances"]), required=True, help="What the CSV holds.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The API.")
@click.option("--key", required=True, help="The tenant's admin API key.")
@click.option("--poll", default=0.5, show_default=True, help="Seconds between progress reads.")
def import_csv(path: str, kind: str, url: str, key: str, poll: float) -> None:
    """Import members or opening balances from a CSV through the API, with a progress bar; rows refused are
    listed at the end (and downloadable as CSV)."""
    import time

    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        created = http.post("/v1/imports", json={"kind": kind, "csv": text})
        if created.status_code != 202:
            raise click.ClickException(f"{created.status_code}: {created.json().get('detail', created.text)}")
        import_id = created.json()["id"]
        state = created.json()
        with click.progressbar(length=max(1, text.count("\n") - 1), label=f"Importing {kind}") as bar:
            shown = 0
            while state["state"] in ("queued", "running"):
                time.sleep(poll)
                state = http.get(f"/v1/imports/{import_id}").json()
                bar.update(state["rows_done"] - shown)
                shown = state["rows_done"]
    if state["state"] == "failed":
        raise click.ClickException(f"the import failed: {state['error']}")
    click.echo(f"created {state['created']}, skipped {state['skipped']} (already there), failed {state['failed']}")
    for error in state["errors"]:
        click.echo(f"  row {error['row']}: {error['field'] or '-'}: {error['detail']}")
    if state["failed"] > len(state["errors"]):
        click.echo(f"  ... all of them: {url}/v1/imports/{import_id}/errors.csv")


if __name__ == "__main__":
    sys.exit(main())
