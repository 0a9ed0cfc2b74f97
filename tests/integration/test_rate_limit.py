"""Per-tenant rate limit: a token bucket per tenant, 429 with Retry-After when it is empty."""

from __future__ import annotations

import asyncio

import httpx

from core.app import create_app
from core.http.ratelimit import TokenBuckets
from core.testing import create_tenant, settings_for_tests


def test_token_bucket_refills() -> None:
    buckets = TokenBuckets()
    import uuid

    tenant = uuid.uuid4()
    assert [buckets.take(tenant, 5.0) for _ in range(10)] == [0.0] * 10  # burst of two seconds' worth
    wait = buckets.take(tenant, 5.0)
    assert 0 < wait <= 0.2
    assert buckets.take(uuid.uuid4(), 5.0) == 0.0  # another tenant has its own bucket
    assert buckets.take(tenant, 0) == 0.0  # 0 disables the limit


async def test_a_busy_tenant_gets_429_and_others_do_not(sqlite_url: str) -> None:
    app = create_app(settings_for_tests(sqlite_url, rate_limit_per_second=2.0))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            busy, calm = await create_tenant(http), await create_tenant(http)
            responses = await asyncio.gather(*(busy.get("/v1/members") for _ in range(8)))
            limited = [r for r in responses if r.status_code == 429]
            assert 1 <= len(limited) <= 4
            assert limited[0].json()["type"].endswith("/rate-limited")
            assert int(limited[0].headers["retry-after"]) >= 1
            assert (await calm.get("/v1/members")).status_code == 200
