"""Power utility benchmark (not a timed test): an unplanned outage over 100,000 accounts on PostgreSQL.

    .venv/bin/python -m bench.utility                     # 100,000 accounts, a fresh database on 127.0.0.1:5432
    .venv/bin/python -m bench.utility --accounts 20000    # a smaller run
    FEALTY_BENCH_ADMIN_URL=postgresql://... .venv/bin/python -m bench.utility

Seeds the members and their accounts in bulk (one feeder each of three), an SMS rule for the safety alert and email
rules for the restoration and compensation notices, then through the HTTP API (in-process ASGI):

1. confirms an unplanned outage on two feeders (the alerts of every affected account queued in the confirming
   transaction) and times the request: target 30 s;
2. restores it 15 hours later (restoration notices, compensation computed for every account, the first 2,000 paid in
   the request) and times it: target 60 s;
3. runs the worker's job once (``plugin.utility.outages``): the restoration notices, then every payment left (bill
   credits), a transaction per 5,000, and checks that nothing is left due.

It checks the counts (one alert, one restoration notice and one compensation per account) and writes
``bench/results/utility.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import time_machine
from sqlalchemy import func, insert, select

from core.app import create_app
from core.care.models import CareMessage
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.migrate import upgrade_async
from core.ids import new_id
from core.jobs.queue import enqueue_or_wake
from core.ledger.models import PointBalance
from core.members.models import Member
from core.runtime import Runtime
from core.testing import create_tenant, registering, settings_for_tests
from core.worker import build_registry, run_due, worker_name
from plugins import utility
from plugins.utility import outages as ops
from plugins.utility.models import UtilityAccount

RESULTS = Path(__file__).parent / "results" / "utility.md"
#: The plugin's worker job (its restoration notices and payments).
JOB = "plugin.utility.outages"
ADMIN = os.environ.get("FEALTY_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _database() -> tuple[str, str]:
    name = f"fealty_bench_utility_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _seed(runtime: Runtime, tenant_id: uuid.UUID, accounts: int, now: datetime) -> None:
    m, b, a = table_of(Member), table_of(PointBalance), table_of(UtilityAccount)
    batch = 10_000
    for start in range(0, accounts, batch):
        members, balances, rows = [], [], []
        for i in range(start, min(accounts, start + batch)):
            member_id = new_id()
            members.append(
                {
                    "tenant_id": tenant_id,
                    "id": member_id,
                    "external_id": f"u{i}",
                    "email": f"u{i}@example.com",
                    "phone": f"+86138{i:08d}",
                    "locale": "zh-CN",
                    "status": "active",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            balances.append(
                {
                    "tenant_id": tenant_id,
                    "member_id": member_id,
                    "available": 0,
                    "pending": 0,
                    "lifetime_earned": 0,
                    "lifetime_redeemed": 0,
                    "lifetime_expired": 0,
                    "lifetime_adjusted": 0,
                    "lifetime_written_off": 0,
                    "updated_at": now,
                }
            )
            psr = i % 50 == 0
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": new_id(),
                    "member_id": member_id,
                    "account_number": f"32{i:010d}",
                    "premises_address": f"{i} Zhongshan Road, Nanjing",
                    "feeder": f"F-{i % 3}",
                    "area": "GL-01",
                    "customer_class": "sme" if i % 10 == 0 else "residential",
                    "psr_needs": ["medical_equipment"] if psr else [],
                    "psr_consent": psr,
                    "psr": psr,
                    "medical": psr,
                    "paperless": False,
                    "autopay": False,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        async with tenant_session(runtime.sessionmaker, tenant_id) as session:
            await session.execute(insert(m), members)
            await session.execute(insert(b), balances)
            await session.execute(insert(a), rows)


async def _rules(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for trigger, channel, text in (
        (
            "utility.outage_alert",
            "sms",
            "户号{{ account_number }}停电，预计{{ etr|datetime }}恢复。咨询{{ contact_line }}",
        ),
        ("utility.restored", "email", "户号{{ account_number }}已恢复供电。"),
        ("utility.compensation", "email", "您的补偿{{ amount }} {{ currency }}已计入账单。"),
    ):
        template = await client.post(
            "/v1/care/templates",
            headers=headers,
            json={
                "name": trigger,
                "trigger": trigger,
                "default_locale": "zh-CN",
                "texts": {"zh-CN": {"subject": "通知", "body": text}},
            },
        )
        assert template.status_code == 201, template.text
        rule = await client.post(
            "/v1/care/rules",
            headers=headers,
            json={"name": trigger, "trigger": trigger, "template_id": template.json()["id"], "channels": [channel]},
        )
        assert rule.status_code == 201, rule.text


async def _count(runtime: Runtime, tenant_id: uuid.UUID, trigger: str) -> int:
    c = table_of(CareMessage)
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as session:
        query = select(func.count()).select_from(c).where(c.c.tenant_id == tenant_id, c.c.trigger == trigger)
        return int((await session.execute(query)).scalar_one())


async def run(accounts: int) -> dict[str, Any]:
    name, url = await _database()
    try:
        await upgrade_async(url)
        app = create_app(
            settings_for_tests(url, database_pool_size=4, database_max_overflow=4),
            plugins=registering(utility.PLUGIN)(),
        )
        runtime: Runtime = app.state["runtime"]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600)
        figures: dict[str, Any] = {"accounts": accounts}
        async with app.lifespan():
            tenant = await create_tenant(client, timezone="Asia/Shanghai", currency="CNY")
            headers = tenant.headers
            enabled = await client.patch(
                "/v1/program", headers=headers, json={"plugins": ["utility"], "plugin_settings": {"utility": {}}}
            )
            assert enabled.status_code == 200, enabled.text
            await _rules(client, headers)
            started = time.perf_counter()
            # three feeders: the outage takes two of them (two thirds of the accounts are affected)
            await _seed(runtime, tenant.id, accounts * 3 // 2, datetime.now(UTC))
            figures["seed_s"] = round(time.perf_counter() - started, 1)
            print(f"seeded: {figures['seed_s']} s", flush=True)
            async with tenant_session(runtime.sessionmaker, tenant.id) as session:
                await session.execute(func.now().select())  # warm the pool
            # The planner's statistics after the bulk load, as autovacuum would gather them: as the tables' owner
            # and outside a transaction (through the application's engine it ran as the application role, which may
            # not analyze them, and was rolled back with the connection's transaction).
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
            try:
                await conn.execute("ANALYZE")
            finally:
                await conn.close()
            now = datetime.now(UTC)
            body = {
                "kind": "unplanned",
                "feeders": ["F-0", "F-1"],
                "starts_at": (now - timedelta(minutes=5)).isoformat(),
                "etr": (now + timedelta(hours=4)).isoformat(),
                "reason": "Typhoon damage",
                "contact_line": "95598",
            }
            started = time.perf_counter()
            confirmed = await client.post("/v1/utility/outages", headers=headers, json=body)
            figures["confirm_s"] = round(time.perf_counter() - started, 2)
            print(f"confirmed: {figures['confirm_s']} s", flush=True)
            assert confirmed.status_code == 201, confirmed.text
            outage = confirmed.json()
            figures["affected"] = outage["affected_accounts"]
            figures["alerts"] = await _count(runtime, tenant.id, "utility.outage_alert")
            with time_machine.travel(now + timedelta(hours=15), tick=True):
                started = time.perf_counter()
                restored = await client.post(f"/v1/utility/outages/{outage['id']}/restore", headers=headers, json={})
                figures["restore_s"] = round(time.perf_counter() - started, 2)
                print(f"restored: {figures['restore_s']} s", flush=True)
                assert restored.status_code == 200, restored.text
                # the worker's job, once: the restoration notices, then every payment left, a page (5,000) per
                # transaction inside the one run
                async with tenant_session(runtime.sessionmaker, None) as session:
                    await enqueue_or_wake(session, JOB, tenant_id=tenant.id, dedupe_key=f"bench:{JOB}:{tenant.id}")
                started = time.perf_counter()
                done = await run_due(
                    runtime, build_registry(runtime), worker_name(), tenant_ids=[tenant.id], kinds=[JOB]
                )
                figures["pay_rest_s"] = round(time.perf_counter() - started, 2)
                figures["pay_runs"] = done.kinds.get(JOB, 0)
                assert done.failed == 0, done
                print(f"worker: {figures['pay_runs']} run(s), {figures['pay_rest_s']} s", flush=True)
                async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
                    c = ops.compensations
                    figures["left_due"] = (
                        await session.execute(
                            select(func.count()).where(c.c.tenant_id == tenant.id, c.c.status == "due")
                        )
                    ).scalar_one()
            report = (await client.get(f"/v1/utility/outages/{outage['id']}/compensation", headers=headers)).json()
            figures["compensated"] = report["accounts"]
            figures["amount"] = report["amount"]
            figures["paid_amount"] = report["paid_amount"]
            figures["compensation_notices"] = await _count(runtime, tenant.id, "utility.compensation")
            figures["restored_notices"] = await _count(runtime, tenant.id, "utility.restored")
            await client.aclose()
        return figures
    finally:
        await _drop(name)


def report(figures: dict[str, Any]) -> str:
    f = figures
    ok_alert = f["confirm_s"] <= 30 and f["alerts"] == f["affected"]
    ok_comp = f["restore_s"] <= 60 and f["compensated"] == f["affected"]
    rows = [
        (
            "seed (bulk insert, not timed against a target)",
            f"{f['accounts'] * 3 // 2:,} on 3 feeders",
            f"{f['seed_s']} s",
            "-",
        ),
        (
            "confirm an unplanned outage on 2 feeders: every alert queued (safety SMS, rendered, protected)",
            f"{f['affected']:,}",
            f"**{f['confirm_s']} s**, {f['alerts']:,} alerts",
            f"30 s {'met' if ok_alert else 'NOT met'}",
        ),
        (
            "restore 15 h later: compensation computed for every account, the first 2,000 paid and told",
            f"{f['affected']:,}",
            f"**{f['restore_s']} s**, {f['compensated']:,} compensations ({f['amount']} CNY)",
            f"60 s {'met' if ok_comp else 'NOT met'}",
        ),
        (
            "the worker's job, one run: restoration notices, then pays the rest (bill credits announced, customers "
            "told), a transaction per 5,000",
            f"{f['affected'] - 2000:,}",
            f"{f['pay_rest_s']} s in {f['pay_runs']} run; {f['restored_notices']:,} restoration notices, "
            f"paid {f['paid_amount']} CNY, {f['compensation_notices']:,} compensation notices, "
            f"{f['left_due']:,} left due",
            "all paid in one run",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    return f"""# Power utility benchmark

Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on `{platform.node()}` ({os.cpu_count()} cores, shared with the other
sessions of the machine), PostgreSQL on 127.0.0.1:5432 (a fresh database), the app in-process (ASGI), the care rules
of a Jiangsu tenant: an SMS alert, email restoration and compensation notices. `python -m bench.utility`.

| step | accounts | result | target |
|---|---|---|---|
{table}

Compensation here is the UK default table in CNY for the sake of the run (15 h in normal weather: 95 domestic, 190
business); each account appears once in every count above (the notice and compensation keys).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts the outage affects")
    args = parser.parse_args()
    figures = asyncio.run(run(args.accounts))
    text = report(figures)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
