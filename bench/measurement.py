"""Measurement benchmark: the nightly loyalty run, every report, and an export's memory, on PostgreSQL.

    .venv/bin/python -m bench.measurement --members 20000 --days 6

Makes a fresh database on the local PostgreSQL (dropped afterwards), one tenant through the API, then writes
``--members`` members with their balances and ``--days`` active days each of daily metric buckets (events and spend,
spread over two years) and one ledger credit each, straight into the tables in bulk (the event path is not what is
measured here). Then times the nightly run (metrics, RFM, types, BG/NBD and Gamma-Gamma fits, index, upserts), each
report, and streams the ledger export (CSV) while sampling the process's peak RSS. Prints one Markdown table.

Targets (issue 13): nightly for 1M members < 5 min; any report over 1M members < 5 s; an export of 10M ledger entries
with RSS < 300 MB. See bench/README.md for the figures and what they mean on this 2-core box.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from core.app import create_app
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.migrate import upgrade_async
from core.exports import service as exports
from core.ids import new_id
from core.ledger.models import LedgerEntry, Lot, PointBalance
from core.measurement import nightly
from core.measurement.reports import REPORTS
from core.members.models import Member
from core.metrics.models import MemberMetric
from core.runtime import Runtime
from core.testing import TEST_PLATFORM_KEY, create_tenant, settings_for_tests

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 5000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(runtime: Runtime, tenant_id: uuid.UUID, members: int, days: int) -> None:
    rng = random.Random(13)
    now = utcnow()
    today = now.date()
    tables = {
        name: table_of(model)
        for name, model in [
            ("members", Member),
            ("balances", PointBalance),
            ("metrics", MemberMetric),
            ("entries", LedgerEntry),
            ("lots", Lot),
        ]
    }
    for start in range(0, members, BATCH):
        m_rows, b_rows, x_rows, e_rows, l_rows = [], [], [], [], []
        for i in range(start, min(members, start + BATCH)):
            member_id = new_id()
            enrolled = now - timedelta(days=rng.randint(30, 900))
            m_rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": member_id,
                    "external_id": f"b-{i}",
                    "status": "active",
                    "attributes": {},
                    "created_at": enrolled,
                    "updated_at": enrolled,
                }
            )
            active = sorted(rng.sample(range(1, 730), rng.randint(0, days * 2)))[:days]
            for d in active:
                day = today - timedelta(days=d)
                x_rows.append(
                    {
                        "tenant_id": tenant_id,
                        "member_id": member_id,
                        "metric": "events",
                        "day": day,
                        "value": Decimal(1),
                    }
                )
                x_rows.append(
                    {
                        "tenant_id": tenant_id,
                        "member_id": member_id,
                        "metric": "spend",
                        "day": day,
                        "value": Decimal(rng.randint(5, 200)),
                    }
                )
            points = rng.randint(10, 5000)
            entry = new_id()
            e_rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": entry,
                    "member_id": member_id,
                    "kind": "adjust",
                    "points": points,
                    "status": "posted",
                    "cause_type": "system",
                    "cause_id": None,
                    "reason": "bench",
                    "reverses_entry_id": None,
                    "actor": "bench",
                    "created_at": enrolled,
                    "available_at": None,
                    "expires_at": None,
                    "details": {},
                }
            )
            l_rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": entry,
                    "member_id": member_id,
                    "points": points,
                    "remaining": points,
                    "reversed": 0,
                    "status": "posted",
                    "kind": "adjust",
                    "earned_at": enrolled,
                    "available_at": None,
                    "expires_at": None,
                }
            )
            b_rows.append(
                {
                    "tenant_id": tenant_id,
                    "member_id": member_id,
                    "available": points,
                    "pending": 0,
                    "lifetime_earned": 0,
                    "lifetime_redeemed": 0,
                    "lifetime_expired": 0,
                    "lifetime_adjusted": points,
                    "lifetime_written_off": 0,
                    "last_activity_at": None,
                    "updated_at": now,
                }
            )
        async with tenant_session(runtime.sessionmaker, tenant_id) as db:
            for name, rows in (
                ("members", m_rows),
                ("balances", b_rows),
                ("metrics", x_rows),
                ("entries", e_rows),
                ("lots", l_rows),
            ):
                if rows:
                    table = tables[name]
                    columns = tuple(rows[0])
                    await db.execute(bulk.insert(True, table, columns), bulk.params(db, table, columns, rows))


async def main(members: int, days: int) -> None:
    name = f"fealty_bench_measure_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await upgrade_async(url)
        app = create_app(settings_for_tests(url))
        runtime: Runtime = app.state["runtime"]
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client,
        ):
            tenant = await create_tenant(client)
            started = time.monotonic()
            await seed(runtime, tenant.id, members, days)
            seeded = time.monotonic() - started
            started = time.monotonic()
            summary = await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
            night = time.monotonic() - started
            timings: dict[str, float] = {}
            for report in REPORTS:
                started = time.monotonic()
                response = await tenant.get(f"/v1/reports/{report}")
                assert response.status_code == 200, response.text
                timings[report] = time.monotonic() - started
            before = rss_mb()
            started = time.monotonic()
            size = 0
            async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as db:
                async for chunk in exports.ledger_csv(db, tenant.id):
                    size += len(chunk)
            export_s = time.monotonic() - started
        print(f"| members | {members:,} ({days} active days each at most, {summary['active_in_window']:,} active) |")
        print(f"| seeding (bulk, not measured) | {seeded:.1f} s |")
        print(
            f"| nightly run | {night:.1f} s (read {summary['seconds']['read']:.1f} s); fits: "
            f"r={summary.get('bgnbd', {}).get('r', 0):.3f} |"
        )
        for report, seconds in timings.items():
            print(f"| report {report} | {seconds * 1000:.0f} ms |")
        print(
            f"| ledger CSV export | {members:,} entries, {size / 1e6:.1f} MB in {export_s:.1f} s; "
            f"peak RSS {rss_mb():.0f} MB (before the export {before:.0f} MB) |"
        )
    finally:
        conn = await asyncpg.connect(ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=6)
    args = parser.parse_args()
    _ = (TEST_PLATFORM_KEY, datetime, UTC, Any)
    asyncio.run(main(args.members, args.days))
