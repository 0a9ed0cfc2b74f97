"""The in-process token bucket: burst of two seconds' worth, refill at the rate, one bucket per tenant."""

from __future__ import annotations

import uuid

from core.ratelimit import LocalRateLimiter, TokenBuckets, capacity


def test_token_bucket_refills() -> None:
    now = [1000.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    tenant = uuid.uuid4()
    assert [buckets.take(tenant, 5.0) for _ in range(10)] == [0.0] * 10  # burst of two seconds' worth
    assert buckets.take(tenant, 5.0) == 0.2  # the next token is 1/rate away
    assert buckets.take(uuid.uuid4(), 5.0) == 0.0  # another tenant has its own bucket
    assert buckets.take(tenant, 0) == 0.0  # 0 disables the limit
    now[0] += 0.2
    assert buckets.take(tenant, 5.0) == 0.0
    assert buckets.take(tenant, 5.0) == 0.2
    now[0] += 60
    assert [buckets.take(tenant, 5.0) for _ in range(11)].count(0.0) == 10  # refilled to the burst, not beyond


def test_capacity_is_two_seconds_worth_and_at_least_one() -> None:
    assert [capacity(r) for r in (0.25, 0.5, 2.0, 25.0)] == [1.0, 1.0, 4.0, 50.0]


async def test_the_limiter_interface_answers_as_the_buckets() -> None:
    limiter = LocalRateLimiter()
    tenant = uuid.uuid4()
    assert [await limiter.take(tenant, 1.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert await limiter.take(tenant, 1.0) > 0
    await limiter.close()
