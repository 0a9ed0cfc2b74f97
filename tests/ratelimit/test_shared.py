"""The Redis limiter against a real redis-server: one bucket for every process, the same burst and Retry-After as
the in-process bucket, and Redis going away degrades to in-process limits, never to errors."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis

from core.logging import configure_logging
from core.ratelimit import LocalRateLimiter, RedisRateLimiter, rate_limiter_for
from core.ratelimit.shared import KEY_PREFIX
from core.testing import settings_for_tests
from tests.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _logs_on_the_real_stderr() -> None:
    """The limiter logs warnings here. An earlier test on this worker may have left structlog writing to a stream
    that pytest or click has closed since (create_app or CliRunner configures logging on the stderr of that moment)."""
    configure_logging("WARNING", json=True)


async def test_two_limiters_share_one_bucket_per_tenant(redis_server: RedisServer) -> None:
    first, second = RedisRateLimiter(redis_server.url), RedisRateLimiter(redis_server.url)  # as two processes
    try:
        tenant, other = uuid.uuid4(), uuid.uuid4()
        answers = [await (first if i % 2 else second).take(tenant, 5.0) for i in range(10)]
        assert answers == [0.0] * 10  # the burst (two seconds' worth) is shared, not 10 each
        wait = await first.take(tenant, 5.0)
        assert 0.1 < wait <= 0.2  # about 1/rate until the next request, as the in-process bucket says
        assert await second.take(tenant, 5.0) > 0
        assert await second.take(other, 5.0) == 0.0  # another tenant has its own bucket
        assert await first.take(tenant, 0) == 0.0  # 0 disables the limit
        await asyncio.sleep(wait)
        assert await second.take(tenant, 5.0) == 0.0  # refilled at the rate
        assert not first.degraded and not second.degraded
    finally:
        await first.close()
        await second.close()


async def test_concurrent_takes_never_exceed_the_burst(redis_server: RedisServer) -> None:
    limiters = [RedisRateLimiter(redis_server.url, timeout_seconds=10) for _ in range(4)]  # atomicity, not speed
    try:
        tenant = uuid.uuid4()
        started = time.monotonic()
        answers = await asyncio.gather(*(limiters[i % 4].take(tenant, 2.0) for i in range(40)))
        elapsed = time.monotonic() - started
        allowed = answers.count(0.0)
        assert 4 <= allowed <= 4 + int(2.0 * elapsed) + 1  # the atomic script: burst 4, plus what refilled meanwhile
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_the_bucket_key_expires_once_full_again(redis_server: RedisServer) -> None:
    limiter = RedisRateLimiter(redis_server.url)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        tenant = uuid.uuid4()
        for _ in range(3):
            await limiter.take(tenant, 10.0)
        ttl_ms = await client.pttl(f"{KEY_PREFIX}{tenant}")
        assert 0 < ttl_ms <= 302  # three requests at 10/s: full again within 0.3 s, so nothing lingers
    finally:
        await limiter.close()
        await client.aclose()


async def test_redis_going_away_degrades_to_in_process_limits_and_comes_back(redis_server: RedisServer) -> None:
    limiter = RedisRateLimiter(redis_server.url, retry_seconds=0.3)
    try:
        tenant = uuid.uuid4()
        assert await limiter.take(tenant, 2.0) == 0.0
        redis_server.stop()
        started = time.monotonic()
        answers = [await limiter.take(tenant, 2.0) for _ in range(6)]
        assert time.monotonic() - started < 1.0  # no request waits through retries
        assert limiter.degraded
        assert answers[:4] == [0.0] * 4 and all(a > 0 for a in answers[4:])  # still limited, in process
        redis_server.start()  # back, on the same port
        await asyncio.sleep(0.35)
        assert await limiter.take(tenant, 2.0) == 0.0  # a fresh shared bucket
        assert not limiter.degraded
    finally:
        await limiter.close()


async def test_an_unreachable_redis_from_the_start_never_fails_a_request() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        assert [await limiter.take(uuid.uuid4(), 1.0) for _ in range(3)] == [0.0] * 3
        assert limiter.degraded
    finally:
        await limiter.close()


def test_the_settings_choose_the_limiter(sqlite_url: str) -> None:
    assert isinstance(rate_limiter_for(settings_for_tests(sqlite_url)), LocalRateLimiter)
    shared = rate_limiter_for(settings_for_tests(sqlite_url, redis_url="redis://:pw@127.0.0.1:6379/0"))
    assert isinstance(shared, RedisRateLimiter)
    assert "pw" not in repr(settings_for_tests(sqlite_url, redis_url="redis://:pw@127.0.0.1:6379/0"))
