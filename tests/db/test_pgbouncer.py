"""Behind a real PgBouncer in transaction pooling mode (Debian's ``pgbouncer``, started here on a loopback port, two
server connections for every client): the application role and the tenant are set per transaction, so row-level
security holds and nothing leaks from one client's transaction to the next on a shared server connection."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.app import create_app
from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.plugin.manager import PluginManager
from core.testing import create_tenant, settings_for_tests

pytestmark = pytest.mark.postgres_only


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pgbouncer(postgres_url: str) -> Iterator[str]:
    """PgBouncer in front of the test database; yields the application URL through it."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.fail("PgBouncer is not installed (Debian: apt-get install pgbouncer; .ci/run and make test do it)")
    database = make_url(postgres_url).database
    port = _port()
    # Readable by the postgres user (PgBouncer refuses to run as root: it is started as postgres then).
    home = Path(tempfile.mkdtemp(prefix="fealty-pgbouncer-"))
    home.chmod(0o755)
    (home / "users.txt").write_text('"postgres" ""\n')
    (home / "pgbouncer.ini").write_text(
        f"""[databases]
fealty = host=127.0.0.1 port=5432 dbname={database} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home}/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
logfile = {home}/pgbouncer.log
"""
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (home / name).chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    (home / "pgbouncer.log").touch()
    (home / "pgbouncer.log").chmod(0o666)
    command = [binary, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(home / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert process.poll() is None, (process.stdout.read() if process.stdout else b"").decode()
                assert time.monotonic() < deadline, "PgBouncer did not start"
                time.sleep(0.1)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/fealty"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def bounced(pgbouncer: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with every connection through PgBouncer (a small pool of its own, so connections are shared)."""
    app = create_app(
        settings_for_tests(pgbouncer, database_pgbouncer=True, database_pool_size=4, database_max_overflow=4),
        plugins=PluginManager(),
    )
    started, stop = asyncio.Event(), asyncio.Event()

    async def keep_running() -> None:  # the lifespan is entered and left in one task, as anyio requires
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(keep_running())
    await started.wait()
    try:
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
            yield client
    finally:
        stop.set()
        await task


async def test_the_api_through_pgbouncer_keeps_tenants_apart(bounced: httpx.AsyncClient) -> None:
    a, b = await create_tenant(bounced), await create_tenant(bounced)

    async def enrol_and_list(tenant: Any, n: int) -> list[str]:
        await tenant.enrol(f"{tenant.slug}-{n}")
        listed = (await tenant.get("/v1/members", params={"limit": 500})).json()["items"]
        return [m["external_id"] for m in listed]

    # Many requests at once over two server connections: every transaction carries its own role and tenant.
    results = await asyncio.gather(*(enrol_and_list(t, n) for n in range(12) for t in (a, b)))
    for listed in results:
        assert len({x.split("-")[0] + "-" + x.split("-")[1] for x in listed}) == 1  # one tenant's members only
    members_a = (await a.get("/v1/members", params={"limit": 500})).json()["items"]
    assert len(members_a) == 12 and all(m["external_id"].startswith(a.slug) for m in members_a)
    stolen = await b.get(f"/v1/members/{members_a[0]['id']}")
    assert stolen.status_code == 404


async def test_row_level_security_holds_per_transaction(pgbouncer: str, bounced: httpx.AsyncClient) -> None:
    a = await create_tenant(bounced)
    await a.enrol("rls-1")
    settings = settings_for_tests(pgbouncer, database_pgbouncer=True)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with tenant_session(sessions, a.id) as session:
            conn = await session.connection()
            assert (await conn.execute(text("SELECT current_user"))).scalar() == "fealty_app"
            assert (await conn.execute(text("SELECT count(*) FROM members"))).scalar() == 1
        async with tenant_session(sessions, None) as session:  # no tenant: row-level security shows nothing
            conn = await session.connection()
            assert (await conn.execute(text("SELECT count(*) FROM members"))).scalar() == 0
            with pytest.raises(Exception, match="row-level security"):
                await conn.execute(
                    text(
                        "INSERT INTO members (tenant_id, id, external_id, status, created_at, updated_at) "
                        "VALUES (:t, gen_random_uuid(), 'x', 'active', now(), now())"
                    ),
                    {"t": a.id},
                )
    finally:
        await engine.dispose()
    # Outside those transactions, the shared server connections are back to the login role and no tenant.
    raw = await asyncpg.connect(pgbouncer.replace("postgresql+asyncpg", "postgresql"), statement_cache_size=0)
    try:
        for _ in range(4):
            row = await raw.fetchrow("SELECT current_user, coalesce(current_setting('app.tenant_id', true), '')")
            assert tuple(row) == ("postgres", "")
    finally:
        await raw.close()


async def test_a_role_startup_parameter_is_refused_by_pgbouncer(pgbouncer: str) -> None:
    """Why the role is set per transaction: PgBouncer refuses the startup parameter the direct mode uses."""
    engine = create_engine(settings_for_tests(pgbouncer))  # database_pgbouncer off
    try:
        with pytest.raises(Exception, match="unsupported startup parameter"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
