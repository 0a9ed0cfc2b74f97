"""On PostgreSQL, balances keep room in their pages (``fillfactor`` 90, migration 0032): a balance update stays on
its row's page as a heap-only tuple (HOT) update, with no new primary-key entry. With pages packed full (the
default), the update of a row on a full page moved it to another page: at 1M members nearly every event's balance
update did, two more pages in the write-ahead log per event (bench/README.md, "What stands between the figures and the
targets")."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.engine import create_engine
from core.ledger.models import BALANCE_FILLFACTOR
from core.testing import TenantHandle, settings_for_tests

ROWS = 2_000  # about 30 pages of balances


async def test_a_balance_update_stays_on_a_full_page(postgres_url: str, pg_tenant: TenantHandle) -> None:
    engine = create_engine(settings_for_tests(postgres_url), app_role="")
    try:
        async with engine.connect() as conn, conn.begin() as transaction:
            options = (
                await conn.execute(text("SELECT reloptions FROM pg_class WHERE oid = 'point_balances'::regclass"))
            ).scalar_one()
            assert f"fillfactor={BALANCE_FILLFACTOR}" in (options or [])
            # A table of its own with the same storage settings, filled as the bench seeds 1M members (one
            # INSERT ... SELECT), then one balance on its first, full page updated as an event updates it.
            await conn.execute(text("CREATE TEMP TABLE balances (LIKE point_balances INCLUDING ALL)"))
            await conn.execute(text(f"ALTER TABLE balances SET ({', '.join(options)})"))
            await conn.execute(
                text(
                    "INSERT INTO balances SELECT :tenant, gen_random_uuid(), 0, 0, 0, 0, 0, 0, 0, NULL, now() "
                    "FROM generate_series(1, :rows)"
                ),
                {"tenant": pg_tenant.id, "rows": ROWS},
            )
            first = (await conn.execute(text("SELECT member_id FROM balances WHERE ctid = '(0,1)'"))).scalar_one()
            before = await _hot_updates(conn)
            await conn.execute(
                text(
                    "UPDATE balances SET available = available + 10, lifetime_earned = lifetime_earned + 10, "
                    "last_activity_at = now(), updated_at = now() WHERE member_id = :member"
                ),
                {"member": first},
            )
            assert await _hot_updates(conn) == before + 1
            page = (await conn.execute(text("SELECT ctid FROM balances WHERE member_id = :m"), {"m": first})).scalar()
            assert str(page).startswith("(0,")
            await transaction.rollback()
    finally:
        await engine.dispose()


async def _hot_updates(conn: AsyncConnection) -> int:
    """The table's HOT updates in this transaction so far."""
    result = await conn.execute(text("SELECT pg_stat_get_xact_tuples_hot_updated('balances'::regclass)"))
    return int(result.scalar_one())
