"""The facts loader and send reservations on a real database (SQLite and PostgreSQL): set-based facts from the
consent history, suppressions and tallies; caps that hold when several workers reserve at once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import event

from core.care.policy import Defer, MessageFacts, ProtectionSettings, Send, Suppress
from core.care.protection import (
    load_care_settings,
    load_member_facts,
    protection_as_dict,
    protection_from,
    release_send,
    reserve,
    reserve_send,
)
from core.care.protection_models import CareSuppression
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle

NOON_LONDON = datetime(2026, 1, 15, 12, tzinfo=UTC)
OFFER = MessageFacts(channel="sms", purpose="marketing", category="offer")
CONSENTING = [{"channel": "sms", "purpose": "marketing", "granted": True}]


@contextmanager
def counting_statements(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


async def test_facts_for_a_batch_come_from_four_queries(
    client: AppClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    members = [await tenant.enrol(phone=f"+447911100{i:03d}", consents=CONSENTING if i % 2 else []) for i in range(30)]
    stopped = await tenant.enrol(
        phone="+447911101999",
        timezone="Asia/Shanghai",
        consents=[{"channel": "sms", "purpose": "service", "granted": False, "source": "sms-stop"}],
    )
    no_phone = await tenant.enrol(email="nophone@example.com")
    ids = [uuid.UUID(m["id"]) for m in [*members, stopped, no_phone]]
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        session.add(
            CareSuppression(
                tenant_id=tenant.id, channel="sms", address="+447911100003", reason="hard_bounce", source="test"
            )
        )
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        assert await reserve_send(
            session,
            tenant_id=tenant.id,
            member_id=ids[1],
            message=OFFER,
            settings=ProtectionSettings(),
            now=NOON_LONDON,
        )
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        with counting_statements(runtime) as statements:
            facts = await load_member_facts(
                session, tenant.id, [*ids, uuid.uuid4()], "sms", NOON_LONDON, holidays={date(2026, 1, 1)}
            )
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "set_config" not in s]
    assert len(queries) == 4, statements
    assert set(facts) == set(ids)  # the unknown id is left out
    assert facts[ids[0]].consents == {}
    assert facts[ids[1]].consents == {("sms", "marketing"): True}
    assert facts[ids[0]].timezone == "Europe/London"  # the program's
    assert facts[ids[-2]].timezone == "Asia/Shanghai"
    assert facts[ids[-2]].opted_out_channels == frozenset({"sms"})
    assert facts[ids[3]].suppressed and not facts[ids[2]].suppressed
    assert not facts[ids[-1]].has_address
    assert facts[ids[1]].sent == {(date(2026, 1, 15), "marketing", "offer"): 1}
    assert facts[ids[1]].holidays == frozenset({date(2026, 1, 1)})


async def test_a_reservation_counts_and_the_cap_then_defers(
    client: AppClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    member_id = uuid.UUID((await tenant.enrol(phone="+447911102001", consents=CONSENTING))["id"])
    settings = ProtectionSettings(marketing_per_day=2)

    async def attempt(now: datetime, message: MessageFacts = OFFER) -> object:
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            return await reserve(
                session, tenant_id=tenant.id, member_id=member_id, message=message, settings=settings, now=now
            )

    assert await attempt(NOON_LONDON) == Send()
    assert await attempt(NOON_LONDON) == Send()
    # 08:00 London the next day
    assert await attempt(NOON_LONDON) == Defer(datetime(2026, 1, 16, 8, tzinfo=UTC), "daily_cap")
    # service is not capped
    assert await attempt(NOON_LONDON, MessageFacts(channel="sms", purpose="service", category="notice")) == Send()
    # a greeting after that day's... no reminder was sent, but a marketing greeting is still over the cap
    assert isinstance(
        await attempt(NOON_LONDON, MessageFacts(channel="sms", purpose="marketing", category="greeting")), Defer
    )
    # the provider refused one: its slot comes back
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await release_send(session, tenant_id=tenant.id, member_id=member_id, message=OFFER, reserved_at=NOON_LONDON)
    assert await attempt(NOON_LONDON) == Send()
    # a rolled-back transaction reserves nothing
    with pytest.raises(RuntimeError):
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            await reserve(
                session,
                tenant_id=tenant.id,
                member_id=member_id,
                message=OFFER,
                settings=ProtectionSettings(marketing_per_day=5),
                now=NOON_LONDON,
            )
            raise RuntimeError("worker died before commit")
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        facts = (await load_member_facts(session, tenant.id, [member_id], "sms", NOON_LONDON))[member_id]
    assert facts.sent[(date(2026, 1, 15), "marketing", "offer")] == 2


async def test_reserving_for_another_tenants_member_finds_nothing(
    client: AppClient, make_tenant, runtime: Runtime
) -> None:
    owner, other = await make_tenant(), await make_tenant()
    member_id = uuid.UUID((await owner.enrol(phone="+447911102002", consents=CONSENTING))["id"])
    async with tenant_session(runtime.sessionmaker, other.id) as session:
        facts = await load_member_facts(session, other.id, [member_id], "sms", NOON_LONDON)
        assert facts == {}


@pytest.mark.postgres_only
async def test_two_workers_cannot_both_take_the_last_allowed_send(
    pg_client: AppClient, pg_tenant: TenantHandle
) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    member_id = uuid.UUID((await pg_tenant.enrol(phone="+447911103001", consents=CONSENTING))["id"])
    settings = ProtectionSettings(marketing_per_day=1)
    inside = asyncio.Barrier(8)

    async def worker() -> bool:
        async with tenant_session(runtime.sessionmaker, pg_tenant.id) as session:
            await inside.wait()  # eight transactions open at once, then all reserve together
            taken = await reserve_send(
                session, tenant_id=pg_tenant.id, member_id=member_id, message=OFFER, settings=settings, now=NOON_LONDON
            )
            await asyncio.sleep(0.05)  # hold the transaction open: the others must wait, not read stale tallies
            return taken

    results = await asyncio.gather(*(worker() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with tenant_session(runtime.sessionmaker, pg_tenant.id) as session:
        facts = (await load_member_facts(session, pg_tenant.id, [member_id], "sms", NOON_LONDON))[member_id]
    assert facts.sent == {(date(2026, 1, 15), "marketing", "offer"): 1}


@pytest.mark.postgres_only
async def test_a_greeting_and_a_reminder_racing_on_one_day_send_one(
    pg_client: AppClient, pg_tenant: TenantHandle
) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    member_id = uuid.UUID(
        (
            await pg_tenant.enrol(
                phone="+447911103002", consents=[{"channel": "sms", "purpose": "marketing", "granted": True}]
            )
        )["id"]
    )
    greeting = MessageFacts(channel="sms", purpose="marketing", category="greeting")
    reminder = MessageFacts(channel="sms", purpose="service", category="reminder")
    inside = asyncio.Barrier(2)

    async def worker(message: MessageFacts) -> object:
        async with tenant_session(runtime.sessionmaker, pg_tenant.id) as session:
            await inside.wait()
            verdict = await reserve(
                session,
                tenant_id=pg_tenant.id,
                member_id=member_id,
                message=message,
                settings=ProtectionSettings(),
                now=NOON_LONDON,
            )
            await asyncio.sleep(0.05)
            return verdict

    verdicts = await asyncio.gather(worker(greeting), worker(reminder))
    assert sorted(type(v).__name__ for v in verdicts) == ["Defer", "Send"]
    assert [v.reason for v in verdicts if isinstance(v, Defer)] == ["category_conflict"]


def test_protection_overrides() -> None:
    settings = protection_from(
        {"quiet_hours": ["22:00", "07:30"], "marketing_per_month": None, "marketing_per_7_days": 3}
    )
    assert settings.quiet_hours == (time(22), time(7, 30))
    assert settings.marketing_per_month is None
    assert settings.marketing_per_7_days == 3
    assert settings.marketing_per_day == 1  # default kept
    assert protection_as_dict(settings)["quiet_hours"] == ["22:00", "07:30"]
    assert protection_from({}) == ProtectionSettings()


async def test_settings_default_when_never_set(client: AppClient, tenant: TenantHandle, runtime: Runtime) -> None:
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        sender, protection = await load_care_settings(session)
    assert sender.email_from is None and protection == ProtectionSettings()
    _ = Suppress  # the verdict types are part of the module's API


async def test_a_batch_reserves_in_a_few_statements_and_counts_its_own_sends(
    client: AppClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    from core.care.protection import reserve_many

    members = [
        uuid.UUID(
            (await tenant.enrol(phone=f"+447911104{i:03d}", email=f"b{i}@example.com", consents=CONSENTING))["id"]
        )
        for i in range(20)
    ]
    notice = MessageFacts(channel="email", purpose="service", category="notice")
    batch = [(m, OFFER) for m in members] + [(members[0], OFFER), (members[0], OFFER)] + [(m, notice) for m in members]
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        with counting_statements(runtime) as statements:
            verdicts = await reserve_many(
                session,
                tenant_id=tenant.id,
                messages=batch,
                settings=ProtectionSettings(marketing_per_day=2),
                now=NOON_LONDON,
            )
    # BEGIN, the locks (2), per channel the facts (4), the tallies (1): the same for 2 messages or 2,000
    assert len([s for s in statements if "set_config" not in s]) <= 12, len(statements)
    assert verdicts[:20] == [Send()] * 20
    # the member's third marketing message of the day, in the same batch, is over the cap of 2
    assert verdicts[20:22] == [Send(), Defer(datetime(2026, 1, 16, 8, tzinfo=UTC), "daily_cap")]
    assert verdicts[22:] == [Send()] * 20
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        facts = await load_member_facts(session, tenant.id, members[:2], "sms", NOON_LONDON)
    assert facts[members[0]].sent == {
        (date(2026, 1, 15), "marketing", "offer"): 2,
        (date(2026, 1, 15), "service", "notice"): 1,
    }
    assert facts[members[1]].sent == {
        (date(2026, 1, 15), "marketing", "offer"): 1,
        (date(2026, 1, 15), "service", "notice"): 1,
    }


@pytest.mark.postgres_only
async def test_batches_over_the_same_members_in_opposite_orders_neither_deadlock_nor_overspend(
    pg_client: AppClient, pg_tenant: TenantHandle
) -> None:
    from core.care.protection import reserve_many

    runtime: Runtime = pg_client.app.state["runtime"]
    members = [
        uuid.UUID((await pg_tenant.enrol(phone=f"+447911105{i:03d}", consents=CONSENTING))["id"]) for i in range(10)
    ]
    inside = asyncio.Barrier(4)

    async def worker(order: list[uuid.UUID]) -> list[object]:
        async with tenant_session(runtime.sessionmaker, pg_tenant.id) as session:
            await inside.wait()
            verdicts = await reserve_many(
                session,
                tenant_id=pg_tenant.id,
                messages=[(m, OFFER) for m in order],
                settings=ProtectionSettings(marketing_per_day=1),
                now=NOON_LONDON,
            )
            await asyncio.sleep(0.05)
            return list(verdicts)

    results = await asyncio.wait_for(
        asyncio.gather(*(worker(members if i % 2 else members[::-1]) for i in range(4))), timeout=60
    )
    sends = sum(1 for verdicts in results for v in verdicts if v == Send())
    assert sends == 10  # one per member, whichever worker took it
    async with tenant_session(runtime.sessionmaker, pg_tenant.id) as session:
        facts = await load_member_facts(session, pg_tenant.id, members, "sms", NOON_LONDON)
    assert all(f.sent == {(date(2026, 1, 15), "marketing", "offer"): 1} for f in facts.values())
