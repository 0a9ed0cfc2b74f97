"""The bench's view of PostgreSQL during a phase (bench/waits.py): a connection blocked on another's row lock is seen
waiting for that lock, on that statement; one holding a transaction open while doing nothing is seen idle in it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bench.waits import DatabaseTime, markdown, prepare

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_lock_wait_and_an_idle_transaction_are_seen_for_what_they_are(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    holder, waiter = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await holder.execute("CREATE TABLE IF NOT EXISTS bench_waits_probe (id int PRIMARY KEY, n int)")
        await holder.execute("INSERT INTO bench_waits_probe VALUES (1, 0) ON CONFLICT DO NOTHING")
        statements = await prepare(url)  # the test server does not preload pg_stat_statements: samples only
        meter = await asyncio.to_thread(DatabaseTime, url, statements)
        lock = holder.transaction()
        await lock.start()
        await holder.execute("UPDATE bench_waits_probe SET n = n + 1 WHERE id = 1")
        blocked = asyncio.create_task(waiter.execute("UPDATE bench_waits_probe SET n = n + 10 WHERE id = 1"))
        await asyncio.sleep(0.6)
        await lock.commit()
        await blocked
        found = await asyncio.to_thread(meter.stop)
    finally:
        await holder.execute("DROP TABLE IF EXISTS bench_waits_probe")
        await holder.close()
        await waiter.close()
    # About one connection waited for the row's lock and one sat idle in its transaction, for most of the 0.6 s.
    assert found["activity"].get("Lock:transactionid", 0) > 0.3, found
    assert found["activity"].get("idle in transaction", 0) > 0.3, found
    waiting = [r for r in found["active_by_query"] if r["wait"] == "Lock:transactionid"]
    assert waiting and waiting[0]["query"].startswith("UPDATE bench_waits_probe SET n = n + 10"), found
    report = "\n".join(markdown("probe", "lock", found))
    assert "Lock:transactionid" in report and "UPDATE bench_waits_probe" in report
