"""Fealty benchmark: events and balances through the real HTTP API on PostgreSQL (durable commits), the app and the
database on this machine, load from wrk on loopback; the same writes as plain SQL for comparison; a profile.

    python -m bench.run                 # the standard run (about 6 minutes)
    python -m bench.run --quick         # the ratios in under 3 minutes (10 s phases, no profile)
    python -m bench.run --scale         # also at 1M members and 10M ledger entries (adds ~15 minutes of seeding)
    python -m bench.run --soak 20       # instead: 20 minutes of mixed load at 70 % of the maximum (bench/soak.py)
    python -m bench.run --open-loop     # instead: latency at a constant arrival rate, 70 % of each maximum
                                        # (bench/openloop.py, coordinated omission corrected)

Every figure goes to bench/results/<time>.json, the short report (figures against targets, CPU used by the app and
by PostgreSQL, profiles) to bench/results/latest.md (bench/results/quick.md for --quick); bench/README.md discusses
them. Every API figure is divided by a baseline measured in the same run (bench/baselines.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import baselines, openloop, soak, waits

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
#: Set by main(): the bench's own cluster (see Cluster) or FEALTY_BENCH_ADMIN_URL with --server.
ADMIN_URL = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: The PostgreSQL settings of the bench's own cluster: a production-like memory budget for this 24 GiB machine,
#: checkpoints spaced out as on a server tuned for writes, and durable commits (fsync and synchronous_commit stay on).
CLUSTER_SETTINGS = {
    "shared_buffers": "4GB",
    "effective_cache_size": "12GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "1GB",
    "wal_buffers": "64MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "15min",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    # Full-page images compressed: at 1M members nearly every page an event writes is its first since the last
    # checkpoint, and its whole image goes to the WAL that each commit waits for (bench/README.md).
    "wal_compression": "lz4",
    # Each phase's statements and I/O time (bench/waits.py).
    "shared_preload_libraries": "pg_stat_statements",
    "track_io_timing": "on",
}
DB_NAME = "fealty_bench"
PLATFORM_KEY = "ftp_bench-platform-key-0000000000000000000000"
PYTHON = sys.executable


def db_url(driver: str = "postgresql") -> str:
    return ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://", 1) + f"/{DB_NAME}"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- database -------------------------------------------------------------------------------------------------------


async def fresh_database() -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()
    env = os.environ | {"FEALTY_DATABASE_URL": db_url("postgresql+asyncpg")}
    subprocess.run([PYTHON, "-m", "core.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
    global STATEMENTS
    STATEMENTS = await waits.prepare(db_url())


async def seed_members(tenant_id: uuid.UUID, start: int, count: int) -> None:
    """Members m-<start+1>..m-<start+count> with their balance rows, set-based."""
    conn = await asyncpg.connect(db_url())
    try:
        await conn.execute(
            """
            INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at)
            SELECT $1, gen_random_uuid(), 'm-' || i, 'active', '{}'::jsonb, now(), now()
            FROM generate_series($2::bigint, $3::bigint) AS i
            """,
            tenant_id,
            start + 1,
            start + count,
        )
        await conn.execute(
            """
            INSERT INTO point_balances (tenant_id, member_id, available, pending, lifetime_earned, lifetime_redeemed,
                                        lifetime_expired, lifetime_adjusted, lifetime_written_off, last_activity_at,
                                        updated_at)
            SELECT m.tenant_id, m.id, 0, 0, 0, 0, 0, 0, 0, now(), now() FROM members m
            WHERE m.tenant_id = $1 AND NOT EXISTS (
                SELECT 1 FROM point_balances b WHERE b.tenant_id = m.tenant_id AND b.member_id = m.id)
            """,
            tenant_id,
        )
        # Statistics as a live database has them (autovacuum would get there, minutes later): without them the
        # planner takes a bulk-loaded table for empty and picks scans that filter every member.
        await conn.execute("ANALYZE members")
        await conn.execute("ANALYZE point_balances")
    finally:
        await conn.close()


async def seed_ledger(
    tenant_id: uuid.UUID, entries: int, chunk: int = 1_000_000, *, url: str | None = None, spread_hours: int = 700
) -> None:
    """``entries`` posted earn entries with their lots, spread over the tenant's members and over the last
    ``spread_hours`` hours; balances made to match. ``url``: another database than the bench's (bench.measurement)."""
    conn = await asyncpg.connect(url or db_url())
    try:
        # Seeded rows are consistent by construction: skip the foreign keys' per-row checks (superuser only).
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "CREATE TEMP TABLE ids AS SELECT row_number() OVER () AS n, id FROM members WHERE tenant_id = $1", tenant_id
        )
        await conn.execute("CREATE UNIQUE INDEX ON ids (n)")
        await conn.execute("ANALYZE ids")
        members = await conn.fetchval("SELECT count(*) FROM ids")
        done = 0
        while done < entries:
            size = min(chunk, entries - done)
            await conn.execute(
                """
                WITH rows AS (
                    -- time-ordered ids, as core.ids.new_id makes them (random ones would scatter the inserts
                    -- over the primary key's pages)
                    SELECT (lpad(to_hex(i), 8, '0') || '-' || substr(gen_random_uuid()::text, 10))::uuid AS id,
                           ids.id AS member_id,
                           1 + (i % 300) AS points, now() - (i % $5) * interval '1 hour' AS at
                    FROM generate_series($3::bigint, $4::bigint) AS i JOIN ids ON ids.n = 1 + (i % $2)
                ), e AS (
                    INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id,
                                                reason, created_at, details)
                    SELECT $1, id, member_id, 'earn', points, 'posted', 'system', NULL, 'bench seed', at, '{}'::jsonb
                    FROM rows RETURNING id, member_id, points, created_at
                )
                INSERT INTO lots (tenant_id, id, member_id, points, remaining, reversed, status, kind, earned_at)
                SELECT $1, id, member_id, points, points, 0, 'posted', 'earn', created_at FROM e
                """,
                tenant_id,
                members,
                done,
                done + size - 1,
                spread_hours,
            )
            done += size
            log(f"  seeded {done:,} ledger entries")
        await conn.execute(
            """
            UPDATE point_balances b SET available = s.total, lifetime_earned = s.total
            FROM (SELECT member_id, sum(remaining) AS total FROM lots WHERE tenant_id = $1 GROUP BY member_id) s
            WHERE b.tenant_id = $1 AND b.member_id = s.member_id
            """,
            tenant_id,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def analyze() -> None:
    conn = await asyncpg.connect(db_url())
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def member_ids(tenant_id: uuid.UUID, limit: int) -> list[str]:
    conn = await asyncpg.connect(db_url())
    try:
        rows = await conn.fetch(
            "SELECT id FROM members WHERE tenant_id = $1 ORDER BY random() LIMIT $2", tenant_id, limit
        )
        return [str(r["id"]) for r in rows]
    finally:
        await conn.close()


async def table_counts() -> dict[str, int]:
    conn = await asyncpg.connect(db_url())
    try:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("members", "ledger_entries", "events", "member_metrics")
        }
    finally:
        await conn.close()


