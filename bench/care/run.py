"""Care engine benchmarks (not timed tests): daily triggers over many members, and delivery against a moto server.

    .venv/bin/python -m bench.care.run triggers --members 1000000
    .venv/bin/python -m bench.care.run delivery --messages 10000

``triggers`` seeds members straight into a fresh SQLite file (or FEALTY_BENCH_DATABASE_URL) in bulk, sets up birthday,
anniversary and lapsing rules, and times one evaluation of every rule (what the worker's ``care.occasions`` job does
for the tenant), with the peak memory it used. ``delivery`` queues messages and times the worker's delivery rounds
against a moto server, then a bare boto3 loop sending as many emails to the same server; it checks that each message
went out once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from core.app import create_app
from core.care import delivery
from core.care.messages import OccasionIn, raise_occasions
from core.care.models import CareRule, CareTemplate
from core.care.occasions import evaluate
from core.care.protection_models import CareSettings
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.migrate import upgrade_async
from core.ids import new_id
from core.ledger.models import PointBalance
from core.members.models import Member
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.testing import create_tenant, settings_for_tests

NOW = datetime(2031, 6, 10, 10, tzinfo=UTC)
ADMIN = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DOMAIN = "bench.fealty-demo.com"


async def _app(url: str, **settings: Any) -> tuple[Any, httpx.AsyncClient, Runtime]:
    await upgrade_async(url)
    app = create_app(settings_for_tests(url, **settings), plugins=PluginManager())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120)
    return app, client, app.state["runtime"]


async def _rule(runtime: Runtime, tenant_id: uuid.UUID, trigger: str, params: dict[str, Any], purpose: str) -> None:
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        template_id = new_id()
        session.add(
            CareTemplate(
                tenant_id=tenant_id,
                id=template_id,
                name=trigger,
                trigger=trigger,
                default_locale="en",
                texts={"en": {"subject": f"{trigger} {{{{ member.first_name }}}}", "body": "Hello"}},
            )
        )
        await session.flush()
        session.add(
            CareRule(
                tenant_id=tenant_id,
                id=new_id(),
                name=trigger,
                trigger=trigger,
                params=params,
                audience={},
                purpose=purpose,
                category="notice",
                channels=["email"],
                template_id=template_id,
                active=True,
            )
        )


class _Rss:
    """The process's resident memory, sampled every 10 ms by a thread: the peak while a block runs, without
    tracemalloc's cost on every allocation (which would slow the run it measures several times over)."""

    def __init__(self) -> None:
        self.page = resource.getpagesize()
        self.peak = self.start = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> _Rss:
        self.peak = self.start = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


