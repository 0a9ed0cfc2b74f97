"""Many requests at once, over real HTTP on PostgreSQL (and in-process on SQLite): nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import uuid

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
