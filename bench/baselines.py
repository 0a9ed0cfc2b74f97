"""The baselines every API figure of the bench is divided by, measured in the same run on the same database.

* :func:`minimal_earn` (a), the physical limit: the smallest earn transaction there is (update one balance, insert
  one ledger row), prepared, one transaction per event, run by ``pgbench`` (a C client: nearly all the CPU it leaves
  is PostgreSQL's), 32 connections.
* :func:`same_writes` — what the API writes for one event (the event row with its outcome, the balance, the ledger
  entry, the lot, the metric buckets, the billing usage) as hand-written prepared statements on asyncpg, one
  transaction per event, 16 connections: what single events and batches are compared with.
* :func:`set_based` (b): the same writes for 1,000 events as a batch would do them by hand, set-based (one
  statement per table, column arrays and ``unnest``), one transaction per 1,000 events, 2 connections (as the API's
  batches).
* :func:`plain_reads` (c): a balance read by hand (the tenant set, the balance row, the lots about to expire: what
  the API reads for a balance, without authentication or HTTP), one transaction per read, 32 connections.

All of them run as the application role under row-level security, as the app does; members are chosen at random
among the seeded ones, as the load generator does.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

#: The metric buckets one purchase of the bench adds to (as the API writes them: core's metrics, the count of the
#: type, the rule's points for its caps).
METRICS = ("points", "base_points", "spend", "events", "count:purchase", "rule")


def loop_seconds() -> float:
    """The machine's speed for pure Python: a loop of 10M additions (best of three), so runs can be compared."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    latencies.sort()
    if not latencies:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2),
    }


async def _member_ids(owner_url: str, tenant_id: uuid.UUID, limit: int = 20_000) -> list[uuid.UUID]:
    # Read as the owner: the app role sees nothing without a tenant set (row-level security).
    owner = await asyncpg.connect(owner_url)
    try:
        rows = await owner.fetch("SELECT id FROM members WHERE tenant_id = $1 LIMIT $2", tenant_id, limit)
        return [r["id"] for r in rows]
    finally:
        await owner.close()


async def _rule_id(owner_url: str, tenant_id: uuid.UUID) -> str:
    owner = await asyncpg.connect(owner_url)
    try:
        found = await owner.fetchval("SELECT id FROM earning_rules WHERE tenant_id = $1 LIMIT 1", tenant_id)
        return f"rule:{found}"
    finally:
        await owner.close()


def _outcome(event_uuid: uuid.UUID, event_id: str, member: uuid.UUID, at: datetime, points: int, spend: Decimal) -> str:
    """An outcome of the API's shape and size (stored with the event, so a retry gets the same answer)."""
    return msgspec.json.encode(
        {
            "id": str(event_uuid),
            "event_id": event_id,
            "type": "purchase",
            "member_id": str(member),
            "occurred_at": at.isoformat(),
            "status": "awarded",
            "reason": None,
            "points": points,
            "awards": [
                {
                    "source": "rule",
                    "reason": "10 per GBP (GBP 10.50 x 10)",
                    "points": points,
                    "base": True,
                    "available_at": None,
                }
            ],
            "credits": {"events": "1", "points": str(points), "spend": str(spend)},
            "tier": None,
            "returns": None,
            "simulated": False,
        }
    ).decode()


# --- (a) the minimal earn, by pgbench -------------------------------------------------------------------------------

MINIMAL_SCRIPT = """\
\\set m random(1, {members})
\\set p random(10, 2000)
BEGIN;
UPDATE point_balances SET available = available + :p, lifetime_earned = lifetime_earned + :p, updated_at = now()
  WHERE tenant_id = :tenant
    AND member_id = (SELECT id FROM members WHERE tenant_id = :tenant AND external_id = 'm-' || :m);
INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, created_at, details)
  SELECT CAST(:tenant AS uuid), gen_random_uuid(), id, 'earn', :p, 'posted', 'system', now(), '{{}}'
  FROM members WHERE tenant_id = :tenant AND external_id = 'm-' || :m;
END;
"""


