"""The ``fealty`` command: serve, worker, migrate, platform-key."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from core.settings import get_settings


@click.group()
def main() -> None:
    """Fealty: a multi-tenant loyalty platform."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on (FEALTY_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (FEALTY_PORT, default 8000).")
@click.option("--workers", default=1, type=int, show_default=True, help="Worker processes (PostgreSQL only).")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API. On SQLite (the default) migrations are applied and the worker runs in-process."""
    import uvicorn

    settings = get_settings()
    if settings.migrates_on_start:
        _migrate(settings.owner_database_url)
    if not settings.platform_key:
        _print_new_platform_key()
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError("Several worker processes need PostgreSQL (FEALTY_DATABASE_URL).")
    uvicorn.run(
        "core.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
    )


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
    if key:
        click.secho("A platform operator key was generated. It is shown once and stored only as a hash:", bold=True)
        click.secho(f"  {key}", fg="yellow")
        click.echo("Keep it safe (or set FEALTY_PLATFORM_KEY to choose your own).")


@main.command()
def migrate() -> None:
    """Apply every pending migration (core and installed plugins) with the owner role."""
    settings = get_settings()
    _migrate(settings.owner_database_url)
    click.echo("Database is at the latest migration.")


@main.command("platform-key")
@click.option("--rotate", is_flag=True, help="Replace the stored key with a new one (restart the API afterwards).")
def platform_key(rotate: bool) -> None:
    """Generate the platform operator key if none exists (or rotate it) and print it once."""
    if get_settings().platform_key:
        raise click.UsageError("FEALTY_PLATFORM_KEY is set: the platform key comes from the environment.")
    _print_new_platform_key(rotate=rotate)


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit.")
def worker(once: bool) -> None:
    """Run due background work (release pending points, expiry, deliveries) until stopped."""
    from core.logging import configure_logging
    from core.plugins import PluginManager
    from core.runtime import Runtime
    from core.worker import run_forever, tick

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def run() -> None:
        runtime = Runtime.create(settings, PluginManager())
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


if __name__ == "__main__":
    sys.exit(main())
