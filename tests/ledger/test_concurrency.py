"""Many requests at once, over real HTTP on PostgreSQL (and in-process on SQLite): nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import httpx
import pytest

from core.testing import AppClient, TenantHandle


async def _debit_race(tenant: TenantHandle) -> None:
    member = await tenant.enrol()
    await tenant.credit(member["id"], 1000)
    url = f"/v1/members/{member['id']}/points/adjust"
    responses = await asyncio.gather(
        *(tenant.post(url, json={"points": -100, "reason": f"debit {i}"}) for i in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == 40, statuses
    assert all(r.json()["type"].endswith("/insufficient-points") for r in responses if r.status_code == 409)
    balance = await tenant.balance(member["id"])
    assert balance["available"] == 0 and balance["lifetime"]["adjusted"] == 0
    debits = (await tenant.get(f"{url.rsplit('/points', 1)[0]}/ledger?limit=500")).json()["items"]
    assert sum(1 for e in debits if e["points"] == -100) == 10


async def test_50_concurrent_debits_over_http_on_postgres(live_tenant: TenantHandle) -> None:
    await _debit_race(live_tenant)


async def test_50_concurrent_debits_on_sqlite(client: AppClient, backend: str, tenant: TenantHandle) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL runs this over real HTTP above")
    await _debit_race(tenant)


async def test_20_concurrent_retries_with_one_key_apply_once(live_tenant: TenantHandle) -> None:
    member = await live_tenant.enrol()
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    url = f"/v1/members/{member['id']}/points/adjust"
    responses = await asyncio.gather(
        *(live_tenant.post(url, json={"points": 77, "reason": "retry storm"}, headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1  # twenty identical answers
    assert sum(1 for r in responses if "idempotent-replayed" not in r.headers) == 1
    assert (await live_tenant.balance(member["id"]))["available"] == 77
    ledger = (await live_tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    assert len(ledger) == 1


async def test_16_clients_crediting_one_member_add_up_exactly(live_server, live_tenant: TenantHandle) -> None:
    member = await live_tenant.enrol()
    url = f"/v1/members/{member['id']}/points/adjust"
    rng = random.Random(16)
    plan = [[rng.randint(1, 500) for _ in range(25)] for _ in range(16)]

    async def one_client(amounts: list[int]) -> None:
        # Each client has its own connection pool, as 16 separate systems would.
        async with httpx.AsyncClient(base_url=live_server.url, headers=live_tenant.headers, timeout=60) as http:
            for points in amounts:
                response = await http.post(url, json={"points": points, "reason": "parallel"})
                assert response.status_code == 201, response.text

    await asyncio.gather(*(one_client(amounts) for amounts in plan))
    expected = sum(map(sum, plan))
    balance = await live_tenant.balance(member["id"])
    assert balance["available"] == expected
    assert balance["lifetime"]["adjusted"] == expected
    entries = (await live_tenant.get(f"/v1/members/{member['id']}/ledger?limit=500")).json()["items"]
    assert len(entries) == 16 * 25 and sum(e["points"] for e in entries) == expected


async def test_200_single_events_at_once_each_sent_twice_earn_exactly_once(
    live_server, live_tenant: TenantHandle
) -> None:
    """Single events from eight systems at once over real HTTP (grouped into shared transactions as they arrive),
    every event sent twice concurrently: one 201 and one duplicate 200 each, and the points add up exactly."""
    rule = await live_tenant.post("/v1/earning-rules", json={"name": "1 per GBP", "kind": "per_amount", "points": "1"})
    assert rule.status_code == 201, rule.text
    members = [f"c-{i}" for i in range(10)]
    for external_id in members:
        await live_tenant.enrol(external_id)
    rng = random.Random(200)
    plan = [(f"e-{i}", rng.choice(members), rng.randint(1, 300)) for i in range(100)]
    sends = [p for p in plan for _ in range(2)]
    rng.shuffle(sends)
    occurred_at = "2026-01-01T12:00:00+00:00"

    async def one_system(share: list[tuple[str, str, int]]) -> list[tuple[str, int, bool]]:
        seen = []
        async with httpx.AsyncClient(base_url=live_server.url, headers=live_tenant.headers, timeout=60) as http:
            for event_id, member, amount in share:
                body = {
                    "type": "purchase",
                    "event_id": event_id,
                    "member": {"external_id": member},
                    "occurred_at": occurred_at,
                    "amount": str(amount),
                }
                response = await http.post("/v1/events", json=body)
                assert response.status_code in (200, 201), response.text
                assert response.json()["points"] == amount
                seen.append((event_id, response.status_code, response.headers.get("fealty-duplicate") == "true"))
        return seen

    answers = [a for share in await asyncio.gather(*(one_system(sends[i::8]) for i in range(8))) for a in share]
    by_event: dict[str, list[int]] = {}
    for event_id, status, duplicate in answers:
        assert duplicate == (status == 200)
        by_event.setdefault(event_id, []).append(status)
    assert all(sorted(statuses) == [200, 201] for statuses in by_event.values()), by_event
    for external_id in members:
        member = (await live_tenant.get("/v1/members", params={"external_id": external_id})).json()["items"][0]
        expected = sum(amount for _, m, amount in plan if m == external_id)
        assert (await live_tenant.balance(member["id"]))["available"] == expected
        entries = (await live_tenant.get(f"/v1/members/{member['id']}/ledger", params={"limit": 500})).json()["items"]
        assert len(entries) == sum(1 for _, m, _ in plan if m == external_id)


async def test_batches_and_returns_at_once_settle_every_debt_exactly(
    live_server, live_tenant: TenantHandle, postgres_url: str
) -> None:
    """Six batches over the same twelve members at once, while each member's first purchase is returned (the program
    allows negative balances: each return leaves its member 80 points in debt, at a moment no batch can foresee). A
    batch writes its lots from the balances it read with its members, before it locks them (core/ledger/service.py
    credit_many): every balance ends exact, and every lot's points are explained by what was taken from it."""
    tenant = live_tenant
    assert (await tenant.patch("/v1/program", json={"reversal_policy": "allow_negative"})).status_code == 200
    rule = await tenant.post("/v1/earning-rules", json={"name": "1 per GBP", "kind": "per_amount", "points": "1"})
    assert rule.status_code == 201, rule.text
    members = [f"d-{i}" for i in range(12)]
    occurred_at = "2026-01-01T12:00:00+00:00"
    first: dict[str, str] = {}
    for external_id in members:
        member = await tenant.enrol(external_id)
        body = {"type": "purchase", "event_id": f"first-{external_id}", "member": {"external_id": external_id},
                "occurred_at": occurred_at, "amount": "100"}  # fmt: skip
        first[external_id] = (await tenant.post("/v1/events", json=body)).json()["id"]
        spent = await tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -80, "reason": "spent"})
        assert spent.status_code == 201, spent.text
    rng = random.Random(6)
    batches = [[(f"b{b}-{i}", rng.choice(members), rng.randint(1, 50)) for i in range(60)] for b in range(6)]

    async def send(batch: list[tuple[str, str, int]]) -> None:
        events = [
            {"type": "purchase", "event_id": event_id, "member": {"external_id": member},
             "occurred_at": occurred_at, "amount": str(amount)}
            for event_id, member, amount in batch
        ]  # fmt: skip
        async with httpx.AsyncClient(base_url=live_server.url, headers=tenant.headers, timeout=60) as http:
            response = await http.post("/v1/events/batch", json={"events": events})
        assert response.status_code == 200 and response.json()["created"] == len(batch), response.text

    async def give_back(external_id: str) -> None:
        async with httpx.AsyncClient(base_url=live_server.url, headers=tenant.headers, timeout=60) as http:
            response = await http.post(f"/v1/events/{first[external_id]}/reverse", json={})
        assert response.status_code == 200, response.text

    await asyncio.gather(*(send(b) for b in batches), *(give_back(m) for m in members))
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        balances = {
            r["external_id"]: (r["available"], r["posted"], r["in_lots"])
            for r in await conn.fetch(
                """SELECT m.external_id, b.available,
                          (SELECT sum(points) FROM ledger_entries e
                           WHERE e.tenant_id = b.tenant_id AND e.member_id = b.member_id AND e.status = 'posted')
                              AS posted,
                          (SELECT coalesce(sum(remaining), 0) FROM lots l
                           WHERE l.tenant_id = b.tenant_id AND l.member_id = b.member_id AND l.status = 'posted')
                              AS in_lots
                   FROM point_balances b JOIN members m ON m.tenant_id = b.tenant_id AND m.id = b.member_id
                   WHERE b.tenant_id = $1""",
                tenant.id,
            )
        }
        unexplained = await conn.fetch(
            """SELECT l.id, l.points, l.remaining, coalesce(sum(c.points), 0) AS taken FROM lots l
               LEFT JOIN lot_consumptions c ON c.tenant_id = l.tenant_id AND c.lot_id = l.id
               WHERE l.tenant_id = $1 GROUP BY l.tenant_id, l.id
               HAVING l.points - l.remaining <> coalesce(sum(c.points), 0)""",
            tenant.id,
        )
    finally:
        await conn.close()
    for external_id in members:
        earned = sum(amount for batch in batches for _, member, amount in batch if member == external_id)
        available, posted, in_lots = balances[external_id]
        # 100 earned, 80 spent, the 100 given back (80 of debt), then the batches' points: debt settled first.
        assert available == posted == earned - 80, (external_id, balances[external_id], earned)
        assert in_lots == max(available, 0), (external_id, balances[external_id])
    assert unexplained == []
