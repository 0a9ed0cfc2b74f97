"""Group commit of single events: requests of one key that arrive while a group is being written share the next
transaction; each still gets its own answer, exactly as it would alone; a group that fails falls back to one
transaction per request. Groups are formed deterministically: another writer holds the database while requests queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.app import create_app
from core.http.group_commit import GROUP_SIZE, GroupCommit
from core.plugin.manager import PluginManager
from core.testing import AppClient, TenantHandle, create_tenant, settings_for_tests

NOW = datetime.now(UTC).isoformat()


def event(event_id: str, member: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    body = {"type": "purchase", "event_id": event_id, "member": {"external_id": member}, "occurred_at": NOW}
    return body | {"amount": amount} | extra


def groups_so_far() -> tuple[float, float]:
    """(groups written, requests in them) since the process started."""
    samples = {s.name: s.value for metric in GROUP_SIZE.collect() for s in metric.samples}
    return samples["fealty_group_commit_size_count"], samples["fealty_group_commit_size_sum"]


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


@asynccontextmanager
async def another_writer(backend: str, database_url: str, member_id: str) -> AsyncIterator[None]:
    """Another writer holds the member's balance row (PostgreSQL) or the database's write lock (SQLite)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            if backend == "postgres":
                await conn.execute(
                    text("SELECT 1 FROM point_balances WHERE member_id = :m FOR UPDATE"), {"m": member_id}
                )
            else:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield
            await conn.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
async def shop(tenant: TenantHandle) -> TenantHandle:
    rule = await tenant.post("/v1/earning-rules", json={"name": "10 per GBP", "kind": "per_amount", "points": "10"})
    assert rule.status_code == 201, rule.text
    return tenant


async def send_together(
    client: AppClient, backend: str, database_url: str, tenant: TenantHandle, blocker: str, bodies: list[Any]
) -> tuple[httpx.Response, list[httpx.Response]]:
    """A first event for ``blocker`` starts a group that waits on another writer; ``bodies`` queue behind it and
    are released together."""
    group_commit: GroupCommit = client.app.middleware[0].group_commit  # type: ignore[attr-defined]
    member_id = (await tenant.get("/v1/members", params={"external_id": blocker})).json()["items"][0]["id"]
    started, _ = groups_so_far()
    async with another_writer(backend, database_url, member_id):
        first = asyncio.create_task(tenant.post("/v1/events", json=event("first", blocker)))
        await until(lambda: groups_so_far()[0] == started + 1, "the first group is being written")
        rest = [
            asyncio.create_task(
                tenant.post("/v1/events", content=body)
                if isinstance(body, bytes)
                else tenant.post("/v1/events", json=body)
            )
            for body in bodies
        ]
        queued = sum(not isinstance(b, bytes) for b in bodies)
        await until(lambda: group_commit.waiting() == queued, f"{queued} requests wait")
    return await first, list(await asyncio.gather(*rest))


async def test_events_arriving_together_share_a_transaction_and_each_gets_its_own_answer(
    client: AppClient, backend: str, database_url: str, shop: TenantHandle
) -> None:
    for name in ("ann", "ben", "cat"):
        await shop.enrol(name)
    bodies: list[Any] = [
        *(event(f"ann-{i}", "ann", "1.00") for i in range(5)),
        *(event(f"ben-{i}", "ben", "2.50") for i in range(5)),
        event("dup", "cat", "3.00"),
        event("dup", "cat", "3.00"),  # the same event again: answered as a duplicate
        event("clash", "cat", "4.00"),
        event("clash", "cat", "5.00"),  # the same event_id with other content: a conflict
        event("ghost-1", "ghost"),  # no such member
        event("odd-1", "cat") | {"type": "no-such-type"},
        b'{"type": "purchase", "event_id": ',  # not JSON: the ordinary path answers, never grouped
    ]
    before_count, before_sum = groups_so_far()
    first, answers = await send_together(client, backend, database_url, shop, "ann", bodies)
    assert first.status_code == 201, first.text
    statuses = [r.status_code for r in answers]
    assert statuses[:10] == [201] * 10, [r.text for r in answers[:10]]
    assert sorted(statuses[10:12]) == [200, 201] and sorted(statuses[12:14]) == [201, 409]
    assert statuses[14:] == [404, 422, 400], [r.text for r in answers[14:]]
    duplicate = next(r for r in answers[10:12] if r.status_code == 200)
    assert duplicate.headers["fealty-duplicate"] == "true"
    assert duplicate.json() == next(r for r in answers[10:12] if r.status_code == 201).json()
    clash = next(r for r in answers[12:14] if r.status_code == 409).json()
    assert (clash["field"], clash["detail"]) == ("event_id", "This event_id was already used for a different event.")
    assert answers[14].json()["field"] == "member.external_id"
    assert answers[15].json()["field"] == "type"
    assert all(r.headers["content-type"].startswith("application/") and "x-request-id" in r.headers for r in answers)
    # Two groups: the first event alone, then the 16 that queued behind it (the malformed body never queued).
    after_count, after_sum = groups_so_far()
    assert (after_count - before_count, after_sum - before_sum) == (2, 17)
    balances = {}
    for name in ("ann", "ben", "cat"):
        member = (await shop.get("/v1/members", params={"external_id": name})).json()["items"][0]
        balances[name] = (await shop.balance(member["id"]))["available"]
        entries = (await shop.get(f"/v1/members/{member['id']}/ledger", params={"limit": 100})).json()["items"]
        assert sum(e["points"] for e in entries) == balances[name]
    assert balances == {"ann": 100 + 5 * 10, "ben": 5 * 25, "cat": 30 + 40}
    events = (await shop.get("/v1/events", params={"limit": 100})).json()["items"]
    assert len(events) == 1 + 10 + 1 + 1


