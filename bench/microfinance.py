"""Rural microfinance benchmark (not a timed test): PAR, ageing and the nightly job over 100,000 loans on PostgreSQL.

    .venv/bin/python -m bench.microfinance                    # 100,000 loans, about 5M repayments, a fresh database
    .venv/bin/python -m bench.microfinance --loans 10000      # a smaller run
    FEALTY_BENCH_ADMIN_URL=postgresql://... .venv/bin/python -m bench.microfinance

The portfolio is generated set-based in the database (``generate_series``, ``INSERT ... SELECT``), not through the
API: 100,000 weekly loans of 52 instalments disbursed over the last 1,000 days in 20,000 groups of five (200 centres,
50 officers), every instalment due so far paid (one in twenty 5 days late, one in five in two halves), one loan in
fifty in arrears for its last 0-120 days. Then, through the HTTP API (in-process ASGI):

1. ``GET /v1/microfinance/reports/par?days=30`` today and at a past date (PAR and the ageing table per officer,
   group, centre and product from the repayment history): target 10 s each;
2. the nightly follow-up and arrears job (``followups.run_nightly``), first run and a second one: target 60 s.

It writes ``bench/results/microfinance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from core.app import create_app
from core.db.engine import tenant_session
from core.db.migrate import upgrade_async
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import create_tenant, registering, settings_for_tests
from plugins import microfinance
from plugins.microfinance import followups

RESULTS = Path(__file__).parent / "results" / "microfinance.md"
ADMIN = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ZONE = ZoneInfo("Asia/Shanghai")


async def _database() -> tuple[str, str, str]:
    name = f"fealty_bench_mf_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = ADMIN.rsplit("/", 1)[0]
    return name, f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}", f"{base}/{name}"


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


SEED = [
    (
        "members",
        """INSERT INTO members (tenant_id, id, external_id, phone, locale, status, attributes, created_at, updated_at)
           SELECT $1, md5('m' || n)::uuid, 'b' || n, '+86138' || lpad(n::text, 8, '0'), 'zh-CN', 'active', '{}',
                  now(), now()
           FROM generate_series(1, $2) n""",
    ),
    (
        "products",
        """INSERT INTO microfinance_products (tenant_id, id, code, name, currency, interest_method, annual_rate,
               frequency, instalments, grace, instalment_fee, late_penalty, penalty_after_days, min_principal,
               max_principal, active, created_at)
           SELECT $1, md5('p' || n)::uuid, 'W52-' || n, 'Weekly ' || n, 'CNY', 'flat', 10, 'weekly', 52, 0, 0, 20, 3,
                  1000, 50000, true, now()
           FROM generate_series(1, 2) n""",
    ),
    (
        "groups",
        """INSERT INTO microfinance_groups (tenant_id, id, name, centre, meeting_day, max_members, created_at)
           SELECT $1, md5('g' || g)::uuid, 'Group ' || g, 'Centre ' || (g % 200), g % 7, 5, now()
           FROM generate_series(0, ($2 - 1) / 5) g""",
    ),
    (
        "loans",
        """INSERT INTO microfinance_loans (tenant_id, id, member_id, product_id, group_id, officer, status, principal,
               currency, interest_method, annual_rate, frequency, instalments, grace, instalment_fee, applied_on,
               approved_at, signed_at, disbursed_on, first_due_on, closed_on, max_days_past_due, on_time_streak,
               created_at, updated_at)
           SELECT $1, md5('l' || n)::uuid, md5('m' || n)::uuid, md5('p' || (1 + n % 2))::uuid,
                  md5('g' || (n / 5))::uuid,
                  'officer-' || (n % 50), CASE WHEN d + 364 < $3::date AND n % 50 <> 0 THEN 'closed' ELSE 'active' END,
                  5200, 'CNY', 'flat', 10, 'weekly', 52, 0, 0, d - 7, now(), now(), d, d + 7,
                  CASE WHEN d + 364 < $3::date AND n % 50 <> 0 THEN d + 364 END, 0, 0, now(), now()
           FROM (SELECT n, $3::date - 1 - (n * 7919 % 1000) AS d FROM generate_series(1, $2) n) s""",
    ),
    # 52 weekly instalments of 100 principal + 10 interest; paid on the due date, one in twenty 5 days late; a loan in
    # fifty stops paying (n / 50) % 120 days ago
    (
        "instalments",
        """INSERT INTO microfinance_instalments (tenant_id, loan_id, no, due_on, principal_due, interest_due, fee_due,
               penalty_due, principal_paid, interest_paid, fee_paid, penalty_paid, paid_off_on)
           SELECT $1, md5('l' || n)::uuid, k, due, 100, 10, 0, 0,
                  CASE WHEN paid IS NULL THEN 0 ELSE 100 END, CASE WHEN paid IS NULL THEN 0 ELSE 10 END, 0, 0, paid
           FROM (
             SELECT n, k, due,
                    CASE WHEN due >= $3::date OR (n % 50 = 0 AND due >= $3::date - (n / 50) % 120) THEN NULL
                         WHEN (n + k) % 20 = 0 AND due + 5 < $3::date THEN due + 5
                         WHEN (n + k) % 20 = 0 THEN NULL
                         ELSE due END AS paid
             FROM (SELECT n, k, ($3::date - 1 - (n * 7919 % 1000)) + 7 * k AS due
                   FROM generate_series(1, $2) n CROSS JOIN generate_series(1, 52) k) x
           ) y""",
    ),
    (
        "repayments",
        """INSERT INTO microfinance_repayments (tenant_id, id, event_id, source_event_id, loan_id, member_id, paid_at,
               paid_on, amount, reversed_at)
           SELECT $1, md5(i.loan_id::text || i.no || h)::uuid, md5('e' || i.loan_id::text || i.no || h)::uuid,
                  'rp-' || i.loan_id || '-' || i.no || '-' || h, i.loan_id, l.member_id,
                  (i.paid_off_on - CASE WHEN h = 1 THEN 0 ELSE 3 END)::timestamp + interval '2 hours',
                  i.paid_off_on - CASE WHEN h = 1 THEN 0 ELSE 3 END,
                  CASE WHEN split THEN 55 ELSE 110 END, NULL
           FROM (SELECT *, (abs(hashtext(loan_id::text)) + no) % 5 = 0 AS split FROM microfinance_instalments
                 WHERE tenant_id = $1 AND paid_off_on IS NOT NULL) i
           JOIN microfinance_loans l ON l.tenant_id = i.tenant_id AND l.id = i.loan_id
           CROSS JOIN LATERAL generate_series(1, CASE WHEN i.split THEN 2 ELSE 1 END) h""",
    ),
    (
        "allocations",
        """INSERT INTO microfinance_allocations (tenant_id, repayment_id, instalment_no, loan_id, paid_on, penalty, fee,
               interest, principal, reversed)
           SELECT $1, md5(i.loan_id::text || i.no || h)::uuid, i.no, i.loan_id,
                  i.paid_off_on - CASE WHEN h = 1 THEN 0 ELSE 3 END, 0, 0,
                  CASE WHEN split AND h = 1 THEN 0 WHEN split THEN 10 ELSE 10 END,
                  CASE WHEN split AND h = 1 THEN 55 WHEN split THEN 45 ELSE 100 END, false
           FROM (SELECT *, (abs(hashtext(loan_id::text)) + no) % 5 = 0 AS split FROM microfinance_instalments
                 WHERE tenant_id = $1 AND paid_off_on IS NOT NULL) i
           CROSS JOIN LATERAL generate_series(1, CASE WHEN i.split THEN 2 ELSE 1 END) h""",
    ),
]


async def _seed(dsn: str, tenant_id: uuid.UUID, loans: int, today: date) -> dict[str, float]:
    """The portfolio, set-based, as the database owner (one statement per table)."""
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        # generated consistent by construction: no per-row foreign-key triggers while loading (as pg_restore does)
        await conn.execute("SET session_replication_role = replica")
        for name, sql in SEED:
            started = time.perf_counter()
            args: list[Any] = [tenant_id]
            if "$2" in sql:
                args.append(loans)
            if "$3" in sql:
                args.append(today)
            await conn.execute(sql, *args)
            timings[name] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze"] = round(time.perf_counter() - started, 1)
    finally:
        await conn.close()
    return timings


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def run(loans: int) -> dict[str, Any]:
    name, url, dsn = await _database()
    try:
        await upgrade_async(url)
        app = create_app(
            settings_for_tests(url, database_pool_size=4, database_max_overflow=4),
            plugins=registering(microfinance.PLUGIN)(),
        )
        runtime: Runtime = app.state["runtime"]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600)
        figures: dict[str, Any] = {"loans": loans}
        async with app.lifespan():
            tenant = await create_tenant(client, timezone="Asia/Shanghai", currency="CNY")
            headers = tenant.headers
            enabled = await client.patch(
                "/v1/program",
                headers=headers,
                json={"plugins": ["microfinance"], "plugin_settings": {"microfinance": {"seed_defaults": False}}},
            )
            assert enabled.status_code == 200, enabled.text
            today = datetime.now(UTC).astimezone(ZONE).date()
            started = time.perf_counter()
            figures["seed"] = await _seed(dsn, tenant.id, loans, today)
            figures["seed_s"] = round(time.perf_counter() - started, 1)
            for table in ("microfinance_loans", "microfinance_instalments", "microfinance_repayments"):
                figures[table] = await _count(dsn, table)
            for label, as_of in (("par_today", today), ("par_past", today - timedelta(days=180))):
                started = time.perf_counter()
                response = await client.get(
                    "/v1/microfinance/reports/par",
                    headers=headers,
                    params={"as_of": as_of.isoformat(), "days": 30},
                )
                figures[f"{label}_s"] = round(time.perf_counter() - started, 2)
                assert response.status_code == 200, response.text
                body = response.json()
                figures[label] = {
                    "as_of": as_of.isoformat(),
                    "loans": body["portfolio"]["loans"],
                    "outstanding": body["portfolio"]["outstanding_principal"],
                    "at_risk": body["portfolio"]["at_risk_principal"],
                    "par": body["portfolio"]["par"],
                    "ageing": {line["key"]: line["loans"] for line in body["ageing"]},
                    "officers": len(body["by_officer"]),
                    "groups": len(body["by_group"]),
                }
            for label in ("nightly_first", "nightly_again"):
                started = time.perf_counter()
                async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                    program = await load_program_settings(session, tenant.id)
                    view = program.tenant_view(tenant.id, runtime.plugins)
                    counts = await followups.run_nightly(session, view, datetime.now(UTC))
                figures[f"{label}_s"] = round(time.perf_counter() - started, 2)
                figures[label] = counts
            figures["tasks"] = await _count(dsn, "microfinance_tasks")
            await client.aclose()
        return figures
    finally:
        await _drop(name)


def report(figures: dict[str, Any]) -> str:
    f = figures
    rows = [
        (
            "generate the portfolio set-based (members, groups, loans, instalments, repayments, allocations)",
            f"{f['microfinance_loans']:,} loans, {f['microfinance_instalments']:,} instalments, "
            f"{f['microfinance_repayments']:,} repayments",
            f"{f['seed_s']} s ({', '.join(f'{k} {v} s' for k, v in f['seed'].items())})",
            "-",
        )
    ]
    for label, what in (("par_today", "today"), ("par_past", "180 days ago")):
        p = f[label]
        rows.append(
            (
                f"`GET /reports/par?days=30` as of {what} ({p['as_of']}): portfolio, ageing, per officer, group, "
                "centre, product",
                f"{p['loans']:,} loans counted, {p['groups']:,} groups, {p['officers']} officers",
                f"**{f[label + '_s']} s**; PAR30 {p['par']} ({p['at_risk']} of {p['outstanding']} CNY); "
                f"ageing {p['ageing']}",
                f"10 s {'met' if f[label + '_s'] <= 10 else 'NOT met'}",
            )
        )
    for label, what in (("nightly_first", "first run"), ("nightly_again", "second run (the same day)")):
        rows.append(
            (
                f"nightly follow-up and arrears job, {what}",
                ", ".join(f"{k} {v:,}" for k, v in f[label].items()),
                f"**{f[label + '_s']} s**",
                f"60 s {'met' if f[label + '_s'] <= 60 else 'NOT met'}",
            )
        )
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    return f"""# Rural microfinance benchmark

Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on `{platform.node()}` ({os.cpu_count()} cores, shared with the other
sessions of the machine), PostgreSQL on 127.0.0.1:5432 (a fresh database), the app in-process (ASGI).
`python -m bench.microfinance --loans {f["loans"]}`.

| step | size | result | target |
|---|---|---|---|
{table}

Tasks raised by the job in all: {f["tasks"]:,} (each once: a second run the same day raises none).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=100_000, help="loans in the portfolio")
    args = parser.parse_args()
    figures = asyncio.run(run(args.loans))
    text = report(figures)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
