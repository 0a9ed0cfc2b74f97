"""The worker's cost with many quiet tenants: ``python -m bench.scheduler [--tenants 10 10000] [--seconds 600]``.

For each tenant count: a fresh database (on the PostgreSQL at FEALTY_BENCH_ADMIN_URL), that many tenants with a
plausible plugin mix (40 % hotel, 30 % fuel, 30 % none), a share of them with a few members (``--active-share``, 0
by default: no activity), then one ``fealty worker`` process with its metrics port. After a warm-up (its start-up
pass over every tenant), every sweep is made due at once (as each is once per interval: the daily kinds' jobs then
fall due over the day at each tenant's offset, as on any day), and for ``--seconds``: the worker's CPU, the CPU of
the PostgreSQL backends serving that database, the rows written per second (pg_stat_database), the jobs run, and how
late due jobs started (the worker's ``fealty_job_lateness_seconds`` histogram). Run twice: with the default
intervals, and with only what a quiet tenant needs on a timer (``--quiet``: the minutely release and dispatch at one
hour; dispatch is woken by requests anyway). Prints a Markdown table; bench/README.md discusses it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

ADMIN_URL = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _backends(database: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f" {database} " in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _database(tenants: int, active_share: float = 0.0, members_each: int = 5) -> tuple[str, str]:
    name = f"fealty_bench_sched_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from core.db.migrate import upgrade_async

    await upgrade_async(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    conn = await asyncpg.connect(url)
    mix = [["hotel"]] * 4 + [["fuel"]] * 3 + [[]] * 3
    rows = [(uuid.uuid4(), f"Tenant {i}", f"bench-{i}", json.dumps(mix[i % 10]), "UTC", "EUR") for i in range(tenants)]
    await conn.executemany(
        "INSERT INTO tenants (id, name, slug, status, billing_status, enabled_plugins, timezone, currency, created_at,"
        " updated_at, cancel_at_period_end, subscription_invoiced)"
        " VALUES ($1, $2, $3, 'active', 'none', $4::jsonb, $5, $6, now(), now(), false, false)",
        rows,
    )
    await conn.executemany(  # each tenant's program (as the platform's tenant creation makes it)
        "INSERT INTO programs (tenant_id, timezone, currency, points_name, expiry_kind, reversal_policy,"
        " config_version, auto_enrol, options, updated_at)"
        " VALUES ($1, 'UTC', 'EUR', 'points', 'never', 'claw_back', 0, false, $2::jsonb, now())",
        [(r[0], json.dumps({"plugins": json.loads(r[3])})) for r in rows],
    )
    # "Little activity": a share of the tenants (spread over the plugin mix) have a few members, so their daily
    # work (the loyalty run, the plugins' jobs) is due somewhere in each interval; the others have nothing.
    active = [r[0] for i, r in enumerate(rows) if active_share and i % max(1, round(1 / active_share)) == 0]
    await conn.executemany(
        "INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'active', '{}'::jsonb, now(), now())",
        [(t, uuid.uuid4(), f"m-{n}") for t in active for n in range(members_each)],
    )
    await conn.close()
    return name, url


async def _written(url: str, name: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = $1", name
        )
        return int(row[0])
    finally:
        await conn.close()


async def _scheduled(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM job_schedules"))
    finally:
        await conn.close()


def _histogram(text: str) -> tuple[float, float, dict[float, float]]:
    count = total = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "fealty_job_lateness_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name.endswith("_count"):
                count += s.value
            elif s.name.endswith("_sum"):
                total += s.value
    return count, total, buckets


def _quantile(buckets: dict[float, float], count: float, q: float) -> str:
    for le in sorted(buckets):
        if count and buckets[le] >= q * count:
            return f"≤ {le:g} s"
    return "-"


async def measure(
    tenants: int, seconds: int, quiet: bool, active_share: float = 0.0, members_each: int = 5
) -> dict[str, object]:
    name, url = await _database(tenants, active_share, members_each)
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")} | {
        "FEALTY_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "FEALTY_LOG_LEVEL": "WARNING",
        "FEALTY_WORKER_METRICS_PORT": str(port),
    }
    if quiet:
        env |= {"FEALTY_RELEASE_EVERY_SECONDS": "3600", "FEALTY_DISPATCH_EVERY_SECONDS": "3600"}
    worker = subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env)
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        # Start-up: the worker's first pass writes the schedule (one row per swept kind, one per tenant and kind for
        # the rest, first runs spread over each interval); measure from the end of it.
        began = time.monotonic()
        deadline = began + 300
        while time.monotonic() < deadline:
            try:
                if "fealty_jobs_total" in httpx.get(metrics).text and await _scheduled(url):
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
        await asyncio.sleep(5)
        warm_up = time.monotonic() - began
        # Steady state: every sweep falls due now, as each does once per interval. The daily kinds' jobs then fall
        # due over the day at each tenant's offset (core/jobs/sweeps.py spread), at the rate they would any day.
        conn = await asyncpg.connect(url)
        await conn.execute("UPDATE job_schedules SET next_due_at = now() WHERE scope = 'sweep'")
        await conn.close()
        before_cpu, before_pg = _cpu_seconds(worker.pid), {p: _cpu_seconds(p) for p in _backends(name)}
        before_rows, before_hist = await _written(url, name), _histogram(httpx.get(metrics).text)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        worker_cpu = (_cpu_seconds(worker.pid) - before_cpu) / elapsed
        pg_cpu = sum(_cpu_seconds(p) - before_pg.get(p, 0.0) for p in _backends(name)) / elapsed
        rows = (await _written(url, name) - before_rows) / elapsed
        count, total, buckets = _histogram(httpx.get(metrics).text)
        ran = count - before_hist[0]
        window = {le: v - before_hist[2].get(le, 0.0) for le, v in buckets.items()}
        within_5s = window.get(5.0, 0.0) / ran if ran else 1.0
        return {
            "tenants": tenants,
            "quiet": quiet,
            "active_share": active_share,
            "start_up_s": round(warm_up, 1),
            "worker_cores": round(worker_cpu, 4),
            "postgres_cores": round(pg_cpu, 4),
            "rows_written_per_s": round(rows, 2),
            "jobs_run": int(ran),
            "jobs_per_s": round(ran / elapsed, 3),
            "lateness_p50": _quantile(window, ran, 0.5),
            "lateness_p99": _quantile(window, ran, 0.99),
            "started_within_5s": f"{100 * within_5s:.1f} %",
            "mean_lateness_s": round((total - before_hist[1]) / ran, 3) if ran else 0.0,
        }
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        conn = await asyncpg.connect(ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--modes", nargs="+", choices=["default", "quiet"], default=["default", "quiet"])
    parser.add_argument(
        "--active-share",
        type=float,
        default=0.0,
        help="the share of tenants with a few members (their daily work falls due during the window); 0: all idle",
    )
    parser.add_argument("--members-each", type=int, default=5, help="members of each active tenant")
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = []
    for mode in args.modes:
        for tenants in args.tenants:
            result = await measure(tenants, args.seconds, mode == "quiet", args.active_share, args.members_each)
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "\n| intervals | tenants | active share | worker cores | PostgreSQL cores | rows written/s | jobs/s |"
        " jobs run | lateness p50 | p99 | started ≤ 5 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {'quiet' if r['quiet'] else 'default'} | {r['tenants']:,} | {r['active_share']} | "
            f"{r['worker_cores']} | {r['postgres_cores']} | {r['rows_written_per_s']} | {r['jobs_per_s']} | "
            f"{r['jobs_run']} | {r['lateness_p50']} | {r['lateness_p99']} | {r['started_within_5s']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