# --- the server -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by these processes (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


#: The postmaster of the cluster under test (its children are the backends, WAL writer, checkpointer...).
POSTMASTER: int | None = None


def postgres_cpu() -> float:
    """CPU time of the cluster so far: its live processes, and the backends that have exited (the postmaster's
    reaped children: a load generator's connections may close before the phase's figures are read)."""
    total = cpu_seconds(postgres_pids())
    if POSTMASTER is not None:
        try:
            fields = Path(f"/proc/{POSTMASTER}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            pass
    return total


def postgres_pids() -> list[int]:
    if POSTMASTER is None:
        out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    out = subprocess.run(["pgrep", "-P", str(POSTMASTER)], capture_output=True, text=True).stdout
    return [POSTMASTER, *(int(p) for p in out.split())]


class Cluster:
    """A PostgreSQL cluster of the bench's own (initdb in a temporary directory, a free port, CLUSTER_SETTINGS),
    stopped and removed afterwards: the figures do not depend on how the machine's server happens to be tuned, and
    the bench never disturbs it."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found and not shutil.which("initdb"):
            raise SystemExit("initdb not found: install PostgreSQL, or pass --server to use a running one")
        self.bin = found[-1].parent if found else Path(shutil.which("initdb") or "").parent
        self.dir = Path(tempfile.mkdtemp(prefix="fealty-bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.run_as = as_postgres
        if as_postgres:
            shutil.chown(self.dir, "postgres")
        subprocess.run(
            [
                *as_postgres,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        options = " ".join(f"-c {k}={v}" for k, v in CLUSTER_SETTINGS.items())
        options += f" -p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
        subprocess.run(
            [*as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options,
             "-w", "start"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.postmaster = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def _psql(url: str, query: str) -> list[str]:
    out = subprocess.run(["psql", url, "-Atc", query], capture_output=True, text=True).stdout.strip()
    return out.split("|") if out else []


def wal_written() -> tuple[int, int]:
    """The cluster's write-ahead log so far (``pg_stat_wal``): bytes, and full-page images among its records."""
    found = _psql(ADMIN_URL, "SELECT wal_bytes, wal_fpi FROM pg_stat_wal")
    return (int(float(found[0])), int(found[1])) if found else (0, 0)


def background_work() -> tuple[int, int, int]:
    """What PostgreSQL's own processes have done so far: checkpoints (timed or requested), buffers they wrote, and
    autovacuum and autoanalyze passes over the bench database's tables."""
    checkpoints = _psql(
        ADMIN_URL, "SELECT checkpoints_timed + checkpoints_req, buffers_checkpoint FROM pg_stat_bgwriter"
    )
    passes = _psql(db_url(), "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables")
    if not checkpoints or not passes:
        return 0, 0, 0
    return int(checkpoints[0]), int(checkpoints[1]), int(passes[0])


class CpuMeter:
    """Cores used by the app's workers and by PostgreSQL while a phase runs (2.0 = both cores busy), the WAL the
    cluster wrote meanwhile, and its background work (checkpoints, autovacuum)."""

    def __init__(self, app_pids: list[int]) -> None:
        self.app_pids = app_pids
        self.started = time.monotonic()
        self.app = cpu_seconds(app_pids)
        self.db = postgres_cpu()
        self.wal = wal_written()
        self.background = background_work()

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        wal = wal_written()
        background = background_work()
        return {
            "app_cores": round((cpu_seconds(self.app_pids) - self.app) / elapsed, 2),
            "postgres_cores": round((postgres_cpu() - self.db) / elapsed, 2),
            "wal_bytes": wal[0] - self.wal[0],
            "wal_full_pages": wal[1] - self.wal[1],
            "checkpoints": background[0] - self.background[0],
            "checkpoint_buffers": background[1] - self.background[1],
            "autovacuum_passes": background[2] - self.background[2],
        }


def wal_per_event(figure: dict[str, Any], events_per_request: int = 1) -> str:
    """The WAL a phase wrote per event (KiB) and its full-page images per event, as the report shows them."""
    events = figure.get("requests", 0) * events_per_request
    if not events or "wal_bytes" not in figure:
        return "-"
    return f"{figure['wal_bytes'] / events / 1024:.1f} KiB, {figure['wal_full_pages'] / events:.1f} pages"


class Server:
    def __init__(self, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {
            "FEALTY_DATABASE_URL": db_url("postgresql+asyncpg"),
            "FEALTY_PLATFORM_KEY": PLATFORM_KEY,
            "FEALTY_LOG_LEVEL": "WARNING",
            "FEALTY_EMBEDDED_WORKER": "false",
            "FEALTY_MIGRATE_ON_START": "false",
            "FEALTY_DATABASE_POOL_SIZE": "20",
        }
        # As production runs it: `fealty serve --workers N` (uvicorn with uvloop and httptools, a listening socket
        # per worker), no embedded worker.
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "core.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *("--workers", str(workers)),
            ],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def worker_pids(self) -> list[int]:
        """The worker processes (not the multiprocessing resource tracker)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        children = [int(p) for p in out.split()]
        workers = [p for p in children if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        return workers or [self.process.pid]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


# --- load -----------------------------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(
    url: str, script: str, seconds: int, connections: int, env: dict[str, str], threads: int = 1
) -> dict[str, Any]:
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk" / script),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, env=os.environ | env, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = result.stdout
    # wrk shares the two cores with the app and the database: what it used is what they could not.
    wrk_cores = round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds, 2)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = {}
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s|m)", out)
        if match:
            latency[f"p{pct}_ms"] = round(float(match.group(1)) * UNITS[match.group(2)], 2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rate,
        "requests": total,
        "seconds": seconds,
        "connections": connections,
        **latency,
        "wrk_cores": wrk_cores,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "stderr_sample": result.stderr.strip().splitlines()[:3],
    }


# --- profile --------------------------------------------------------------------------------------------------------


def profile(pid: int, seconds: int) -> dict[str, list[tuple[str, float]]]:
    """Where a server worker spends its time under load (py-spy, sampling the worker while it is on the CPU): the
    project's functions with what they call (inclusive), and the functions where the samples fell (self), as shares
    of the samples. greenlet switches (SQLAlchemy's async bridge) cut some stacks short, so inclusive shares are
    lower bounds."""
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
        path = handle.name
    subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--output",
            path,
            "--nonblocking",
            "--rate",
            "200",
        ],
        capture_output=True,
        check=False,
    )
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        seen = set()
        labels = []
        for frame in stack.split(";"):
            name = re.sub(r" \(.*?:\d+\)$", "", frame)
            module = re.search(r"\((.*?):\d+\)", frame)
            labels.append(label := f"{name} [{_short(module.group(1) if module else '')}]")
            # Inclusive time of the project's own functions (library frames would crowd them out).
            if ("[core/" in label or "[plugins/" in label) and label not in seen:
                seen.add(label)
                inclusive[label] += samples
        if labels:
            own[labels[-1]] += samples
    os.unlink(path)
    if not total:
        return {"inclusive": [], "self": []}
    return {
        "inclusive": [(label, round(100 * n / total, 1)) for label, n in inclusive.most_common(25)],
        "self": [(label, round(100 * n / total, 1)) for label, n in own.most_common(15)],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# --- the run --------------------------------------------------------------------------------------------------------


async def setup_tenant(server: Server) -> tuple[uuid.UUID, str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        created = (
            await http.post(
                "/v1/platform/tenants",
                headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
                json={
                    "name": "Bench",
                    "slug": f"bench-{uuid.uuid4().hex[:6]}",
                    "timezone": "Europe/London",
                    "currency": "GBP",
                },
            )
        ).json()
        key = created["api_key"]["secret"]
        auth = {"Authorization": f"Bearer {key}"}
        rule = await http.post(
            "/v1/earning-rules", headers=auth, json={"name": "10 per GBP", "kind": "per_amount", "points": "10"}
        )
        assert rule.status_code == 201, rule.text
        return uuid.UUID(created["tenant"]["id"]), key


#: Whether the cluster keeps pg_stat_statements (bench/waits.py).
STATEMENTS = False


def measured(server: Server, script: str, seconds: int, connections: int, env: dict[str, str]) -> dict[str, Any]:
    meter = CpuMeter(server.worker_pids())
    database = waits.DatabaseTime(db_url(), STATEMENTS)
    spread: list[list[int]] = []
    # Half-way: the workers have evened out the kernel's first split by then (core/serving.py).
    timer = threading.Timer(seconds / 2, lambda: spread.append(connections_per_worker(server.port)))
    timer.start()
    result = run_wrk(server.url, script, seconds, connections, env)
    timer.cancel()
    return result | meter.cores() | {"database": database.stop(), "per_worker": spread[0] if spread else None}


def connections_per_worker(port: int) -> list[int]:
    """How many of the load's connections each API process holds, largest first (the kernel spreads connections
    over the workers' sockets by a hash of their addresses: with few long-lived connections, rarely evenly)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


async def baseline(
    name: str, tenant_id: uuid.UUID, members: int, seconds: int, label: str, concurrency: int = 2
) -> dict[str, Any]:
    """One baseline of :mod:`bench.baselines`, on the same database, right after the API phase it is compared with
    (so a change in the machine's other load falls on both alike)."""
    url = db_url()
    log(f"{label}: {dict(BASELINES)[name]} for {seconds} s")
    if name == "minimal":
        result = await asyncio.to_thread(baselines.minimal_earn, url, tenant_id, members, seconds, 32, postgres_cpu)
    elif name == "same_writes":
        result = await baselines.same_writes(url, tenant_id, seconds, 16, postgres_cpu)
    elif name == "set_based":
        result = await baselines.set_based(url, tenant_id, seconds, concurrency, postgres_cpu)
    else:
        result = await baselines.plain_reads(url, tenant_id, seconds, 32, postgres_cpu)
    log(f"  {rate(result):.0f}/s {result.get('error', '')}")
    return result


async def scenario(
    server: Server,
    tenant_id: uuid.UUID,
    key: str,
    members: int,
    durations: dict[str, int],
    label: str,
    do_profile: bool,
    batch_connections: int = 4,
) -> dict[str, Any]:
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    env = {"KEY": key, "MEMBERS": str(members), "OCCURRED_AT": occurred_at}
    results: dict[str, Any] = {"label": label}
    log(f"{label}: warm-up")
    run_wrk(server.url, "events.lua", 5, 16, env)
    # The tables the warm-up filled (ledger entries, lots, events) analysed as autovacuum would within a minute: a
    # plan cached while a table looked empty (a foreign key's check by sequential scan) would otherwise skew the run.
    await analyze()
    log(f"{label}: single events for {durations['events']} s")
    results["events"] = measured(server, "events.lua", durations["events"], 32, env)
    log(f"  {results['events']['requests_per_s']:.0f} events/s, p99 {results['events'].get('p99_ms')} ms")
    for name in ("same_writes", "minimal"):
        results[name] = await baseline(name, tenant_id, members, durations["sql"], label)
    log(f"{label}: batches of 1,000 for {durations['batch']} s")
    batch = measured(server, "batch.lua", durations["batch"], batch_connections, env | {"BATCH": "1000"})
    batch["events_per_s"] = round(batch["requests_per_s"] * 1000, 1)
    results["batch"] = batch
    log(f"  {batch['events_per_s']:.0f} events/s in batches")
    results["set_based"] = await baseline(
        "set_based", tenant_id, members, durations["sql"], label, concurrency=batch_connections
    )
    ids = await member_ids(tenant_id, 5000)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(ids))
    balance_env = env | {"IDS_FILE": handle.name}
    log(f"{label}: balance reads for {durations['balance']} s")
    results["balance"] = measured(server, "balance.lua", durations["balance"], 32, balance_env)
    log(f"  {results['balance']['requests_per_s']:.0f} balance reads/s, p99 {results['balance'].get('p99_ms')} ms")
    results["reads"] = await baseline("reads", tenant_id, members, durations["sql"], label)
    results["ratios"] = ratios(results)
    for row in results["ratios"]:
        log(f"  {row['name']}: {row['ratio']:.2f}" + (f" (target {row['target']})" if row["target"] else ""))
    if do_profile:
        # Profiled apart from the measured runs (a sampling profiler slows the worker it samples).
        results["profile"] = {}
        for name, script, connections, extra in (
            ("events", "events.lua", 32, {}),
            ("batch", "batch.lua", batch_connections, {"BATCH": "1000"}),
            ("balance", "balance.lua", 32, {"IDS_FILE": handle.name}),
        ):
            time.sleep(3)  # the previous phase's last requests finish first (a batch takes a second or two)
            log(f"{label}: profiling {name} for {durations['profile']} s")
            with ThreadPoolExecutor(1) as pool:
                sampled = pool.submit(profile, server.worker_pids()[0], durations["profile"])
                run_wrk(server.url, script, durations["profile"], connections, env | extra)
                results["profile"][name] = sampled.result()
    os.unlink(handle.name)
    results["group_commit"] = group_commit_sizes(server)
    results["counts"] = await table_counts()
    return results


def group_commit_sizes(server: Server) -> dict[str, float]:
    """Requests per group commit as one worker saw them (each worker process keeps its own metrics)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("fealty_group_commit_size_sum", "fealty_group_commit_size_count"))
    }
    groups = values.get("fealty_group_commit_size_count", 0.0)
    requests = values.get("fealty_group_commit_size_sum", 0.0)
    return {"groups": groups, "requests": requests, "mean_size": round(requests / groups, 1) if groups else 0.0}


TARGETS = {
    "events": ("single events/s", 1000, "p99 <= 50 ms"),
    "batch": ("events/s in batches of 1,000", 10000, None),
    "balance": ("balance reads/s", 3000, "p99 <= 20 ms"),
}

#: The ratios the issue asks for, each an API figure over a baseline of the same run: (name, API figure, baseline,
#: target, what it says).
RATIOS = (
    ("single / same writes", "events", "same_writes", 1.0, "single events against the same writes by hand, "
     "one transaction per event"),
    ("single / minimal earn (a)", "events", "minimal", None, "single events against the physical limit (pgbench)"),
    ("batch / same writes", "batch", "same_writes", 5.0, "batches of 1,000 against one transaction per event"),
    ("batch / set-based SQL (b)", "batch", "set_based", 0.5, "batches of 1,000 against the same batch by hand"),
    ("reads / plain reads (c)", "balance", "reads", 0.6, "balance reads against the same reads by hand"),
)  # fmt: skip

BASELINES = (
    ("minimal", "(a) minimal earn: pgbench, prepared, 1 transaction per event"),
    ("same_writes", "the same writes as one event, plain SQL (asyncpg), 1 transaction per event"),
    ("set_based", "(b) the same writes set-based, plain SQL, 1 transaction per 1,000 events"),
    ("reads", "(c) balance reads, plain SQL (asyncpg), 1 transaction per read"),
)


def rate(figure: dict[str, Any]) -> float:
    return float(figure.get("events_per_s") or figure.get("requests_per_s") or 0.0)


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, api, base, target, what in RATIOS:
        value = baselines.ratio(rate(result[api]), rate(result[base]))
        out.append({"name": name, "ratio": value, "target": target, "met": None if target is None else value >= target,
                    "what": what})  # fmt: skip
    return out


def ratio_table(run: dict[str, Any]) -> list[str]:
    """The ratios of each data size, with their targets; then the absolute floors."""
    lines = ["| data | ratio | value | target | met |", "|---|---|---|---|---|"]
    for size in ("small", "large"):
        if size not in run:
            continue
        result = run[size]
        for row in result["ratios"]:
            target = "-" if row["target"] is None else f">= {row['target']}"
            met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
            lines.append(f"| {result['label']} | {row['name']} | {row['ratio']:.2f} | {target} | {met} |")
        events, batch, balance = result["events"], result["batch"], result["balance"]
        for label, ok in (
            (f"single events p99 {events.get('p99_ms')} ms (<= 50)", (events.get("p99_ms") or 1e9) <= 50),
            (f"batch events/s {rate(batch):,.0f} (>= 10,000)", rate(batch) >= 10_000),
            (f"balance reads p99 {balance.get('p99_ms')} ms (<= 20)", (balance.get("p99_ms") or 1e9) <= 20),
        ):
            lines.append(f"| {result['label']} | {label} | | | {'yes' if ok else '**no**'} |")
    return lines


def machine_line(run: dict[str, Any]) -> str:
    return (
        f"Machine: {run['machine']['cpus']} CPUs, Python {run['machine']['python']}, {run['machine']['postgres']}; "
        f"**10M-loop time {run['machine'].get('loop_10m_s')} s** (a pure-Python loop of 10M additions: the speed "
        f"of one core, to compare runs); load average at the start {run['machine'].get('load_average')}; "
        f"{run['workers']} uvicorn workers; app, PostgreSQL and the load on the same machine. PostgreSQL settings: "
        f"{run['machine'].get('postgres_settings')}."
    )


async def soak_run(server: Server, tenant_id: uuid.UUID, key: str, members: int, minutes: int) -> dict[str, Any]:
    """Members with points (ledger entries and lots seeded set-based), a one-point voucher, then the soak."""
    log(f"soak: seeding {members * 20:,} ledger entries, so members have points to redeem")
    await seed_ledger(tenant_id, members * 20)
    reward = await soak.create_reward(server.url, key)
    ids = await member_ids(tenant_id, 5000)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(ids))
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    env = {"KEY": key, "MEMBERS": str(members), "OCCURRED_AT": occurred_at, "IDS_FILE": handle.name, "REWARD": reward}
    try:
        log(f"soak: maxima, then {minutes} minutes of mixed load")
        return await asyncio.to_thread(soak.soak, server.url, env, minutes, run_wrk, server.worker_pids, log)
    finally:
        os.unlink(handle.name)


async def open_loop_run(
    server: Server, tenant_id: uuid.UUID, key: str, members: int, share: float, seconds: int
) -> dict[str, Any]:
    """Each kind's maximum closed-loop (wrk, 10 s, as the soak measures it), then ``share`` of it at a constant
    arrival rate from the open-loop generator (bench/openloop.py, its own process), with the app's and PostgreSQL's
    CPU; a pause between phases."""
    ids = await member_ids(tenant_id, 5000)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(ids))
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    env = {"KEY": key, "MEMBERS": str(members), "OCCURRED_AT": occurred_at, "IDS_FILE": handle.name}
    scripts = {"events": "events.lua", "balance": "balance.lua"}
    out: dict[str, Any] = {"share": share, "seconds": seconds, "kinds": {}}
    try:
        for kind, script in scripts.items():
            closed = await asyncio.to_thread(measured, server, script, 10, soak.MAX_CONNECTIONS[kind], env)
            target = round(closed["requests_per_s"] * share, 1)
            log(f"open loop: {kind} maximum {closed['requests_per_s']:.0f}/s closed-loop; {target}/s for {seconds} s")
            # The closed-loop phase grew events, ledger entries and lots from nothing: analysed now, as the standard
            # run does after its warm-up and autovacuum would within a minute, else the plans cached while they were
            # empty (the lots' foreign-key check on ledger_entries) scan each whole table (bench/README.md).
            await analyze()
            time.sleep(3)
            command = [
                PYTHON, "-m", "bench.openloop", "--url", server.url, "--key", key, "--kind", kind,
                "--rate", str(target), "--seconds", str(seconds), "--members", str(members),
                "--ids-file", handle.name, "--json",
            ]  # fmt: skip
            meter = CpuMeter(server.worker_pids())
            done = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, check=True, cwd=ROOT
            )
            result = json.loads(done.stdout.strip().splitlines()[-1]) | meter.cores()
            out["kinds"][kind] = {"closed_loop": closed, "open_loop": result}
            lat = result["latency"]
            log(
                f"  achieved {result['achieved_per_s']}/s, p50 {lat['p50_ms']} p99 {lat['p99_ms']} p99.9 "
                f"{lat['p99.9_ms']} ms, errors {result['errors']}, generator behind: {result['generator_behind']}"
            )
            time.sleep(3)
    finally:
        os.unlink(handle.name)
    return out


def open_loop_markdown(run: dict[str, Any]) -> list[str]:
    result = run["open_loop"]
    lines = [
        f"## Open loop: {result['seconds']} s per kind at {result['share']:.0%} of its closed-loop maximum",
        "",
        "Latency counted from each request's intended send time (coordinated omission corrected); the service time "
        "(from the actual send, what a closed-loop client reports) beside it; the closed-loop figures of the same "
        "kind just before, for comparison.",
        "",
        *openloop.HEADER,
    ]
    for kind, figures in result["kinds"].items():
        lines.append(openloop.line(kind, figures["open_loop"]))
    lines += [
        "",
        "| kind | closed-loop maximum/s | its p50 ms | its p99 ms | app cores (open loop) | PostgreSQL cores |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for kind, figures in result["kinds"].items():
        closed, opened = figures["closed_loop"], figures["open_loop"]
        lines.append(
            f"| {kind} | {closed['requests_per_s']:,.0f} | {closed.get('p50_ms')} | {closed.get('p99_ms')} | "
            f"{opened.get('app_cores')} | {opened.get('postgres_cores')} |"
        )
    return lines


def markdown(run: dict[str, Any]) -> str:
    """The short report: the ratios to the baselines, each figure with its latency and CPU, the profiles."""
    lines = [
        f"# Benchmark run {run['started']}{' (quick)' if run.get('quick') else ''}",
        "",
        machine_line(run),
        "",
        "## Ratios (API over a baseline measured in the same run)",
        "",
        *ratio_table(run),
        "",
        "## Figures",
        "",
        "| data | measure | result | p50 ms | p99 ms | app (or client) cores | PostgreSQL cores | load cores | "
        "WAL per event (full-page images) | checkpoints (buffers written), autovacuum passes | "
        "connections per worker |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in ("small", "large"):
        if size not in run:
            continue
        result = run[size]
        for name, (what, _target, _latency) in TARGETS.items():
            figure = result[name]
            lines.append(
                f"| {result['label']} | API {what} ({figure.get('connections')} connections) | {rate(figure):,.0f} | "
                f"{figure.get('p50_ms')} | {figure.get('p99_ms')} | {figure.get('app_cores')} | "
                f"{figure.get('postgres_cores')} | {figure.get('wrk_cores')} | "
                f"{wal_per_event(figure, 1000 if name == 'batch' else 1)} | "
                f"{figure.get('checkpoints', '-')} ({figure.get('checkpoint_buffers', '-')}), "
                f"{figure.get('autovacuum_passes', '-')} | {figure.get('per_worker') or '-'} |"
            )
        for name, what in BASELINES:
            figure = result[name]
            if "error" in figure:
                lines.append(f"| {result['label']} | {what} | {figure['error']} | | | | | | | | |")
                continue
            lines.append(
                f"| {result['label']} | {what} ({figure.get('concurrency')} connections) | {rate(figure):,.0f} | "
                f"{figure.get('p50_ms')} | {figure.get('p99_ms')} | {figure.get('client_cores')} | "
                f"{figure.get('postgres_cores')} | - | - | - | - |"
            )
    if "large" in run and "small" in run:
        lines += ["", "Large data set against small (1.00 = the same; within 20 % asked), absolute figures:", ""]
        for name in TARGETS:
            lines.append(f"- {name}: {rate(run['large'][name]) / rate(run['small'][name]):.2f}")
        lines += ["", "Each ratio to its baseline, large against small (less moved by the machine's load):", ""]
        for small, large in zip(run["small"]["ratios"], run["large"]["ratios"], strict=True):
            if small["ratio"]:
                lines.append(f"- {small['name']}: {large['ratio'] / small['ratio']:.2f}")
    lines += ["", f"Group commit (one worker): {run['small'].get('group_commit')}", ""]
    lines += ["## Where PostgreSQL's time went (bench/waits.py)", ""]
    for size in ("small", "large"):
        for name, (what, _target, _latency) in TARGETS.items() if size in run else ():
            if "database" in run[size][name]:
                lines += waits.markdown(run[size]["label"], f"API {what}", run[size][name]["database"])
    for name, rows in run["small"].get("profile", {}).items():
        lines += [f"## Profile: {name} (one worker, % of the samples while on the CPU)", "", "```", "inclusive:"]
        lines += [f"{share:5.1f}  {label}" for label, share in rows["inclusive"]]
        lines += ["self:"]
        lines += [f"{share:5.1f}  {label}" for label, share in rows["self"]]
        lines += ["```", ""]
    return "\n".join(lines)


def write_report(run: dict[str, Any]) -> Path:
    """bench/results/<time>.json (every figure) and the short report: bench/results/latest.md for a full run,
    bench/results/quick.md for a quick one (not committed: a quick run is a check, not the report)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = BENCH / "results" / f"{stamp}{'-quick' if run.get('quick') else ''}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    (BENCH / "results" / ("quick.md" if run.get("quick") else "latest.md")).write_text(markdown(run))
    return path


async def main() -> None:
    global ADMIN_URL, POSTMASTER
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--scale", action="store_true", help="also at 1M members and 10M ledger entries")
    parser.add_argument("--profile", action="store_true", help="profile in quick mode too (8 s per phase)")
    parser.add_argument(
        "--soak", type=int, metavar="MINUTES", help="instead: mixed load for MINUTES at 70 %% of the maximum"
    )
    parser.add_argument(
        "--open-loop",
        action="store_true",
        help="instead: latency at a constant arrival rate (bench/openloop.py), a share of each closed-loop maximum",
    )
    parser.add_argument("--open-loop-share", type=float, default=0.7, help="the share of the maximum (default 0.7)")
    parser.add_argument("--open-loop-seconds", type=int, default=30, help="seconds per kind (default 30)")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=4,
        help="connections sending batches of 1,000, for the API and for the set-based baseline (b) alike (default "
        "4: two per API worker, so that each computes one batch while another's writes are in the database)",
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="use the running PostgreSQL at FEALTY_BENCH_ADMIN_URL (default: a cluster of the bench's own)",
    )
    args = parser.parse_args()
    durations = (
        {"events": 10, "batch": 12, "balance": 10, "sql": 10, "profile": 8}
        if args.quick
        else {"events": 60, "batch": 60, "balance": 60, "sql": 30, "profile": 15}
    )
    log("timing a pure-Python loop of 10M additions")
    loop_10m = baselines.loop_seconds()
    log(f"  {loop_10m} s")
    cluster = None if args.server else Cluster()
    if cluster is not None:
        ADMIN_URL, POSTMASTER = cluster.url, cluster.postmaster
    machine = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "postgres": subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip(),
        "postgres_settings": "the machine's server" if cluster is None else CLUSTER_SETTINGS,
        "loop_10m_s": loop_10m,
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    run: dict[str, Any] = {
        "machine": machine,
        "workers": args.workers,
        "batch_connections": args.batch_connections,
        "started": datetime.now(UTC).isoformat(),
        "quick": args.quick,
    }
    try:
        log("fresh database")
        await fresh_database()
        server = Server(args.workers)
        try:
            tenant_id, key = await setup_tenant(server)
            await seed_members(tenant_id, 0, args.members)
            if args.soak:
                run["soak"] = await soak_run(server, tenant_id, key, args.members, args.soak)
                return
            if args.open_loop:
                run["open_loop"] = await open_loop_run(
                    server, tenant_id, key, args.members, args.open_loop_share, args.open_loop_seconds
                )
                return
            run["small"] = await scenario(
                server,
                tenant_id,
                key,
                args.members,
                durations,
                f"{args.members:,} members",
                do_profile=args.profile or not args.quick,
                batch_connections=args.batch_connections,
            )
            if args.scale:
                log("seeding 1M members and 10M ledger entries")
                await seed_members(tenant_id, args.members, 1_000_000 - args.members)
                await seed_ledger(tenant_id, 10_000_000)
                run["large"] = await scenario(
                    server,
                    tenant_id,
                    key,
                    1_000_000,
                    durations,
                    "1M members, 10M+ ledger entries",
                    do_profile=False,
                    batch_connections=args.batch_connections,
                )
        finally:
            server.stop()
    finally:
        if cluster is not None:
            cluster.stop()
        if "soak" in run:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            (BENCH / "results" / f"{stamp}-soak.json").write_text(json.dumps(run, indent=2, default=str))
            text = "\n".join([f"# Soak run {run['started']}", "", machine_line(run), "", *soak.markdown(run["soak"])])
            (BENCH / "results" / "soak.md").write_text(text + "\n")
            print(text)
        if "open_loop" in run:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            (BENCH / "results" / f"{stamp}-openloop.json").write_text(json.dumps(run, indent=2, default=str))
            text = "\n".join([f"# Open-loop run {run['started']}", "", machine_line(run), "", *open_loop_markdown(run)])
            (BENCH / "results" / "openloop.md").write_text(text + "\n")
            print(text)
    if "soak" in run or "open_loop" in run:
        return
    path = write_report(run)
    log(f"results written to {path.relative_to(ROOT)} and bench/results/{'quick' if args.quick else 'latest'}.md")
    print(markdown(run).split("## Figures")[0] if args.quick else markdown(run).split("## Profile")[0])


if __name__ == "__main__":
    # Stopped with SIGTERM (kill, a CI timeout), it still stops its server and its PostgreSQL cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
