"""Below the application, on PostgreSQL: what a redemption took cannot be rewritten, nothing is ever deleted, and
the database refuses a negative stock by itself."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.testing import TenantHandle, settings_for_tests
from tests.rewards.support import make_reward, member_with, redeem


@pytest.fixture
async def app_role_sessions(postgres_url: str):
    """Sessions exactly as the application makes them: the app role, row-level security on."""
    engine = create_engine(settings_for_tests(postgres_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


FORBIDDEN = [
    "UPDATE redemptions SET points = 1",
    "UPDATE redemptions SET voucher_code = 'AAAA-AAAA-AAAA'",
    "UPDATE redemptions SET member_id = member_id",
    "UPDATE redemptions SET debit_entry_id = debit_entry_id",
    "UPDATE redemptions SET expires_at = NULL",
    "DELETE FROM redemptions",
    "DELETE FROM rewards",
]


async def test_the_app_role_cannot_rewrite_or_delete(app_role_sessions, pg_tenant: TenantHandle) -> None:
    reward = await make_reward(pg_tenant, points_cost=10)
    member = await member_with(pg_tenant, 10)
    assert (await redeem(pg_tenant, member["id"], reward["id"])).status_code == 201
    for statement in FORBIDDEN:
        with pytest.raises(ProgrammingError, match="permission denied"):
            async with tenant_session(app_role_sessions, pg_tenant.id) as session:
                await (await session.connection()).execute(text(statement))


async def test_the_database_refuses_a_negative_stock(app_role_sessions, pg_tenant: TenantHandle) -> None:
    await make_reward(pg_tenant, stock=0)
    with pytest.raises(IntegrityError, match="ck_rewards_stock_not_negative"):
        async with tenant_session(app_role_sessions, pg_tenant.id) as session:
            await (await session.connection()).execute(text("UPDATE rewards SET stock = stock - 1"))
