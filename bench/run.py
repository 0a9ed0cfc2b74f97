"""Fealty benchmark: events and balances through the real HTTP API on PostgreSQL (durable commits), the app and the
database on this machine, load from wrk on loopback; the same writes as plain SQL for comparison; a profile.

    python -m bench.run                 # the standard run (about 6 minutes)
    python -m bench.run --quick         # a smoke run (short durations)
    python -m bench.run --scale         # also at 1M members and 10M ledger entries (adds ~15 minutes of seeding)

Figures go to bench/results/<time>.json and into the "Latest results" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ADMIN_URL = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
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


async def seed_ledger(tenant_id: uuid.UUID, entries: int, chunk: int = 1_000_000) -> None:
    """``entries`` posted earn entries with their lots, spread over the tenant's members; balances made to match."""
    conn = await asyncpg.connect(db_url())
    try:
        await conn.execute(
            "CREATE TEMP TABLE ids AS SELECT row_number() OVER () AS n, id FROM members WHERE tenant_id = $1", tenant_id
        )
        members = await conn.fetchval("SELECT count(*) FROM ids")
        done = 0
        while done < entries:
            size = min(chunk, entries - done)
            await conn.execute(
                """
                WITH rows AS (
                    SELECT gen_random_uuid() AS id, (SELECT id FROM ids WHERE n = 1 + (i % $2)) AS member_id,
                           1 + (i % 300) AS points, now() - (i % 700) * interval '1 hour' AS at
                    FROM generate_series($3::bigint, $4::bigint) AS i
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
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "core.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
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
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()] or [self.process.pid]

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
    result = subprocess.run(command, env=os.environ | env, capture_output=True, text=True, check=True)
    out = result.stdout
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
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "stderr_sample": result.stderr.strip().splitlines()[:3],
    }


# --- plain SQL baseline ---------------------------------------------------------------------------------------------


async def sql_baseline(tenant_id: uuid.UUID, members: int, seconds: int, concurrency: int) -> dict[str, Any]:
    """The writes of one event as hand-written SQL on asyncpg, as the app role under row-level security: the event
    row, the balance update, the ledger entry, the lot, the metric upserts, in one transaction each."""
    # Member ids are read as the owner: the app role sees nothing without a tenant set (row-level security).
    owner = await asyncpg.connect(db_url())
    ids = [r["id"] for r in await owner.fetch("SELECT id FROM members WHERE tenant_id = $1 LIMIT 20000", tenant_id)]
    await owner.close()
    pool = await asyncpg.create_pool(
        db_url(), min_size=concurrency, max_size=concurrency, server_settings={"role": "fealty_app", "jit": "off"}
    )
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    prefix = uuid.uuid4().hex[:8]
    counter = 0

    async def one_client() -> None:
        nonlocal counter
        import random

        async with pool.acquire() as conn:
            insert_event = await conn.prepare(
                "INSERT INTO events (tenant_id, id, event_id, type, member_id, occurred_at, received_at, local_day, "
                "amount, currency, attributes, status, points, reversed_points, reversed_fraction, request_hash, "
                "outcome) VALUES ($1, gen_random_uuid(), $2, 'purchase', $3, now(), now(), current_date, $4, 'GBP', "
                "'{}', 'awarded', $5, 0, 0, 'x', '{}') ON CONFLICT DO NOTHING RETURNING id"
            )
            update_balance = await conn.prepare(
                "UPDATE point_balances SET available = available + $3, lifetime_earned = lifetime_earned + $3, "
                "last_activity_at = now(), updated_at = now() WHERE tenant_id = $1 AND member_id = $2 "
                "RETURNING available"
            )
            insert_entry = await conn.prepare(
                "INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id, "
                "created_at, details) VALUES ($1, $2, $3, 'earn', $4, 'posted', 'event', $5, now(), '{}')"
            )
            insert_lot = await conn.prepare(
                "INSERT INTO lots (tenant_id, id, member_id, points, remaining, reversed, status, kind, earned_at) "
                "VALUES ($1, $2, $3, $4, $4, 0, 'posted', 'earn', now())"
            )
            upsert_metric = await conn.prepare(
                "INSERT INTO member_metrics (tenant_id, member_id, metric, day, value) "
                "SELECT $1, $2, m, current_date, v FROM unnest($3::text[], $4::numeric[]) AS x(m, v) "
                "ON CONFLICT (tenant_id, member_id, metric, day) DO UPDATE "
                "SET value = member_metrics.value + excluded.value"
            )
            while time.monotonic() < deadline:
                counter += 1
                member = random.choice(ids)
                points = random.randint(10, 2000)
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                    event_uuid = await insert_event.fetchval(
                        tenant_id, f"sql-{prefix}-{counter}", member, points / 10, points
                    )
                    await update_balance.fetchval(tenant_id, member, points)
                    entry = uuid.uuid4()
                    await insert_entry.fetchval(tenant_id, entry, member, points, str(event_uuid))
                    await insert_lot.fetchval(tenant_id, entry, member, points)
                    await upsert_metric.fetchval(
                        tenant_id, member, ["points", "spend", "events"], [points, points / 10, 1]
                    )
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    await pool.close()
    latencies.sort()
    return {
        "events_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "concurrency": concurrency,
    }


# --- profile --------------------------------------------------------------------------------------------------------


def profile(pid: int, seconds: int) -> list[tuple[str, float]]:
    """Where a server worker spends its time under load (py-spy, sampling): the top functions, inclusive."""
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
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        seen = set()
        for frame in stack.split(";"):
            name = re.sub(r" \(.*?:\d+\)$", "", frame)
            module = re.search(r"\((.*?):\d+\)", frame)
            where = module.group(1) if module else ""
            label = f"{name} [{_short(where)}]"
            if label not in seen:
                seen.add(label)
                inclusive[label] += samples
    os.unlink(path)
    if not total:
        return []
    return [(label, round(100 * n / total, 1)) for label, n in inclusive.most_common(40)]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
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


async def scenario(
    server: Server,
    tenant_id: uuid.UUID,
    key: str,
    members: int,
    durations: dict[str, int],
    label: str,
    do_profile: bool,
) -> dict[str, Any]:
    occurred_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    env = {"KEY": key, "MEMBERS": str(members), "OCCURRED_AT": occurred_at}
    results: dict[str, Any] = {"label": label}
    log(f"{label}: warm-up")
    run_wrk(server.url, "events.lua", 5, 16, env)
    log(f"{label}: single events for {durations['events']} s")
    if do_profile:
        import threading

        profile_out: list[Any] = []
        pid = server.worker_pids()[0]
        thread = threading.Thread(target=lambda: profile_out.append(profile(pid, min(20, durations["events"]))))
        thread.start()
        results["events"] = run_wrk(server.url, "events.lua", durations["events"], 32, env)
        thread.join()
        results["profile"] = profile_out[0] if profile_out else []
    else:
        results["events"] = run_wrk(server.url, "events.lua", durations["events"], 32, env)
    log(f"  {results['events']['requests_per_s']:.0f} events/s, p99 {results['events'].get('p99_ms')} ms")
    log(f"{label}: batches of 1,000 for {durations['batch']} s")
    batch = run_wrk(server.url, "batch.lua", durations["batch"], 2, env | {"BATCH": "1000"})
    batch["events_per_s"] = round(batch["requests_per_s"] * 1000, 1)
    results["batch"] = batch
    log(f"  {batch['events_per_s']:.0f} events/s in batches")
    ids = await member_ids(tenant_id, 5000)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(ids))
    log(f"{label}: balance reads for {durations['balance']} s")
    results["balance"] = run_wrk(server.url, "balance.lua", durations["balance"], 32, env | {"IDS_FILE": handle.name})
    os.unlink(handle.name)
    log(f"  {results['balance']['requests_per_s']:.0f} balance reads/s, p99 {results['balance'].get('p99_ms')} ms")
    log(f"{label}: the same writes as plain SQL for {durations['sql']} s")
    results["sql"] = await sql_baseline(tenant_id, members, durations["sql"], 16)
    log(f"  {results['sql']['events_per_s']:.0f} events/s as plain SQL")
    results["api_vs_sql"] = round(results["events"]["requests_per_s"] / results["sql"]["events_per_s"], 2)
    results["counts"] = await table_counts()
    return results


def write_report(run: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = BENCH / "results" / f"{stamp}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    return path


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--scale", action="store_true", help="also at 1M members and 10M ledger entries")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    durations = (
        {"events": 10, "batch": 10, "balance": 10, "sql": 10}
        if args.quick
        else {"events": 60, "batch": 30, "balance": 30, "sql": 30}
    )
    machine = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "postgres": subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    log("fresh database")
    await fresh_database()
    server = Server(args.workers)
    run: dict[str, Any] = {"machine": machine, "workers": args.workers, "started": datetime.now(UTC).isoformat()}
    try:
        tenant_id, key = await setup_tenant(server)
        await seed_members(tenant_id, 0, args.members)
        run["small"] = await scenario(
            server, tenant_id, key, args.members, durations, f"{args.members:,} members", do_profile=True
        )
        if args.scale:
            log("seeding 1M members and 10M ledger entries")
            await seed_members(tenant_id, args.members, 1_000_000 - args.members)
            await seed_ledger(tenant_id, 10_000_000)
            run["large"] = await scenario(
                server, tenant_id, key, 1_000_000, durations, "1M members, 10M+ ledger entries", do_profile=False
            )
    finally:
        server.stop()
    path = write_report(run)
    log(f"results written to {path.relative_to(ROOT)}")
    print(json.dumps({k: v for k, v in run.items() if k != "machine"}, indent=2, default=str)[:4000])


if __name__ == "__main__":
    asyncio.run(main())