async def _pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database on FEALTY_BENCH_ADMIN_URL (dropped after the run)."""
    import asyncpg

    name = f"fealty_bench_care_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def _pg_drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def triggers(members: int, url: str | None, *, postgres: bool = False, trace: bool = False) -> None:
    fresh = None
    if postgres and not url:
        fresh, url = await _pg_database()
    try:
        await _triggers(members, url, trace)
    finally:
        if fresh:
            await _pg_drop(fresh)


async def _triggers(members: int, url: str | None, trace: bool) -> None:
    path = Path(tempfile.mkdtemp()) / "care-bench.db"
    url = url or f"sqlite+aiosqlite:///{path}"
    app, client, runtime = await _app(url)
    async with app.lifespan():
        tenant = await create_tenant(client, timezone="Europe/London", currency="GBP")
        for trigger, params in (("birthday", {"min_member_days": 7}), ("anniversary", {}), ("lapsing", {"days": 90})):
            await _rule(runtime, tenant.id, trigger, params, "service")
        started = time.perf_counter()
        m, b = table_of(Member), table_of(PointBalance)
        batch = 20_000
        for start in range(0, members, batch):
            rows, balances = [], []
            for i in range(start, min(members, start + batch)):
                member_id = new_id()
                enrolled = NOW - timedelta(days=30 + i % 1500, hours=i % 24)
                rows.append(
                    {
                        "tenant_id": tenant.id,
                        "id": member_id,
                        "external_id": f"b{i}",
                        "email": f"m{i}@example.com",
                        "birthday": date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
                        "status": "active",
                        "attributes": {},
                        "created_at": enrolled,
                        "updated_at": enrolled,
                    }
                )
                balances.append(
                    {
                        "tenant_id": tenant.id,
                        "member_id": member_id,
                        "available": 0,
                        "pending": 0,
                        "lifetime_earned": 0,
                        "lifetime_redeemed": 0,
                        "lifetime_expired": 0,
                        "lifetime_adjusted": 0,
                        "lifetime_written_off": 0,
                        "last_activity_at": NOW - timedelta(days=i % 200),
                        "updated_at": NOW,
                    }
                )
            async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                await session.execute(insert(m), rows)
                await session.execute(insert(b), balances)
        print(f"seeded {members:,} members in {time.perf_counter() - started:.1f} s", flush=True)
        # The planner's statistics after a bulk load (as autovacuum would gather them), as the table owner.
        if runtime.engine.dialect.name == "postgresql":
            import asyncpg

            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
            try:
                await conn.execute("ANALYZE")
            finally:
                await conn.close()
        else:
            async with runtime.engine.connect() as sqlite_conn:
                await sqlite_conn.execute(text("ANALYZE"))
                await sqlite_conn.commit()
        if trace:
            tracemalloc.start()
        with _Rss() as rss:
            started = time.perf_counter()
            raised = await evaluate(runtime, tenant.id, NOW)
            elapsed = time.perf_counter() - started
        traced = ""
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            traced = f"; peak traced Python memory {peak / 2**20:.1f} MiB (tracemalloc on: the time is slower)"
        print(
            f"triggers ({runtime.engine.dialect.name}): {members:,} members, 3 rules, {raised.occasions:,} occasions, "
            f"{raised.messages:,} messages in {elapsed:.1f} s ({elapsed / max(raised.messages, 1) * 1000:.2f} ms a "
            f"message); resident memory {rss.start / 2**20:.0f} MiB before, peak {rss.peak / 2**20:.0f} MiB during "
            f"(+{(rss.peak - rss.start) / 2**20:.0f} MiB){traced}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        await client.aclose()


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/moto-api/data.json").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, url


async def deliver(messages: int, url: str | None) -> None:
    import boto3

    process, moto = _moto()
    try:
        aws = {
            "aws_endpoint_url": moto,
            "aws_region": "eu-west-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
            "care_deliver_batch": 500,
        }
        ses = boto3.client(
            "ses", endpoint_url=moto, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        ses.verify_domain_identity(Domain=DOMAIN)
        path = Path(tempfile.mkdtemp()) / "care-bench.db"
        app, client, runtime = await _app(url or f"sqlite+aiosqlite:///{path}", **aws)
        async with app.lifespan():
            tenant = await create_tenant(client, timezone="UTC", currency="GBP")
            await _rule(runtime, tenant.id, "welcome", {}, "service")
            async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                session.add(
                    CareSettings(tenant_id=tenant.id, email_from=f"hi@{DOMAIN}", protection={"quiet_hours": None})
                )
            m = table_of(Member)
            async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                ids = [new_id() for _ in range(messages)]
                for start in range(0, messages, 5000):
                    await session.execute(
                        insert(m),
                        [
                            {
                                "tenant_id": tenant.id,
                                "id": i,
                                "external_id": f"d{n}",
                                "email": f"d{n}@example.com",
                                "status": "active",
                                "attributes": {},
                                "created_at": NOW,
                                "updated_at": NOW,
                            }
                            for n, i in enumerate(ids[start : start + 5000], start)
                        ],
                    )
            now = datetime.now(UTC)
            for start in range(0, messages, 500):
                async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                    await raise_occasions(
                        session,
                        tenant.id,
                        [OccasionIn("welcome", f"welcome:{i}", i, now) for i in ids[start : start + 500]],
                        now=now,
                    )
            started = time.perf_counter()
            sent = 0
            while counts := await delivery.deliver_round(runtime, tenant.id):
                sent += counts.get("sent", 0)
            fealty = time.perf_counter() - started
            state = httpx.get(f"{moto}/moto-api/data.json", timeout=120).json()
            refs = [
                line
                for item in state["ses"]["RawMessage"]
                for line in item["raw_data"].splitlines()
                if line.startswith("X-Fealty-Reference")
            ]
            assert len(refs) == len(set(refs)) == messages, (len(refs), len(set(refs)))
            await client.aclose()
        raw = ("From: hi@" + DOMAIN + "\r\nTo: x@example.com\r\nSubject: hi\r\n\r\nHello").encode()
        started = time.perf_counter()
        for _ in range(messages):
            ses.send_raw_email(Source=f"hi@{DOMAIN}", Destinations=["x@example.com"], RawMessage={"Data": raw})
        bare = time.perf_counter() - started
        print(
            f"delivery: {sent:,} messages in {fealty:.1f} s ({sent / fealty:.0f}/s) through the worker; "
            f"bare boto3 loop {messages / bare:.0f}/s; ratio {bare / fealty:.0%}; no duplicate"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("triggers")
    t.add_argument("--members", type=int, default=1_000_000)
    t.add_argument("--database-url", default=os.environ.get("FEALTY_BENCH_DATABASE_URL"))
    t.add_argument("--postgres", action="store_true", help="a fresh database on FEALTY_BENCH_ADMIN_URL (dropped after)")
    t.add_argument("--tracemalloc", action="store_true", help="also the peak traced Python memory (slows the run)")
    d = sub.add_parser("delivery")
    d.add_argument("--messages", type=int, default=10_000)
    d.add_argument("--database-url")
    args = parser.parse_args()
    if args.what == "triggers":
        asyncio.run(triggers(args.members, args.database_url, postgres=args.postgres, trace=args.tracemalloc))
    else:
        asyncio.run(deliver(args.messages, args.database_url))


if __name__ == "__main__":
    main()