async def test_a_group_that_fails_falls_back_to_one_transaction_per_request(
    client: AppClient, backend: str, database_url: str, make_tenant: Callable[..., Any]
) -> None:
    """A bug (here a plugin raising) fails the whole group's transaction: nothing of it is kept, and each request is
    answered on its own, so only the request that meets the bug fails."""
    tenant = await make_tenant(plugins=["faulty"])
    rule = await tenant.post("/v1/earning-rules", json={"name": "10 per GBP", "kind": "per_amount", "points": "10"})
    assert rule.status_code == 201, rule.text
    for name in ("ann", "ben"):
        await tenant.enrol(name)
    bodies = [event("ben-1", "ben"), event("ben-2", "ben") | {"attributes": {"fail": True}}, event("ben-3", "ben")]
    before_count, before_sum = groups_so_far()
    first, answers = await send_together(client, backend, database_url, tenant, "ann", bodies)
    assert first.status_code == 201
    assert [r.status_code for r in answers] == [201, 500, 201], [r.text for r in answers]
    assert answers[1].headers["content-type"] == "application/problem+json"
    after_count, after_sum = groups_so_far()
    assert (after_count - before_count, after_sum - before_sum) == (2, 4)  # the group of three was formed, then failed
    ben = (await tenant.get("/v1/members", params={"external_id": "ben"})).json()["items"][0]["id"]
    assert (await tenant.balance(ben))["available"] == 200
    entries = (await tenant.get(f"/v1/members/{ben}/ledger")).json()["items"]
    assert sorted(e["reason"] for e in entries) == ["purchase ben-1", "purchase ben-3"]


async def test_requests_with_an_idempotency_key_or_another_key_are_never_grouped_with_these(
    client: AppClient, backend: str, database_url: str, shop: TenantHandle
) -> None:
    """Grouping is per key as presented: a forged secret for the same key id, or a read-only key, is refused on its
    own while the genuine key's events go through."""
    for name in ("ann", "ben"):
        await shop.enrol(name)
    read_only = await shop.post("/v1/api-keys", json={"name": "reporting", "scopes": ["members:read"]})
    assert read_only.status_code == 201, read_only.text
    forged = shop.key[:-4] + ("aaaa" if not shop.key.endswith("aaaa") else "bbbb")
    group_commit: GroupCommit = client.app.middleware[0].group_commit  # type: ignore[attr-defined]
    member_id = (await shop.get("/v1/members", params={"external_id": "ann"})).json()["items"][0]["id"]
    started, _ = groups_so_far()
    async with another_writer(backend, database_url, member_id):
        first = asyncio.create_task(shop.post("/v1/events", json=event("first", "ann")))
        await until(lambda: groups_so_far()[0] == started + 1, "the first group is being written")
        tasks = [
            shop.post("/v1/events", json=event("ben-1", "ben")),
            client.post("/v1/events", json=event("ben-forged", "ben"), headers={"Authorization": f"Bearer {forged}"}),
            client.post(
                "/v1/events",
                json=event("ben-read-only", "ben"),
                headers={"Authorization": f"Bearer {read_only.json()['secret']}"},
            ),
            shop.post("/v1/events", json=event("ben-2", "ben"), headers={"Idempotency-Key": "k-ben-2"}),
        ]
        pending = [asyncio.create_task(t) for t in tasks]
        # Only the genuine key's request waits behind the first group; the others never join it.
        await until(lambda: group_commit.waiting() == 1, "the genuine key's second event waits")
        await asyncio.sleep(0.1)  # time for any wrongly grouped request to queue too
        assert group_commit.waiting() == 1
    results = [await first, *await asyncio.gather(*pending)]
    assert [r.status_code for r in results] == [201, 201, 401, 403, 201], [r.text for r in results]
    ben = (await shop.get("/v1/members", params={"external_id": "ben"})).json()["items"][0]["id"]
    assert (await shop.balance(ben))["available"] == 200


async def test_group_commit_can_be_turned_off(database_url: str) -> None:
    """FEALTY_GROUP_COMMIT=false: every single event takes its own transaction (the ordinary path)."""
    app = create_app(settings_for_tests(database_url, group_commit=False), plugins=PluginManager())
    async with app.lifespan():
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        tenant = await create_tenant(http)
        await tenant.enrol("ann")
        before = groups_so_far()
        answers = await asyncio.gather(*(tenant.post("/v1/events", json=event(f"off-{i}", "ann")) for i in range(5)))
        assert [r.status_code for r in answers] == [201] * 5
        assert groups_so_far() == before
        await http.aclose()
