"""The shared limiter: each tenant's bucket held in Redis, so the plan's rate holds across every API process.

One atomic Lua script per request implements the generic cell rate algorithm (GCRA), the token bucket expressed as
one timestamp per tenant: the theoretical arrival time (TAT) of the next request. A request is allowed when, after
it, the TAT is at most ``capacity`` emission intervals ahead of now; it then moves the TAT one interval on. This is
exactly :class:`~core.ratelimit.local.TokenBuckets` (same burst, same Retry-After), with Redis's own clock, so the
processes' clocks do not matter, and one key per tenant that expires once its bucket would be full again.

Redis going away never fails a request: the limiter logs a warning once, limits in process
(:class:`~core.ratelimit.local.LocalRateLimiter`) and tries Redis again after ``retry_seconds``; it logs again when
Redis is back.
"""

from __future__ import annotations

import math
import time
import uuid

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from core.ratelimit.local import LocalRateLimiter, capacity
from core.settings import mask_url

log = structlog.get_logger("fealty.ratelimit")

KEY_PREFIX = "fealty:ratelimit:"

#: KEYS[1]: the tenant's TAT (microseconds, Redis clock). ARGV[1]: emission interval, ARGV[2]: burst, both in
#: microseconds. Returns 0 when allowed, else the microseconds to wait.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local excess = next_tat - now - burst
if excess > 0 then return math.ceil(excess) end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
"""


class RedisRateLimiter:
    """:class:`~core.ratelimit.RateLimiter` over Redis, falling back on an in-process limiter while Redis is down."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 0.5,
        retry_seconds: float = 5.0,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        # No retries inside redis-py: a request must not wait through backoffs; the fallback answers instead.
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        self.script = self.client.register_script(GCRA_SCRIPT)
        self.fallback = LocalRateLimiter()
        self.retry_seconds = retry_seconds
        self.key_prefix = key_prefix
        self._where = mask_url(url)
        self._down_until: float | None = None

    @property
    def degraded(self) -> bool:
        """Whether the last attempt to reach Redis failed (limits are then this process's own)."""
        return self._down_until is not None

    async def take(self, tenant_id: uuid.UUID, rate: float) -> float:
        if rate <= 0:
            return 0.0
        if self._down_until is not None and time.monotonic() < self._down_until:
            return await self.fallback.take(tenant_id, rate)
        interval = 1_000_000 / rate
        try:
            excess = await self.script(
                keys=[f"{self.key_prefix}{tenant_id}"], args=[interval, capacity(rate) * interval]
            )
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                log.warning(
                    "rate_limit_redis_unavailable",
                    redis=self._where,
                    error=type(exc).__name__,
                    fallback="in-process limits",
                    retry_seconds=self.retry_seconds,
                )
            self._down_until = time.monotonic() + self.retry_seconds
            return await self.fallback.take(tenant_id, rate)
        if self._down_until is not None:
            self._down_until = None
            log.warning("rate_limit_redis_restored", redis=self._where)
        return math.ceil(int(excess) / 1000) / 1000 if excess else 0.0  # microseconds to seconds, whole ms up

    async def close(self) -> None:
        await self.client.aclose()
