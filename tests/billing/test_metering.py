"""Usage is metered on the real paths, through the HTTP API, on both databases, with billing configured or not:
single events (alone and group-committed), batches, held events and their approval, point adjustments and
redemptions move ``GET /v1/billing``'s usage and projected overage; duplicates and refused items are not counted; a
member active twice counts once; concurrent transactions of one tenant count exactly (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event as sa_event

from core.billing import rules
from core.clock import utcnow
from core.db.engine import tenant_session
from core.ledger import maths
from core.ledger import service as ledger
from core.ledger.policy import LedgerPolicy
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle, registering
from tests.billing.support import PLATFORM, billing, make_plan, make_tenant
from tests.http.group_commit.test_group_commit import send_together
from tests.plugins import example

NOW = datetime.now(UTC).isoformat()


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    """The example plugin (it holds and rejects visits), for the held-event paths."""

    return registering(example.PLUGIN)


def purchase(event_id: str, member: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    body = {"type": "purchase", "event_id": event_id, "member": {"external_id": member}, "occurred_at": NOW}
    return body | {"amount": amount} | extra


def visit(event_id: str, member: str, site: str) -> dict[str, Any]:
    return {
        "type": "example.visit",
        "event_id": event_id,
        "member": {"external_id": member},
        "occurred_at": NOW,
        "attributes": {"site": site},
    }


async def usage(tenant: TenantHandle) -> tuple[int, int]:
    """(active members, events) this period, as ``GET /v1/billing`` shows them."""
    shown = (await billing(tenant))["usage"]
    return shown["active_members"], shown["events"]


async def shop(client: AppClient, **plan: Any) -> TenantHandle:
    """A tenant on a small plan, earning 10 points per GBP, with members ann, ben and cat."""
    code = (await make_plan(client, **plan))["code"] if plan else None
    tenant = await make_tenant(client, **({"plan": code} if code else {}), plugins=["example"])
    rule = await tenant.post("/v1/earning-rules", json={"name": "10 per GBP", "kind": "per_amount", "points": "10"})
    assert rule.status_code == 201, rule.text
    for name in ("ann", "ben", "cat"):
        await tenant.enrol(name)
    return tenant


async def test_events_single_and_batch_are_counted_once_and_refused_ones_not_at_all(client: AppClient) -> None:
    tenant = await shop(client, included_active_members=1, included_events=3)
    assert await usage(tenant) == (0, 0)
    assert (await tenant.post("/v1/events", json=purchase("pos-1", "ann"))).status_code == 201
    assert await usage(tenant) == (1, 1)
    # A retry is the same event: answered again, not counted again.
    retry = await tenant.post("/v1/events", json=purchase("pos-1", "ann"))
    assert retry.status_code == 200 and retry.headers["fealty-duplicate"] == "true"
    # Refused requests are not events processed.
    refused = [
        await tenant.post("/v1/events", json=purchase("pos-1", "ann", "99.00")),  # event_id reused: 409
        await tenant.post("/v1/events", json=purchase("pos-x", "nobody")),  # no such member: 404
        await tenant.post("/v1/events", json=purchase("pos-y", "ann") | {"type": "nope"}),  # 422
        await tenant.post("/v1/events/simulate", json=purchase("pos-z", "ben")),  # simulated: nothing written
    ]
    assert [r.status_code for r in refused] == [409, 404, 422, 200]
    assert await usage(tenant) == (1, 1)

    batch = [
        purchase("pos-2", "ann"),
        purchase("pos-3", "ben"),
        purchase("pos-4", "ben"),
        purchase("pos-4", "ben"),  # the same event twice in the batch
        purchase("pos-1", "ann"),  # stored before: a duplicate
        purchase("pos-5", "ghost"),  # no such member
        purchase("pos-6", "cat") | {"amount": "-1"},  # bad amount
    ]
    sent = await tenant.post("/v1/events/batch", json={"events": batch})
    assert sent.status_code == 200, sent.text
    assert (sent.json()["created"], sent.json()["duplicates"], sent.json()["errors"]) == (3, 2, 2)
    assert await usage(tenant) == (2, 4)
    again = await tenant.post("/v1/events/batch", json={"events": batch[:3]})
    assert again.json()["duplicates"] == 3
    assert await usage(tenant) == (2, 4)

    # Two active members (one over the one included) and four events (one over the three included, one started
    # thousand): 0.50 + 2.00, so far; at this pace the month ends with more events, the same members.
    state = (await billing(tenant))["usage"]
    assert state["overage"] == {"members": 1, "events": 1, "amount": "2.50", "currency": "GBP"}
    period = (datetime.fromisoformat(state["period_start"]), datetime.fromisoformat(state["period_end"]))
    projected = state["projected_overage"]
    assert rules.projected_events(4, period, utcnow()) - 3 <= projected["events"]
    assert projected["events"] >= 1 and projected["members"] == 1
    assert Decimal(projected["amount"]) == Decimal("0.50") + Decimal("2.00") * -(-projected["events"] // 1000)

    # The platform sees the same, in the tenant's row and in the usage of the period.
    one = (await client.get(f"/v1/platform/tenants/{tenant.id}", headers=PLATFORM)).json()
    assert (one["usage"]["active_members"], one["usage"]["events"]) == (2, 4)
    listed = await client.get(
        "/v1/platform/usage", params={"period": utcnow().strftime("%Y-%m"), "limit": 500}, headers=PLATFORM
    )
    mine = [u for u in listed.json()["items"] if u["tenant_id"] == str(tenant.id)]
    assert [(u["active_members"], u["events"], u["status"]) for u in mine] == [(2, 4, "open")]


async def test_group_committed_events_are_counted_exactly(client: AppClient, backend: str, database_url: str) -> None:
    """Single events that queue behind a busy writer are written in one transaction (group commit): each one that
    was stored counts once, duplicates and refusals of the group not at all."""
    tenant = await shop(client)
    bodies: list[Any] = [
        *(purchase(f"ann-{i}", "ann") for i in range(4)),
        *(purchase(f"ben-{i}", "ben") for i in range(3)),
        purchase("dup", "cat"),
        purchase("dup", "cat"),
        purchase("ghost-1", "ghost"),
    ]
    first, answers = await send_together(client, backend, database_url, tenant, "ann", bodies)
    assert first.status_code == 201
    assert sorted(r.status_code for r in answers) == [200, *[201] * 8, 404]
    assert await usage(tenant) == (3, 1 + 8)


async def test_held_events_count_when_stored_and_their_approval_does_not_count_them_again(
    client: AppClient,
) -> None:
    tenant = await shop(client)
    held = await tenant.post("/v1/events", json=visit("v-1", "ann", "suspicious"))
    assert held.json()["status"] == "held"
    assert await usage(tenant) == (1, 1)  # held for review: processed, stored, counted
    approved = await tenant.post(f"/v1/events/{held.json()['id']}/approve", json={"reason": "checked"})
    assert approved.status_code == 200 and approved.json()["status"] == "awarded"
    assert await usage(tenant) == (1, 1)
    closed = await tenant.post("/v1/events", json=visit("v-2", "ben", "closed"))
    assert closed.json()["status"] == "rejected"  # screened out, but processed all the same
    second = await tenant.post("/v1/events", json=visit("v-3", "cat", "suspicious"))
    rejected = await tenant.post(f"/v1/events/{second.json()['id']}/reject", json={"reason": "staff"})
    assert rejected.status_code == 200
    assert await usage(tenant) == (3, 3)


async def test_a_member_active_many_ways_counts_once_and_each_kind_of_activity_counts(
    client: AppClient, runtime: Runtime
) -> None:
    """Active members: any activity in the period -- an event, a point adjustment, a redemption -- once each."""
    tenant = await shop(client)
    ann, ben, cat = [
        (await tenant.get("/v1/members", params={"external_id": n})).json()["items"][0] for n in ("ann", "ben", "cat")
    ]
    assert (await tenant.post("/v1/events", json=purchase("p-1", "ann"))).status_code == 201
    assert (await tenant.post("/v1/events", json=purchase("p-2", "ann"))).status_code == 201
    assert (await tenant.post(f"/v1/members/{ann['id']}/points/adjust", json={"points": 5, "reason": "x"})).is_success
    assert await usage(tenant) == (1, 2)
    # ben: only a point adjustment.
    assert (await tenant.post(f"/v1/members/{ben['id']}/points/adjust", json={"points": 50, "reason": "y"})).is_success
    assert await usage(tenant) == (2, 2)
    # cat: only a redemption (the points were put there by the ledger itself, which meters nothing).
    policy = LedgerPolicy(maths.ExpiryPolicy("days_after_earn", 365), "claw_back", ZoneInfo("UTC"))
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await ledger.credit(
            session,
            tenant_id=tenant.id,
            member_id=uuid.UUID(cat["id"]),
            points=100,
            kind="adjust",
            cause=ledger.Cause("system", reason="seed"),
            policy=policy,
            now=utcnow(),
        )
    assert await usage(tenant) == (2, 2)
    reward = await tenant.post(
        "/v1/rewards", json={"code": f"R-{uuid.uuid4().hex[:8]}", "name": "C", "points_cost": 60}
    )
    redeemed = await tenant.post("/v1/redemptions", json={"member_id": cat["id"], "reward_id": reward.json()["id"]})
    assert redeemed.status_code == 201, redeemed.text
    assert await usage(tenant) == (3, 2)
    refused = await tenant.post("/v1/redemptions", json={"member_id": ben["id"], "reward_id": reward.json()["id"]})
    assert refused.status_code == 409  # 50 points: not enough, nothing happened
    assert await usage(tenant) == (3, 2)


async def test_a_plugins_credit_counts_the_member_active_only_when_it_is_their_activity(
    client: AppClient, runtime: Runtime
) -> None:
    from core import credit_points

    tenant = await shop(client)
    ann, ben = [
        uuid.UUID((await tenant.get("/v1/members", params={"external_id": n})).json()["items"][0]["id"])
        for n in ("ann", "ben")
    ]
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await credit_points(session, tenant_id=tenant.id, member_id=ann, points=10, plugin="example", reason="gift")
    assert await usage(tenant) == (0, 0)  # a gift from the system is not the member's activity
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await credit_points(
            session, tenant_id=tenant.id, member_id=ben, points=10, plugin="example", reason="a milestone chosen",
            counts_as_activity=True,
        )  # fmt: skip
    assert await usage(tenant) == (1, 0)


async def test_a_batch_meters_in_one_statement_on_postgres_two_on_sqlite(
    client: AppClient, runtime: Runtime, backend: str
) -> None:
    tenant = await shop(client)
    names = [f"m-{i}" for i in range(40)]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "billing_usage_counts" in statement or "billing_active_members" in statement:
            statements.append(statement)

    assert (await tenant.patch("/v1/program", json={"auto_enrol": True})).status_code == 200
    sa_event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        sent = await tenant.post(
            "/v1/events/batch", json={"events": [purchase(f"b-{i}", names[i % 40]) for i in range(120)]}
        )
    finally:
        sa_event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)
    assert sent.status_code == 200 and sent.json()["created"] == 120, sent.text
    assert len(statements) == (1 if backend == "postgres" else 2), statements
    assert await usage(tenant) == (40, 120)


@pytest.mark.postgres_only
async def test_concurrent_transactions_of_one_tenant_count_exactly(pg_client: AppClient) -> None:
    """Sixty single events in their own transactions (an Idempotency-Key keeps each out of group commit), twenty
    that may be grouped, and five batches, all at once, over eight members: every event counted, every member once."""
    tenant = await shop(pg_client)
    names = ["ann", "ben", "cat"] + [f"m-{i}" for i in range(5)]
    for name in names[3:]:
        await tenant.enrol(name)
    alone = [
        tenant.post("/v1/events", json=purchase(f"a-{i}", names[i % 8]), headers={"Idempotency-Key": f"k-{i}"})
        for i in range(60)
    ]
    grouped = [tenant.post("/v1/events", json=purchase(f"g-{i}", names[i % 8])) for i in range(20)]
    batches = [
        tenant.post(
            "/v1/events/batch", json={"events": [purchase(f"b-{b}-{i}", names[(b + i) % 8]) for i in range(10)]}
        )
        for b in range(5)
    ]
    answers = await asyncio.gather(*alone, *grouped, *batches)
    assert [r.status_code for r in answers] == [201] * 80 + [200] * 5, [r.text for r in answers if r.status_code >= 300]
    assert all(r.json()["created"] == 10 for r in answers[80:])
    assert await usage(tenant) == (8, 130)
