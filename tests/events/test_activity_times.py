"""Activity at its own time: a backfill of a year of events leaves the state the same events sent live would have
left (last activity, tier history and validity, inactivity expiry), through batches and group commit alike, on
SQLite and PostgreSQL; activity never moves back, and an event dated ahead counts as now."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from core.db.base import UTCDateTime
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from core.worker import tick

T0 = datetime(2032, 1, 5, 10, 0, tzinfo=UTC)
#: Who bought what when, over a year: ann all year (silver at her fifth purchase), bob in the first months only (silver,
#: then lapsing), cy in the autumn.
YEAR = sorted(
    [(T0 + timedelta(days=30 * k, hours=k), "ann", "20") for k in range(12)]
    + [(T0 + timedelta(days=30 * k, minutes=7), "bob", "50") for k in range(3)]
    + [(T0 + timedelta(days=30 * k, hours=3), "cy", "10") for k in range(6, 9)]
)


def purchase(n: int, at: datetime, who: str, amount: str) -> dict[str, Any]:
    return {
        "type": "purchase",
        "event_id": f"p-{n}",
        "member": {"external_id": who},
        "occurred_at": at.isoformat(),
        "amount": amount,
    }


async def program(tenant: TenantHandle, window: dict[str, Any] | None = None) -> None:
    """Auto-enrolment, points lost after 12 months without activity, 1 point per unit, silver from 100 spent over
    ``window`` (lifetime by default), for 365 days from qualifying."""
    response = await tenant.patch(
        "/v1/program", json={"auto_enrol": True, "expiry_policy": {"kind": "inactivity", "value": 12}}
    )
    assert response.status_code == 200, response.text
    rule = {"name": "1 per unit", "kind": "per_amount", "points": "1", "event_types": ["purchase"]}
    assert (await tenant.post("/v1/earning-rules", json=rule)).status_code == 201
    for tier in (
        {"code": "base", "name": "Base", "rank": 0},
        {
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "qualification": {
                "window": window or {"kind": "lifetime"},
                "mode": "any",
                "criteria": [{"metric": "spend", "min": "100"}],
            },
            "validity": {"kind": "days", "days": 365},
        },
    ):
        assert (await tenant.post("/v1/tiers", json=tier)).status_code == 201


async def state(tenant: TenantHandle) -> dict[str, Any]:
    """What recency drives, per member: the balance (with what is expiring when), last activity, tier and history."""
    out: dict[str, Any] = {}
    for who in ("ann", "bob", "cy"):
        found = (await tenant.get("/v1/members", params={"external_id": who})).json()["items"]
        assert len(found) == 1, (who, found)
        member_id = found[0]["id"]
        balance = (await tenant.get(f"/v1/members/{member_id}/balance?expiring_within_days=800")).json()
        tier = (await tenant.get(f"/v1/members/{member_id}/tier")).json()
        out[who] = {
            "available": balance["available"],
            "lifetime": balance["lifetime"],
            "expiring": balance["expiring"],
            "last_activity_at": balance["last_activity_at"],
            "tier": tier["tier"]["code"] if tier["tier"] else None,
            "since": tier["since"],
            "valid_until": tier["valid_until"],
            "history": tier["history"],
        }
    return out


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for who, facts in expected.items():
        for name, value in facts.items():
            assert got[who][name] == value, (who, name, got[who][name], value)


async def test_a_backfilled_year_leaves_the_state_live_traffic_leaves(
    make_tenant: MakeTenant, runtime: Runtime
) -> None:
    live, backfilled = await make_tenant(), await make_tenant()
    await program(live)
    await program(backfilled)
    for n, (at, who, amount) in enumerate(YEAR):  # live: each purchase sent half a minute after it happened
        with time_machine.travel(at + timedelta(seconds=30), tick=False):
            response = await live.post("/v1/events", json=purchase(n, at, who, amount))
            assert response.status_code == 201, response.text

    end = T0 + timedelta(days=400)
    with time_machine.travel(end, tick=False):
        # The backfill, all at once a year later: ann's and bob's purchases in batches, cy's one by one (group
        # commit); nothing else tells them apart.
        events = [purchase(n, at, who, amount) for n, (at, who, amount) in enumerate(YEAR)]
        batched = [e for e in events if e["member"]["external_id"] != "cy"]
        for start in range(0, len(batched), 5):
            response = await backfilled.post("/v1/events/batch", json={"events": batched[start : start + 5]})
            assert response.status_code == 200 and response.json()["created"] == len(batched[start : start + 5])
        for event in events:
            if event["member"]["external_id"] == "cy":
                assert (await backfilled.post("/v1/events", json=event)).status_code == 201
        expected, got = await state(live), await state(backfilled)
    assert_same(got, expected)
    ann, bob = got["ann"], got["bob"]
    assert datetime.fromisoformat(ann["last_activity_at"]) == YEAR[-1][0]  # her last purchase, not the backfill
    assert datetime.fromisoformat(bob["last_activity_at"]) == T0 + timedelta(days=60, minutes=7)
    upgrade, *renewals = [h for h in reversed(ann["history"]) if h["to_tier"] == "silver"]
    purchases = [at for at, who, _ in YEAR if who == "ann"]
    assert upgrade["reason"] == "upgrade" and datetime.fromisoformat(upgrade["changed_at"]) == purchases[4]
    assert [datetime.fromisoformat(r["changed_at"]) for r in renewals] == purchases[5:]  # each at its purchase
    assert datetime.fromisoformat(ann["valid_until"]) == purchases[-1] + timedelta(days=365)

    # Bob has been inactive for 12 months (ann and cy have not): his points expire, and his silver has run out
    # (renewed: he still qualifies over his lifetime), in both tenants alike.
    later = T0 + timedelta(days=430)
    with time_machine.travel(later, tick=False):
        for tenant in (live, backfilled):
            await tick(runtime, tenant.id)
        expected, got = await state(live), await state(backfilled)
    assert_same(got, expected)
    assert got["bob"]["available"] == 0 and got["bob"]["lifetime"]["expired"] == 150
    assert got["bob"]["history"][0]["reason"] == "renewal"
    assert datetime.fromisoformat(got["bob"]["history"][0]["changed_at"]) == later
    assert got["ann"]["available"] == 240 and got["cy"]["available"] == 30


async def test_a_backfill_qualifies_over_the_window_that_ended_on_each_events_day(make_tenant: MakeTenant) -> None:
    """Silver from 100 spent over the last 90 days: bob's 50 + 50 a month apart qualify him on his second purchase
    live. Backfilled 400 days later, the same purchases are counted over the 90 days that ended on each purchase's
    own day, not over the 90 days before the import (which hold none of them), so he is silver from the same moment
    with the same history; ann (20 a month) and cy (10 a month) never reach 100 in 90 days, either way."""
    window = {"kind": "rolling_days", "days": 90}
    live, backfilled = await make_tenant(), await make_tenant()
    await program(live, window)
    await program(backfilled, window)
    for n, (at, who, amount) in enumerate(YEAR):
        with time_machine.travel(at + timedelta(seconds=30), tick=False):
            assert (await live.post("/v1/events", json=purchase(n, at, who, amount))).status_code == 201
    with time_machine.travel(T0 + timedelta(days=400), tick=False):
        events = [purchase(n, at, who, amount) for n, (at, who, amount) in enumerate(YEAR)]
        for start in range(0, len(events), 4):  # batches that mix members and months
            response = await backfilled.post("/v1/events/batch", json={"events": events[start : start + 4]})
            assert response.status_code == 200 and response.json()["created"] == len(events[start : start + 4])
        expected, got = await state(live), await state(backfilled)
    assert_same(got, expected)
    bob = [at for at, who, _ in YEAR if who == "bob"]
    assert got["bob"]["tier"] == "silver" and datetime.fromisoformat(got["bob"]["since"]) == bob[1]
    assert [(h["reason"], datetime.fromisoformat(h["changed_at"])) for h in reversed(got["bob"]["history"])] == [
        ("enrolment", bob[0]),
        ("upgrade", bob[1]),
        ("renewal", bob[2]),
    ]
    assert got["ann"]["tier"] == "base" and got["cy"]["tier"] == "base"


async def test_activity_never_moves_back_and_never_ahead_of_now(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    await program(tenant)
    now = T0 + timedelta(days=10)
    with time_machine.travel(now, tick=False):
        ahead = purchase(1, now + timedelta(minutes=10), "dee", "5")  # dated ahead, within the accepted skew
        assert (await tenant.post("/v1/events", json=ahead)).status_code == 201
        member_id = (await tenant.get("/v1/members", params={"external_id": "dee"})).json()["items"][0]["id"]
        assert (await tenant.balance(member_id))["last_activity_at"] == now.isoformat().replace("+00:00", "Z")
        late = purchase(2, now - timedelta(days=3), "dee", "5")  # an older purchase arriving late
        batch = [purchase(3, now - timedelta(days=5), "dee", "5"), purchase(4, now - timedelta(days=4), "dee", "5")]
        assert (await tenant.post("/v1/events", json=late)).status_code == 201
        assert (await tenant.post("/v1/events/batch", json={"events": batch})).status_code == 200
        balance = await tenant.balance(member_id)
    assert balance["available"] == 20
    assert datetime.fromisoformat(balance["last_activity_at"]) == now  # unmoved by the older purchases


async def test_the_migration_redates_what_was_dated_when_processed(make_tenant: MakeTenant, database_url: str) -> None:
    """Migration 0017 on rows as the code before it left them (a backfill stamped with its processing time) gives
    back the times the code writes now; a member without events keeps its enrolment time."""
    tenant = await make_tenant()
    await program(tenant)
    end = T0 + timedelta(days=400)
    with time_machine.travel(end, tick=False):
        events = [purchase(n, at, who, amount) for n, (at, who, amount) in enumerate(YEAR)]
        for start in range(0, len(events), 10):
            response = await tenant.post("/v1/events/batch", json={"events": events[start : start + 10]})
            assert response.status_code == 200, response.text
        quiet = await tenant.enrol("eve")
        now_dated = await state(tenant)
        quiet_before = (await tenant.balance(quiet["id"]))["last_activity_at"]

    engine = create_async_engine(database_url)  # the owner, as `fealty migrate` runs
    try:
        async with engine.begin() as conn:
            params = {"tenant": tenant.id, "end": end}
            for statement in (
                "UPDATE point_balances SET last_activity_at = :end WHERE tenant_id = :tenant",
                "UPDATE tier_changes SET changed_at = :end WHERE tenant_id = :tenant",
                "UPDATE members SET tier_since = :end WHERE tenant_id = :tenant AND tier_since IS NOT NULL",
            ):
                typed = text(statement).bindparams(
                    bindparam("tenant", type_=Uuid), bindparam("end", type_=UTCDateTime())
                )
                await conn.execute(typed, params)
        with time_machine.travel(end, tick=False):
            old_dated = await state(tenant)
        assert old_dated["ann"]["last_activity_at"] != now_dated["ann"]["last_activity_at"]  # the old stamps
        async with engine.begin() as conn:
            await conn.run_sync(_migrate)
    finally:
        await engine.dispose()
    with time_machine.travel(end, tick=False):
        assert_same(await state(tenant), now_dated)
        assert (await tenant.balance(quiet["id"]))["last_activity_at"] == quiet_before


def _migrate(sync_conn: Any) -> None:
    module = importlib.import_module("core.db.migrations.versions.0017_activity_times")
    with Operations.context(MigrationContext.configure(sync_conn)):
        module.upgrade()
