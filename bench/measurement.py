"""Measurement benchmark (issue 13) at full size on PostgreSQL: the nightly loyalty run, every report route over HTTP,
and the exports' memory.

    python -m bench.measurement                                  # 20,000 members, 200,000 entries, fresh database
    python -m bench.measurement --members 1000000 --entries 10000000 --database fealty_bench_measure --keep
    python -m bench.measurement --database fealty_bench_measure --keep --skip nightly   # reuse the seeded data
    python -m bench.measurement --database fealty_bench_measure --drop                  # remove it

Seeds set-based in the database (``generate_series``, ``INSERT ... SELECT``; the ledger by ``bench.run``'s seeder):
members with attributes and balances, up to 8 active days each of daily metric buckets (``events`` and ``spend``)
over three years, ``--entries`` posted earn entries with their lots over two years, and a tenth of the lots spent
(redeemed or expired, with their lot consumptions). A named database (``--database``) is seeded once and reused
(``--keep``); without ``--database`` a fresh one is made and dropped afterwards.

Then, each in a process of its own so that its peak RSS is its own:

* **nightly**: ``core.measurement.nightly.run`` (what the nightly job runs: metrics, RFM, loyalty types, BG/NBD and
  Gamma-Gamma fits, the loyalty index of the tenant's active model, upserts), timed, with its peak RSS;
* **rollup**: the liability roll-up (``core.measurement.jobs.build_liability_rollup``, which the nightly job runs
  after the loyalty run), timed with its PostgreSQL CPU; the liability report reads it;
* **reports**: the API (``uvicorn``, one process) and every report route that reads all members, each asked twice
  over HTTP (the first answer and the second);
* **exports**: a fresh API process streaming ``GET /v1/exports/ledger`` (every entry) and ``GET /v1/exports/members``
  to a client that counts the rows, the server's resident memory sampled each second and its peak (VmHWM) read from
  /proc; and the background export to S3 (``POST /v1/exports``, the worker's job run in a process of its own against
  a moto server) of the ledger as CSV and of the members as Parquet, with that process's peak RSS.

Prints the figures and writes ``bench/results/measurement.md`` (and every figure to
``bench/results/<time>-measurement.json``), with the machine's 10M-loop time and load average.

Targets (issue 13): nightly for 1M members < 5 min; any report over 1M members < 5 s; an export of 10M ledger
entries streams with RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import baselines
from bench.run import seed_ledger

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PLATFORM_KEY = "ftp_bench-platform-key-0000000000000000000000"
PYTHON = sys.executable
#: Members are seeded in chunks of this many, each chunk one statement chain (members, balances, metric buckets).
MEMBER_CHUNK = 200_000
TARGET_NIGHTLY_S = 300.0
TARGET_REPORT_S = 5.0
TARGET_RSS_MB = 300.0


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def url_of(database: str, driver: str = "postgresql") -> str:
    return ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://", 1) + f"/{database}"


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --- the data -------------------------------------------------------------------------------------------------------


async def ensure_database(database: str) -> bool:
    """Create the database (and migrate it) unless it exists; True when it was created."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            return False
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    env = os.environ | {"FEALTY_DATABASE_URL": url_of(database, "postgresql+asyncpg")}
    subprocess.run([PYTHON, "-m", "core.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
    conn = await asyncpg.connect(url_of(database))
    try:  # what the bench has seeded, for a later run on the same database (not an application table)
        await conn.execute("CREATE TABLE bench_measure (key text PRIMARY KEY, value jsonb NOT NULL)")
    finally:
        await conn.close()
    return True


async def drop_database(database: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def state(database: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url_of(database))
    try:
        return {r["key"]: json.loads(r["value"]) for r in await conn.fetch("SELECT key, value FROM bench_measure")}
    finally:
        await conn.close()


async def remember(database: str, key: str, value: Any) -> None:
    conn = await asyncpg.connect(url_of(database))
    try:
        await conn.execute(
            "INSERT INTO bench_measure VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            json.dumps(value),
        )
    finally:
        await conn.close()


async def seed_members(database: str, tenant_id: uuid.UUID, count: int, today: Any) -> None:
    """``count`` members (ids time-ordered, as the app makes them) with attributes the default loyalty model reads,
    their balance rows and their daily metric buckets: member n is active on n % 9 days (0 to 8), the latest n % 700
    days ago, then every 1 + n % 50 days before; spend 5 to 204 a day."""
    conn = await asyncpg.connect(url_of(database))
    try:
        await conn.execute("SET session_replication_role = replica")  # consistent by construction: no FK checks
        for start in range(1, count + 1, MEMBER_CHUNK):
            end = min(count, start + MEMBER_CHUNK - 1)
            low, high = (uuid.UUID(f"{n:08x}-0000-0000-0000-000000000000") for n in (start, end + 1))
            async with conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at)
                    SELECT $1, (lpad(to_hex(i), 8, '0') || '-' || substr(gen_random_uuid()::text, 10))::uuid,
                           'm-' || i, 'active',
                           jsonb_build_object(
                               'customer_nature', (ARRAY['government', 'key_account', 'business', 'retail'])[1 + i % 4],
                               'products_held', i % 6, 'services_used', (i / 7) % 6, 'sole_provider', i % 5 = 0,
                               'switched_provider_before', i % 3 = 0, 'share_of_need', (i % 10) / 10.0,
                               'relationship', CASE WHEN i % 97 = 0 THEN 'staff' ELSE 'customer' END),
                           now() - (1200 + i % 600) * interval '1 day', now()
                    FROM generate_series($2::bigint, $3::bigint) AS i
                    """,
                    tenant_id,
                    start,
                    end,
                )
                await conn.execute(
                    """
                    INSERT INTO point_balances (tenant_id, member_id, available, pending, lifetime_earned,
                                                lifetime_redeemed, lifetime_expired, lifetime_adjusted,
                                                lifetime_written_off, last_activity_at, updated_at)
                    SELECT $1, m.id, 0, 0, 0, 0, 0, 0, 0,
                           now() - (substr(m.external_id, 3)::bigint % 700) * interval '1 day', now()
                    FROM members m WHERE m.tenant_id = $1 AND m.id >= $2::uuid AND m.id < $3::uuid
                    """,
                    tenant_id,
                    low,
                    high,
                )
                await conn.execute(
                    """
                    INSERT INTO member_metrics (tenant_id, member_id, metric, day, value)
                    SELECT $1, m.id, x.metric, x.day, x.value
                    FROM members m
                    CROSS JOIN LATERAL (SELECT substr(m.external_id, 3)::bigint AS n) AS k
                    CROSS JOIN LATERAL generate_series(0, k.n % 9 - 1) AS j
                    CROSS JOIN LATERAL (VALUES
                        ('events', $4::date - (k.n % 700 + j * (1 + k.n % 50))::int, 1::numeric),
                        ('spend', $4::date - (k.n % 700 + j * (1 + k.n % 50))::int,
                         (5 + (k.n * 31 + j * 17) % 200)::numeric)
                    ) AS x (metric, day, value)
                    WHERE m.tenant_id = $1 AND m.id >= $2::uuid AND m.id < $3::uuid
                    ORDER BY m.id, x.metric, x.day
                    """,
                    tenant_id,
                    low,
                    high,
                    today,
                )
            log(f"  seeded {end:,} members with their metric buckets")
        await conn.execute("ANALYZE members")
        await conn.execute("ANALYZE point_balances")
        await conn.execute("ANALYZE member_metrics")
    finally:
        await conn.close()


async def seed_spent(database: str, tenant_id: uuid.UUID) -> int:
    """A sixteenth of the earn lots spent: each taken whole by a redeem entry (three in four) or an expire entry
    (one in four) a month after it was earned, with its lot consumption; balances made to match. Returns how many."""
    conn = await asyncpg.connect(url_of(database))
    try:
        await conn.execute("SET session_replication_role = replica")
        async with conn.transaction():
            await conn.execute(
                """
                CREATE TEMP TABLE spent ON COMMIT DROP AS
                SELECT id, ('f' || substr(id::text, 2))::uuid AS entry_id, member_id, remaining AS points,
                       least(earned_at + interval '30 days', now()) AS at,
                       CASE WHEN substr(id::text, 7, 1) IN ('0', '4', '8', 'c') THEN 'expire' ELSE 'redeem' END AS kind
                FROM lots WHERE tenant_id = $1 AND kind = 'earn' AND remaining > 0 AND substr(id::text, 8, 1) = '0'
                """,
                tenant_id,
            )
            count = await conn.fetchval("SELECT count(*) FROM spent")
            await conn.execute(
                """
                INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id,
                                            reason, created_at, details)
                SELECT $1, entry_id, member_id, kind, -points, 'posted', 'system', NULL, 'bench seed', at, '{}'::jsonb
                FROM spent ORDER BY entry_id
                """,
                tenant_id,
            )
            await conn.execute(
                """
                INSERT INTO lot_consumptions (tenant_id, id, entry_id, lot_id, points)
                SELECT $1, entry_id, entry_id, id, points FROM spent ORDER BY entry_id
                """,
                tenant_id,
            )
            await conn.execute(
                "UPDATE lots l SET remaining = 0 FROM spent s WHERE l.tenant_id = $1 AND l.id = s.id", tenant_id
            )
            await conn.execute(
                """
                UPDATE point_balances b SET available = s.total, lifetime_redeemed = s.redeemed,
                       lifetime_expired = s.expired
                FROM (SELECT l.member_id, sum(l.remaining) AS total,
                             coalesce(sum(sp.points) FILTER (WHERE sp.kind = 'redeem'), 0) AS redeemed,
                             coalesce(sum(sp.points) FILTER (WHERE sp.kind = 'expire'), 0) AS expired
                      FROM lots l LEFT JOIN spent sp ON sp.id = l.id
                      WHERE l.tenant_id = $1 GROUP BY l.member_id) s
                WHERE b.tenant_id = $1 AND b.member_id = s.member_id
                """,
                tenant_id,
            )
        return int(count)
    finally:
        await conn.close()


async def vacuum(database: str) -> None:
    conn = await asyncpg.connect(url_of(database))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def counts(database: str, tenant_id: uuid.UUID) -> dict[str, int]:
    conn = await asyncpg.connect(url_of(database))
    try:
        return {
            t: int(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE tenant_id = $1", tenant_id))
            for t in ("members", "member_metrics", "ledger_entries", "lots", "lot_consumptions", "member_loyalty")
        }
    finally:
        await conn.close()


# --- the API in a process of its own --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``uvicorn core.asgi:app`` with one process (no supervisor: the process is the one serving)."""

    def __init__(self, database: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {
            "FEALTY_DATABASE_URL": url_of(database, "postgresql+asyncpg"),
            "FEALTY_PLATFORM_KEY": PLATFORM_KEY,
            "FEALTY_LOG_LEVEL": "WARNING",
            "FEALTY_EMBEDDED_WORKER": "false",
            "FEALTY_MIGRATE_ON_START": "false",
            "FEALTY_RATE_LIMIT_PER_SECOND": "0",
        }
        command = [PYTHON, "-m", "uvicorn", "core.asgi:app", "--host", "127.0.0.1", "--port", str(self.port),
                   "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]  # fmt: skip
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def memory_mb(self, field: str) -> float:
        """``VmRSS`` (now) or ``VmHWM`` (the peak since the process started) in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


async def create_tenant(database: str) -> dict[str, Any]:
    server = Server(database)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            created = await http.post(
                "/v1/platform/tenants",
                headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
                json={"name": "Bench", "slug": f"bench-{uuid.uuid4().hex[:6]}", "timezone": "Europe/London",
                      "currency": "GBP"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            data = created.json()
            auth = {"Authorization": f"Bearer {data['api_key']['secret']}"}
            copied = await http.post("/v1/measurement/models/copy", headers=auth, json={"default": "loyalty"})
            assert copied.status_code in (200, 201), copied.text
            return {"tenant_id": data["tenant"]["id"], "key": data["api_key"]["secret"]}
    finally:
        server.stop()


# --- nightly --------------------------------------------------------------------------------------------------------


def backend_pids(database: str) -> set[int]:
    """The PostgreSQL backends connected to ``database`` now (the server is on this machine)."""
    out = subprocess.run(["pgrep", "-f", f"postgres: .* {database} "], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def cpu_of(pids: set[int]) -> float:
    """User + system CPU seconds these processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def child_nightly(database: str, tenant_id: str) -> None:
    """In a process of its own: the nightly run, as the job runs it; prints its figures as one JSON line."""
    from core.app import create_app
    from core.clock import utcnow
    from core.measurement import nightly
    from core.runtime import Runtime
    from core.testing import settings_for_tests

    async def go() -> dict[str, Any]:
        app = create_app(settings_for_tests(url_of(database, "postgresql+asyncpg")))
        runtime: Runtime = app.state["runtime"]
        async with app.lifespan():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            others = backend_pids(database)  # (a seeder's, another run's): not this run's
            started = time.monotonic()
            start_cpu = resource.getrusage(resource.RUSAGE_SELF)
            summary = await nightly.run(runtime.sessionmaker, uuid.UUID(tenant_id), utcnow())
            seconds = time.monotonic() - started
            postgres_cpu = cpu_of(backend_pids(database) - others)  # the pool's backends, still connected
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "seconds": round(seconds, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime - start_cpu.ru_utime - start_cpu.ru_stime, 1),
            "postgres_cpu_s": round(postgres_cpu, 1),
            "rss_before_mb": round(before),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "summary": summary,
        }

    print("RESULT " + json.dumps(asyncio.run(go()), default=str), flush=True)


def child_rollup(database: str, tenant_id: str) -> None:
    """In a process of its own: the liability roll-up, as the nightly job builds it after the run; prints its
    figures as one JSON line."""
    from core.app import create_app
    from core.measurement.jobs import build_liability_rollup
    from core.runtime import Runtime
    from core.testing import settings_for_tests

    async def go() -> dict[str, Any]:
        app = create_app(settings_for_tests(url_of(database, "postgresql+asyncpg")))
        runtime: Runtime = app.state["runtime"]
        async with app.lifespan():
            others = backend_pids(database)
            started = time.monotonic()
            built = await build_liability_rollup(runtime, uuid.UUID(tenant_id))
            seconds = time.monotonic() - started
            postgres_cpu = cpu_of(backend_pids(database) - others)
        return {"seconds": round(seconds, 1), "postgres_cpu_s": round(postgres_cpu, 1), **built}

    print("RESULT " + json.dumps(asyncio.run(go()), default=str), flush=True)


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, "-m", "bench.measurement", *args], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line.removeprefix("RESULT ")))
    raise RuntimeError(f"child {args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


# --- reports --------------------------------------------------------------------------------------------------------


def report_routes() -> list[str]:
    from core.measurement.charts import CHARTS
    from core.measurement.reports import REPORTS

    routes = ["/v1/measurement/settings", "/v1/measurement/models"]
    routes += [f"/v1/reports/{name}" for name in REPORTS]
    routes += [f"/v1/reports/{name}.csv" for name in REPORTS]
    routes += [f"/v1/reports/{name}/chart.{kind}" for name in CHARTS for kind in ("json", "svg", "png")]
    routes += ["/v1/reports/liability?months=24", "/v1/reports/liability?as_of=AS_OF"]
    routes += ["/v1/reports/dashboard", "SHARED"]
    return routes


async def time_reports(database: str, key: str, repeat: int = 2, only: str = "") -> list[dict[str, Any]]:
    server = Server(database)
    out = []
    wanted = [w for w in only.split(",") if w]
    try:
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=900, headers=auth) as http:
            as_of = (datetime.now(UTC) - timedelta(days=182)).isoformat().replace("+00:00", "Z")
            for route in report_routes():
                if wanted and not any(w in route for w in wanted):
                    continue
                if route == "SHARED":
                    link = (await http.post("/v1/reports/links", json={"expires_in_minutes": 60})).json()["url"]
                    path = "/v1" + link.split("/v1", 1)[1]
                    route, label = path, "/v1/reports/dashboard/shared?token=..."
                else:
                    route = route.replace("AS_OF", as_of)
                    label = route.replace(as_of, "(6 months ago)")
                times = []
                size = 0
                status = 0
                for _ in range(repeat):
                    started = time.monotonic()
                    response = await http.get(route)
                    times.append(round(time.monotonic() - started, 3))
                    status, size = response.status_code, len(response.content)
                out.append({"route": label, "status": status, "bytes": size, "seconds": times})
                log(f"  {label}: {status}, {' / '.join(f'{t:.2f} s' for t in times)}")
    finally:
        server.stop()
    return out