def minimal_earn(
    url: str, tenant_id: uuid.UUID, members: int, seconds: int, connections: int, postgres_cpu: Callable[[], float]
) -> dict[str, Any]:
    """(a) pgbench with a custom script: the smallest earn (member found by its external id, one balance updated,
    one ledger row inserted), ``-M prepared``, one transaction per event."""
    pgbench = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if pgbench is None:
        return {"error": "pgbench not found"}
    with tempfile.TemporaryDirectory(prefix="fealty-pgbench-") as work:
        script = Path(work) / "earn.sql"
        script.write_text(MINIMAL_SCRIPT.format(members=members))
        match = re.match(r"postgresql://(?:(\w+)@)?([^:/]+):?(\d+)?/(\w+)", url)
        assert match, url
        user, host, port, database = match.groups()
        env = os.environ | {
            "PGOPTIONS": f"-c role=fealty_app -c app.tenant_id={tenant_id} -c jit=off",
            "PGHOST": host,
            "PGPORT": port or "5432",
            "PGUSER": user or "postgres",
            "PGDATABASE": database,
        }
        command = [
            str(pgbench), "-n", "-M", "prepared", "-c", str(connections), "-j", "1", "-T", str(seconds),
            "-D", f"tenant={tenant_id}", "-f", str(script), "-l", "--log-prefix", f"{work}/log",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        db_before = postgres_cpu()
        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            return {"error": (result.stderr or result.stdout).strip().splitlines()[-3:]}
        latencies = [
            int(line.split()[2]) / 1000
            for log in Path(work).glob("log*")
            for line in log.read_text().splitlines()
            if len(line.split()) > 2
        ]
    tps = re.search(r"tps = ([\d.]+)", result.stdout)
    return {
        "events_per_s": round(float(tps.group(1)) if tps else len(latencies) / seconds, 1),
        **_percentiles(latencies),
        "concurrency": connections,
        "client_cores": round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / elapsed, 2),
        "postgres_cores": round((postgres_cpu() - db_before) / elapsed, 2),
    }


# --- the same writes, one transaction per event ---------------------------------------------------------------------

_INSERT_EVENT = (
    "INSERT INTO events (tenant_id, id, event_id, type, member_id, occurred_at, received_at, local_day, amount, "
    "currency, attributes, status, points, reversed_points, reversed_fraction, request_hash, outcome) "
    "VALUES ($1, $2, $3, 'purchase', $4, $5, now(), $6, $7, 'GBP', '{}', 'awarded', $8, 0, 0, $9, $10::jsonb) "
    "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id"
)
_UPDATE_BALANCE = (
    "UPDATE point_balances SET available = available + $3, lifetime_earned = lifetime_earned + $3, "
    "last_activity_at = greatest(last_activity_at, $4), updated_at = now() WHERE tenant_id = $1 AND member_id = $2 "
    "RETURNING available"
)
_INSERT_ENTRY = (
    "INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id, reason, actor, "
    "created_at, details) VALUES ($1, $2, $3, 'earn', $4, 'posted', 'event', $5, $6, 'api', now(), $7::jsonb)"
)
_INSERT_LOT = (
    "INSERT INTO lots (tenant_id, id, member_id, points, remaining, reversed, status, kind, earned_at) "
    "VALUES ($1, $2, $3, $4, $4, 0, 'posted', 'earn', now())"
)
_UPSERT_METRICS = (
    "INSERT INTO member_metrics (tenant_id, member_id, metric, day, value) "
    "SELECT $1::uuid, m, k, d, v FROM unnest($2::uuid[], $3::text[], $4::date[], $5::numeric[]) AS x(m, k, d, v) "
    "ON CONFLICT (tenant_id, member_id, metric, day) DO UPDATE SET value = member_metrics.value + excluded.value"
)
_USAGE = """
    WITH fresh AS (
        INSERT INTO billing_active_members (tenant_id, period_start, member_id, first_activity_at)
        SELECT $1::uuid, $2::timestamptz, m, now() FROM unnest($3::uuid[]) AS m
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), n AS (SELECT count(*) AS c FROM fresh)
    INSERT INTO billing_usage_counts (tenant_id, period_start, slot, events, active_members)
    SELECT $1::uuid, $2::timestamptz, $4::smallint, $5::bigint, n.c FROM n
    ON CONFLICT (tenant_id, period_start, slot) DO UPDATE
    SET events = billing_usage_counts.events + excluded.events,
        active_members = billing_usage_counts.active_members + excluded.active_members
"""


