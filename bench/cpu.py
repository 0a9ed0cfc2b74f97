"""The app's CPU per event and per read, in one process, without HTTP load or a second core to share: a measure that
holds still on a busy machine (CPU time of this process, not wall time), for before/after comparisons of the event
path. PostgreSQL's CPU is given beside it: that of the backends of this run's own database (from /proc, so the
machine's PostgreSQL must run on this host), per event.

    python -m bench.cpu [--batches 8] [--singles 400] [--reads 400] [--profile batch|single|read]

A fresh database on the machine's PostgreSQL (FEALTY_BENCH_ADMIN_URL), dropped afterwards; the app in process
(``httpx.ASGITransport``), one tenant with one earning rule, 10,000 members.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from bench.run import cpu_seconds
from core.app import create_app
from core.db.migrate import upgrade_async
from core.plugin.manager import PluginManager
from core.testing import TEST_PLATFORM_KEY, settings_for_tests

ADMIN_URL = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MEMBERS = 10_000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--singles", type=int, default=400)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--profile", choices=("batch", "single", "read"))
    parser.add_argument(
        "--statements", action="store_true", help="print the SQL statements of one batch, one event and one read"
    )
    args = parser.parse_args()
    name = f"fealty_cpu_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await upgrade_async(url)
        app = create_app(settings_for_tests(url, database_pool_size=10), plugins=PluginManager())
        async with app.lifespan():
            await run(app, f"{base}/{name}", args, name)
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _backend_cpu(owner_url: str, database: str) -> dict[int, float]:
    """CPU seconds so far of each backend connected to ``database`` (this run's app pool, not other sessions')."""
    conn = await asyncpg.connect(owner_url)
    try:
        pids = [
            r["pid"]
            for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        ]
    finally:
        await conn.close()
    return {pid: cpu_seconds([pid]) for pid in pids}


async def run(app: Any, owner_url: str, args: argparse.Namespace, database: str = "") -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as http:
        created = (
            await http.post(
                "/v1/platform/tenants",
                headers={"Authorization": f"Bearer {TEST_PLATFORM_KEY}"},
                json={"name": "CPU", "slug": "cpu", "timezone": "Europe/London", "currency": "GBP"},
            )
        ).json()
        tenant_id = uuid.UUID(created["tenant"]["id"])
        auth = {"Authorization": f"Bearer {created['api_key']['secret']}"}
        rule = await http.post(
            "/v1/earning-rules", headers=auth, json={"name": "10 per GBP", "kind": "per_amount", "points": "10"}
        )
        assert rule.status_code == 201, rule.text
        owner = await asyncpg.connect(owner_url)
        await owner.execute(
            "INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at) "
            "SELECT $1, gen_random_uuid(), 'm-' || i, 'active', '{}'::jsonb, now(), now() "
            "FROM generate_series(1, $2::bigint) AS i",
            tenant_id,
            MEMBERS,
        )
        await owner.execute(
            "INSERT INTO point_balances (tenant_id, member_id, available, pending, lifetime_earned, lifetime_redeemed, "
            "lifetime_expired, lifetime_adjusted, lifetime_written_off, last_activity_at, updated_at) "
            "SELECT tenant_id, id, 0, 0, 0, 0, 0, 0, 0, now(), now() FROM members WHERE tenant_id = $1",
            tenant_id,
        )
        await owner.execute("ANALYZE")
        ids = [str(r["id"]) for r in await owner.fetch("SELECT id FROM members LIMIT 2000")]
        await owner.close()
        at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        counter = 0

        def event() -> dict[str, Any]:
            nonlocal counter
            counter += 1
            return {
                "type": "purchase",
                "event_id": f"e-{counter}",
                "member": {"external_id": f"m-{random.randint(1, MEMBERS)}"},
                "occurred_at": at,
                "amount": f"{random.randint(1, 200)}.50",
            }

        async def batch() -> None:
            response = await http.post(
                "/v1/events/batch", headers=auth, json={"events": [event() for _ in range(1000)]}
            )
            assert response.status_code == 200, response.text[:300]

        async def single() -> None:
            response = await http.post("/v1/events", headers=auth, json=event())
            assert response.status_code == 201, response.text[:300]

        async def read() -> None:
            response = await http.get(f"/v1/members/{random.choice(ids)}/balance", headers=auth)
            assert response.status_code == 200, response.text[:300]

        await batch()  # warm-up: caches, prepared statements
        # The tables the warm-up filled analysed, as autovacuum would (a plan made while ledger_entries looked empty
        # checks each lot's foreign key by a sequential scan).
        owner = await asyncpg.connect(owner_url)
        await owner.execute("ANALYZE")
        await owner.close()
        for _ in range(20):
            await single()
            await read()
        if args.statements:
            seen: list[list[Any]] = []

            def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
                seen.append([" ".join(statement.split())[:110], time.perf_counter()])

            def after(*_: Any) -> None:
                seen[-1][1] = time.perf_counter() - seen[-1][1]

            sa_event.listen(Engine, "before_cursor_execute", before)
            sa_event.listen(Engine, "after_cursor_execute", after)
            for label, call in (("batch of 1,000", batch), ("single event", single), ("balance read", read)):
                seen.clear()
                await call()
                print(f"{label}: {len(seen)} statements (BEGIN and COMMIT not counted), wall ms of each")
                for statement, seconds in seen:
                    print(f"  {seconds * 1000:8.1f}  {statement}")
            sa_event.remove(Engine, "before_cursor_execute", before)
            sa_event.remove(Engine, "after_cursor_execute", after)
        for label, call, count, per in (
            ("batch", batch, args.batches, 1000),
            ("single", single, args.singles, 1),
            ("read", read, args.reads, 1),
        ):
            if not count:
                continue
            profiler = cProfile.Profile() if args.profile == label else None
            backends = await _backend_cpu(owner_url, database)
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for _ in range(count):
                await call()
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = await _backend_cpu(owner_url, database)
            database_cpu = sum(seconds - backends.get(pid, 0.0) for pid, seconds in after.items())
            unit = "event" if label != "read" else "read"
            print(
                f"{label:7s} app CPU {cpu * 1e6 / (count * per):8.0f} us per {unit}, PostgreSQL (its backends) "
                f"{database_cpu * 1e6 / (count * per):6.0f} us  (wall {wall:.2f} s)",
                flush=True,
            )
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
                if os.environ.get("BENCH_PROFILE_DUMP"):
                    profiler.dump_stats(os.environ["BENCH_PROFILE_DUMP"])


if __name__ == "__main__":
    asyncio.run(main())