# --- exports --------------------------------------------------------------------------------------------------------


async def stream_export(database: str, key: str, path: str) -> dict[str, Any]:
    """A fresh API process streams ``path`` to this client, which counts rows; the server's RSS each second and its
    peak (VmHWM: since the process started, so the start-up and the import of every library are in it)."""
    server = Server(database)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append(server.memory_mb("VmRSS"))

    try:
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=3600, headers=auth) as http:
            await http.get("/v1/reports/tiers")  # a first request: the app's lazy parts loaded
            before = server.memory_mb("VmHWM")
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            rows = size = 0
            async with http.stream("GET", path) as response:
                assert response.status_code == 200, await response.aread()
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    rows += chunk.count(b"\n")
            seconds = time.monotonic() - started
            stop.set()
            sampler.join()
            peak = server.memory_mb("VmHWM")
    finally:
        stop.set()
        server.stop()
    return {
        "path": path,
        "rows": rows - 1,
        "mb": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round((rows - 1) / seconds) if seconds else None,
        "hwm_before_mb": round(before),
        "peak_rss_mb": round(peak),
        "rss_samples_mb": [round(s) for s in samples[:: max(1, len(samples) // 20)]],
    }


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail, as in the production image (``infra/requirements.lock`` has no pandas; only the
    dev extras install it, for ``lifetimes``' CDNOW data). Where pandas is importable, pyarrow imports it on its first
    conversion of Python values, 45 MB that a worker in production never holds."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def child_s3_export(database: str, tenant_id: str, key: str, endpoint: str, kind: str, fmt: str) -> None:
    """In a process of its own (as the worker): ask for a background export, run its job, print the figures."""
    if os.environ.get("FEALTY_BENCH_WITH_PANDAS") != "1":
        sys.meta_path.insert(0, _WithoutPandas())
    from core.app import create_app
    from core.runtime import Runtime
    from core.testing import settings_for_tests
    from core.worker import build_registry, run_due

    async def go() -> dict[str, Any]:
        settings = settings_for_tests(
            url_of(database, "postgresql+asyncpg"),
            aws_endpoint_url=endpoint,
            aws_region="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            exports_bucket="fealty-bench-exports",
        )
        app = create_app(settings)
        runtime: Runtime = app.state["runtime"]
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600,
                headers={"Authorization": f"Bearer {key}"},
            ) as http,
        ):  # fmt: skip
            created = await http.post("/v1/exports", json={"kind": kind, "format": fmt})
            assert created.status_code == 202, created.text
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            started = time.monotonic()
            await run_due(
                runtime, build_registry(runtime), "bench", tenant_ids=[uuid.UUID(tenant_id)], kinds=["exports.run"]
            )
            seconds = time.monotonic() - started
            done = (await http.get(f"/v1/exports/{created.json()['id']}")).json()
        return {
            "kind": kind,
            "format": fmt,
            "state": done["state"],
            "rows": done["rows_done"],
            "mb": round((done["bytes_written"] or 0) / 1e6, 1),
            "seconds": round(seconds, 1),
            "rss_before_mb": round(before),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }

    print("RESULT " + json.dumps(asyncio.run(go())), flush=True)


def s3_exports(database: str, tenant_id: str, key: str, which: list[tuple[str, str]]) -> list[dict[str, Any]]:
    port = free_port()
    moto = subprocess.Popen(
        [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = []
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{endpoint}/moto-api/data.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for kind, fmt in which:
            log(f"background export of {kind} as {fmt} to S3 (moto)")
            result = run_child(["child-s3", database, tenant_id, key, endpoint, kind, fmt])
            log(f"  {result}")
            out.append(result)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    return out


# --- the report -----------------------------------------------------------------------------------------------------


def markdown(run: dict[str, Any]) -> str:
    c = run.get("counts", {})
    lines = [
        f"# Measurement at scale: run of {run['started']}",
        "",
        f"Machine: {os.cpu_count()} CPUs, **10M-loop time {run['loop_10m_s']} s**, load average {run['load_start']} "
        f"at the start and {run.get('load_end')} at the end; PostgreSQL on the same machine "
        f"({run.get('postgres')}), the app one process. Data: {c.get('members', 0):,} members, "
        f"{c.get('member_metrics', 0):,} daily metric buckets, {c.get('ledger_entries', 0):,} ledger entries, "
        f"{c.get('lots', 0):,} lots, {c.get('lot_consumptions', 0):,} lot consumptions.",
        "",
        "| target | figure | met |",
        "|---|---|---|",
    ]
    for n in run.get("nightly", []):
        s = n["summary"]
        met = "**yes**" if n["seconds"] < TARGET_NIGHTLY_S else "no"
        lines.append(
            f"| nightly run (metrics, RFM, types, BG/NBD, Gamma-Gamma, loyalty index, upserts) < 5 min | "
            f"{n['seconds']:.0f} s for {s['members']:,} members (reading {s['seconds']['read']:.0f} s; "
            f"CPU: the process {n['cpu_s']:.0f} s, PostgreSQL {n.get('postgres_cpu_s', 0):.0f} s; "
            f"peak RSS {n['peak_rss_mb']} MB) | {met} |"
        )
    if run.get("rollup"):
        r = run["rollup"]
        lines.append(
            f"| liability roll-up (built by the nightly job after the run; not a target) | {r['seconds']:.0f} s "
            f"(PostgreSQL CPU {r['postgres_cpu_s']:.0f} s), {r['rows']:,} rows, cut-off {r['cutoff']} | - |"
        )
    reports = run.get("reports", [])
    if reports:
        worst = max(reports, key=lambda r: max(r["seconds"]))
        met = (
            "**yes**" if max(worst["seconds"]) < TARGET_REPORT_S and all(r["status"] == 200 for r in reports) else "no"
        )
        lines.append(
            f"| every report route < 5 s | slowest: `{worst['route']}` {max(worst['seconds']):.2f} s "
            f"({len(reports)} routes) | {met} |"
        )
    for e in run.get("stream", []):
        met = "**yes**" if e["peak_rss_mb"] < TARGET_RSS_MB else "no"
        lines.append(
            f"| `GET {e['path']}` streams with RSS < 300 MB | {e['rows']:,} rows ({e['mb']:,} MB) "
            f"in {e['seconds']:.0f} s; "
            f"server peak RSS {e['peak_rss_mb']} MB (after start-up {e['hwm_before_mb']} MB) | {met} |"
        )
    for e in run.get("s3", []):
        met = "**yes**" if e["peak_rss_mb"] < TARGET_RSS_MB else "no"
        lines.append(
            f"| background export `{e['kind']}` as {e['format']} to S3 (moto) | {e['rows']:,} rows "
            f"({e['mb']:,} MB) in {e['seconds']:.0f} s, {e['state']}; worker process peak RSS {e['peak_rss_mb']} MB "
            f"(before the job {e['rss_before_mb']} MB) | {met} |"
        )
    if reports:
        lines += ["", "Every report route over HTTP, seconds (first answer, second):", "",
                  "| route | status | bytes | seconds |", "|---|---|---|---|"]  # fmt: skip
        for r in reports:
            before = r.get("before_seconds")
            changed = f" (before the change: {' / '.join(f'{t:.2f}' for t in before)})" if before else ""
            seconds = " / ".join(f"{t:.2f}" for t in r["seconds"])
            lines.append(f"| `{r['route']}` | {r['status']} | {r['bytes']:,} | {seconds}{changed} |")
    for n in run.get("nightly", []):
        keys = ("members", "active_in_window", "written", "seconds", "bgnbd", "gamma_gamma")
        brief = json.dumps({k: n["summary"].get(k) for k in keys}, default=str)
        lines += ["", f"Nightly run summary: `{brief}`"]
    for e in run.get("stream", []):
        lines += ["", f"Server RSS during `GET {e['path']}` (MB, sampled): {e['rss_samples_mb']}"]
    if run.get("seeding"):
        lines += ["", f"Seeding (set-based, not a target): {run['seeding']}"]
    return "\n".join(lines) + "\n"


def combine(paths: list[str]) -> None:
    """One report (bench/results/measurement.md) from the JSON of several runs on the same data (steps run apart)."""
    run: dict[str, Any] = {}
    for path in paths:
        part = json.loads(Path(path).read_text())
        for key, value in part.items():
            if key == "reports" and key in run:  # a later run of a route (after a change) replaces the earlier
                earlier = {r["route"]: r for r in run[key]}
                for r in value:
                    if r["route"] in earlier:
                        r["before_seconds"] = earlier[r["route"]]["seconds"]
                    earlier[r["route"]] = r
                run[key] = list(earlier.values())
            elif isinstance(value, list) and key in run:
                run[key] = [*run[key], *value]
            elif key not in run or key in ("counts", "load_end"):
                run[key] = value
    text = markdown(run)
    (RESULTS / "measurement.md").write_text(text)
    print(text)


async def main(args: argparse.Namespace) -> None:
    database = args.database or f"fealty_bench_measure_{uuid.uuid4().hex[:8]}"
    if args.drop:
        await drop_database(database)
        log(f"dropped {database}")
        return
    run: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "database": database}
    log("timing a pure-Python loop of 10M additions")
    run["loop_10m_s"] = baselines.loop_seconds()
    run["load_start"] = load_average()
    log(f"  {run['loop_10m_s']} s; load average {run['load_start']}")
    run["postgres"] = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    skip = set(args.skip.split(",")) if args.skip else set()
    try:
        if await ensure_database(database):
            log(f"created and migrated {database}")
        known = await state(database)
        if "tenant" not in known:
            known["tenant"] = await create_tenant(database)
            await remember(database, "tenant", known["tenant"])
        tenant_id, key = uuid.UUID(known["tenant"]["tenant_id"]), known["tenant"]["key"]
        seeding: dict[str, float] = known.get("seeding", {})
        if "members" not in seeding:
            log(f"seeding {args.members:,} members with their metric buckets")
            started = time.monotonic()
            await seed_members(database, tenant_id, args.members, datetime.now(UTC).date())
            seeding["members"] = round(time.monotonic() - started)
            await remember(database, "seeding", seeding)
        if "ledger" not in seeding:
            log(f"seeding {args.entries:,} ledger entries with their lots")
            started = time.monotonic()
            await seed_ledger(tenant_id, args.entries, url=url_of(database), spread_hours=2 * 365 * 24)
            seeding["ledger"] = round(time.monotonic() - started)
            await remember(database, "seeding", seeding)
        if "spent" not in seeding:
            log("spending a sixteenth of the lots (redeem and expire entries, lot consumptions)")
            started = time.monotonic()
            await seed_spent(database, tenant_id)
            await vacuum(database)
            seeding["spent"] = round(time.monotonic() - started)
            await remember(database, "seeding", seeding)
        run["seeding"] = seeding
        run["counts"] = await counts(database, tenant_id)
        log(f"data: {run['counts']}")
        if "nightly" not in skip:
            run["nightly"] = []
            for i in range(args.nightly_runs):
                log(f"nightly run {i + 1} (load average {load_average()})")
                result = run_child(["child-nightly", database, str(tenant_id)])
                log(f"  {result['seconds']} s, peak RSS {result['peak_rss_mb']} MB, {result['summary'].get('seconds')}")
                run["nightly"].append(result)
            run["counts"] = await counts(database, tenant_id)
        if "rollup" not in skip:  # what the liability report reads (the nightly job builds it after the run)
            log(f"liability roll-up (load average {load_average()})")
            run["rollup"] = run_child(["child-rollup", database, str(tenant_id)])
            log(f"  {run['rollup']}")
        if "reports" not in skip:
            log(f"every report route over HTTP (load average {load_average()})")
            run["reports"] = await time_reports(database, key, args.repeat, args.routes)
        if "stream" not in skip:
            run["stream"] = []
            for path in ("/v1/exports/ledger", "/v1/exports/members"):
                log(f"streaming {path} (load average {load_average()})")
                result = await stream_export(database, key, path)
                log(f"  {result}")
                run["stream"].append(result)
        if "s3" not in skip:
            which = [(kind, fmt) for kind, _, fmt in (item.partition(":") for item in args.s3.split(","))]
            run["s3"] = s3_exports(database, str(tenant_id), key, which)
    finally:
        if not args.keep:
            await drop_database(database)
    run["load_end"] = load_average()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}-measurement.json").write_text(json.dumps(run, indent=2, default=str))
    text = markdown(run)
    if args.report:
        (RESULTS / "measurement.md").write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child-nightly":
        child_nightly(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "child-rollup":
        child_rollup(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "child-s3":
        child_s3_export(*sys.argv[2:8])
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--members", type=int, default=20_000)
        parser.add_argument("--entries", type=int, default=200_000)
        parser.add_argument("--database", help="a named database, seeded once and reused (default: a fresh one)")
        parser.add_argument("--keep", action="store_true", help="keep the database afterwards (to reuse it)")
        parser.add_argument("--drop", action="store_true", help="only drop --database")
        parser.add_argument("--skip", default="", help="steps to skip: nightly,rollup,reports,stream,s3")
        parser.add_argument("--nightly-runs", type=int, default=1)
        parser.add_argument("--s3", default="ledger:csv,members:parquet", help="background exports (kind:format,...)")
        parser.add_argument("--routes", default="", help="only the report routes containing one of these (a,b)")
        parser.add_argument("--repeat", type=int, default=2, help="times each report route is asked")
        parser.add_argument("--report", action="store_true", help="write bench/results/measurement.md")
        parser.add_argument("--combine", nargs="+", metavar="JSON", help="only: one report from several runs' JSON")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        parsed = parser.parse_args()
        if parsed.combine:
            combine(parsed.combine)
        else:
            asyncio.run(main(parsed))