def _period_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _app_pool(url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=size, max_size=size, server_settings={"role": "fealty_app", "jit": "off"}
    )


async def same_writes(
    url: str, tenant_id: uuid.UUID, seconds: int, concurrency: int, postgres_cpu: Callable[[], float]
) -> dict[str, Any]:
    """The writes of one API event by hand, one transaction per event (prepared statements, asyncpg)."""
    ids = await _member_ids(url, tenant_id)
    rule = await _rule_id(url, tenant_id)
    pool = await _app_pool(url, concurrency)
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    prefix = uuid.uuid4().hex[:8]
    counter = 0

    async def one_client(slot: int) -> None:
        nonlocal counter
        async with pool.acquire() as conn:
            insert_event = await conn.prepare(_INSERT_EVENT)
            update_balance = await conn.prepare(_UPDATE_BALANCE)
            insert_entry = await conn.prepare(_INSERT_ENTRY)
            insert_lot = await conn.prepare(_INSERT_LOT)
            upsert_metrics = await conn.prepare(_UPSERT_METRICS)
            usage = await conn.prepare(_USAGE)
            while time.monotonic() < deadline:
                counter += 1
                member = random.choice(ids)
                spend = Decimal(random.randint(1, 200)) + Decimal("0.5")
                points = int(spend * 10)
                now = datetime.now(UTC)
                day = now.date()
                event_id = f"sql-{prefix}-{counter}"
                event_uuid = uuid.uuid4()
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                    await insert_event.fetchval(
                        tenant_id, event_uuid, event_id, member, now, day, spend, points, "h" * 64,
                        _outcome(event_uuid, event_id, member, now, points, spend),
                    )  # fmt: skip
                    await update_balance.fetchval(tenant_id, member, points, now)
                    entry = uuid.uuid4()
                    details = msgspec.json.encode(
                        {"event_id": event_id, "awards": [{"source": rule, "points": points}]}
                    ).decode()
                    await insert_entry.fetchval(
                        tenant_id, entry, member, points, str(event_uuid), f"purchase {event_id}", details
                    )
                    await insert_lot.fetchval(tenant_id, entry, member, points)
                    values = [points, points, spend, 1, 1, points]
                    names = [rule if m == "rule" else m for m in METRICS]
                    await upsert_metrics.fetchval(tenant_id, [member] * 6, names, [day] * 6, values)
                    await usage.fetchval(tenant_id, _period_start(now), [member], slot % 16, 1)
                latencies.append((time.perf_counter() - started) * 1000)

    client_before = time.process_time()
    db_before = postgres_cpu()
    started = time.monotonic()
    await asyncio.gather(*(one_client(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
    db_cores = round((postgres_cpu() - db_before) / elapsed, 2)  # before the pool's backends go away
    await pool.close()
    return {
        "events_per_s": round(len(latencies) / seconds, 1),
        **_percentiles(latencies),
        "concurrency": concurrency,
        "client_cores": round((time.process_time() - client_before) / elapsed, 2),
        "postgres_cores": db_cores,
    }


# --- (b) the same writes set-based, one transaction per 1,000 events ------------------------------------------------

_BATCH_EVENTS = (
    "INSERT INTO events (tenant_id, id, event_id, type, member_id, occurred_at, received_at, local_day, amount, "
    "currency, attributes, status, points, reversed_points, reversed_fraction, request_hash, outcome) "
    "SELECT $1::uuid, i, e, 'purchase', m, $5::timestamptz, now(), $6::date, a, 'GBP', '{}', 'awarded', p, 0, 0, h, "
    "o::jsonb "
    "FROM unnest($2::uuid[], $3::text[], $4::uuid[], $7::numeric[], $8::int[], $9::text[], $10::text[]) "
    "AS u(i, e, m, a, p, h, o) ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id"
)
_BATCH_BALANCES = (
    "UPDATE point_balances b SET available = b.available + d.p, lifetime_earned = b.lifetime_earned + d.p, "
    "last_activity_at = greatest(b.last_activity_at, $4), updated_at = now() "
    "FROM unnest($2::uuid[], $3::bigint[]) AS d(m, p) WHERE b.tenant_id = $1 AND b.member_id = d.m"
)
_BATCH_ENTRIES = (
    "INSERT INTO ledger_entries (tenant_id, id, member_id, kind, points, status, cause_type, cause_id, reason, actor, "
    "created_at, details) SELECT $1::uuid, i, m, 'earn', p, 'posted', 'event', c, r, 'api', now(), d::jsonb "
    "FROM unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS u(i, m, p, c, r, d)"
)
_BATCH_LOTS = (
    "INSERT INTO lots (tenant_id, id, member_id, points, remaining, reversed, status, kind, earned_at) "
    "SELECT $1::uuid, i, m, p, p, 0, 'posted', 'earn', now() "
    "FROM unnest($2::uuid[], $3::uuid[], $4::bigint[]) AS u(i, m, p)"
)


async def set_based(
    url: str,
    tenant_id: uuid.UUID,
    seconds: int,
    concurrency: int,
    postgres_cpu: Callable[[], float],
    size: int = 1000,
) -> dict[str, Any]:
    """(b) What the API's batch writes for ``size`` events, by hand and set-based: one statement per table, one
    transaction per batch (balances and buckets in key order, as the API takes its locks)."""
    ids = await _member_ids(url, tenant_id)
    rule = await _rule_id(url, tenant_id)
    pool = await _app_pool(url, concurrency)
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    prefix = uuid.uuid4().hex[:8]
    counter = 0

    async def one_client(slot: int) -> None:
        nonlocal counter
        async with pool.acquire() as conn:
            statements = [
                await conn.prepare(s)
                for s in (_BATCH_EVENTS, _BATCH_BALANCES, _BATCH_ENTRIES, _BATCH_LOTS, _UPSERT_METRICS, _USAGE)
            ]
            events, balances, entries, lots, metrics, usage = statements
            while time.monotonic() < deadline:
                started = time.perf_counter()
                now = datetime.now(UTC)
                at = now - timedelta(minutes=1)
                day = at.date()
                members = [random.choice(ids) for _ in range(size)]
                spends = [Decimal(random.randint(1, 200)) + Decimal("0.5") for _ in range(size)]
                points = [int(s * 10) for s in spends]
                event_ids = []
                for _ in range(size):
                    counter += 1
                    event_ids.append(f"sqlb-{prefix}-{counter}")
                uuids = [uuid.uuid4() for _ in range(size)]
                outcomes = [
                    _outcome(u, e, m, at, p, s)
                    for u, e, m, p, s in zip(uuids, event_ids, members, points, spends, strict=True)
                ]
                per_member: dict[uuid.UUID, int] = defaultdict(int)
                buckets: dict[tuple[uuid.UUID, str], Decimal] = defaultdict(Decimal)
                for m, p, s in zip(members, points, spends, strict=True):
                    per_member[m] += p
                    for name, value in zip(METRICS, (p, p, s, 1, 1, p), strict=True):
                        buckets[(m, rule if name == "rule" else name)] += value
                ordered = sorted(per_member, key=lambda m: m.int)
                keys = sorted(buckets, key=lambda k: (k[0].int, k[1]))
                details = [
                    msgspec.json.encode({"event_id": e, "awards": [{"source": rule, "points": p}]}).decode()
                    for e, p in zip(event_ids, points, strict=True)
                ]
                async with conn.transaction():
                    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                    await events.fetch(
                        tenant_id, uuids, event_ids, members, at, day, spends, points, ["h" * 64] * size, outcomes
                    )
                    await balances.fetch(tenant_id, ordered, [per_member[m] for m in ordered], at)
                    entry_ids = [uuid.uuid4() for _ in range(size)]
                    await entries.fetch(
                        tenant_id, entry_ids, members, points, [str(u) for u in uuids],
                        [f"purchase {e}" for e in event_ids], details,
                    )  # fmt: skip
                    await lots.fetch(tenant_id, entry_ids, members, points)
                    await metrics.fetch(
                        tenant_id, [k[0] for k in keys], [k[1] for k in keys], [day] * len(keys),
                        [buckets[k] for k in keys],
                    )  # fmt: skip
                    await usage.fetch(tenant_id, _period_start(now), ordered, slot % 16, size)
                latencies.append((time.perf_counter() - started) * 1000)

    client_before = time.process_time()
    db_before = postgres_cpu()
    started = time.monotonic()
    await asyncio.gather(*(one_client(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
    db_cores = round((postgres_cpu() - db_before) / elapsed, 2)
    await pool.close()
    return {
        "events_per_s": round(len(latencies) * size / elapsed, 1),
        **_percentiles(latencies),
        "concurrency": concurrency,
        "batch": size,
        "client_cores": round((time.process_time() - client_before) / elapsed, 2),
        "postgres_cores": db_cores,
    }


# --- (c) balance reads ----------------------------------------------------------------------------------------------

_READ_BALANCE = "SELECT * FROM point_balances WHERE tenant_id = $1 AND member_id = $2"
_READ_EXPIRING = (
    "SELECT member_id, expires_at, remaining FROM lots WHERE tenant_id = $1 AND member_id = $2 AND remaining > 0 "
    "AND status = 'posted' AND expires_at IS NOT NULL AND expires_at <= $3"
)


async def plain_reads(
    url: str, tenant_id: uuid.UUID, seconds: int, concurrency: int, postgres_cpu: Callable[[], float]
) -> dict[str, Any]:
    """(c) A balance read by hand: in one transaction, the tenant set (row-level security), the balance row and the
    lots about to expire (prepared statements, asyncpg), the answer encoded as JSON."""
    ids = await _member_ids(url, tenant_id)
    pool = await _app_pool(url, concurrency)
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def one_client() -> None:
        async with pool.acquire() as conn:
            balance = await conn.prepare(_READ_BALANCE)
            expiring = await conn.prepare(_READ_EXPIRING)
            while time.monotonic() < deadline:
                member = random.choice(ids)
                started = time.perf_counter()
                horizon = datetime.now(UTC) + timedelta(days=30)
                async with conn.transaction(readonly=True):
                    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                    row = await balance.fetchrow(tenant_id, member)
                    lots = await expiring.fetch(tenant_id, member, horizon)
                assert row is not None
                msgspec.json.encode(
                    {
                        "member_id": str(member),
                        "available": row["available"],
                        "pending": row["pending"],
                        "expiring": [
                            {"date": r["expires_at"].date().isoformat(), "points": r["remaining"]} for r in lots
                        ],
                    }
                )
                latencies.append((time.perf_counter() - started) * 1000)

    client_before = time.process_time()
    db_before = postgres_cpu()
    started = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    db_cores = round((postgres_cpu() - db_before) / elapsed, 2)
    await pool.close()
    return {
        "requests_per_s": round(len(latencies) / seconds, 1),
        **_percentiles(latencies),
        "concurrency": concurrency,
        "client_cores": round((time.process_time() - client_before) / elapsed, 2),
        "postgres_cores": db_cores,
    }


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 2) if baseline else 0.0


__all__: Sequence[str] = ("loop_seconds", "minimal_earn", "plain_reads", "ratio", "same_writes", "set_based")
