"""The in-process limiter: a token bucket per tenant in this process's memory (burst = 2 seconds' worth).

Alone it holds the plan's rate per process only (N API processes give a tenant N times its rate); it is what runs
without ``FEALTY_REDIS_URL``, and what the Redis limiter falls back on while Redis cannot be reached.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable


def capacity(rate: float) -> float:
    """The burst a tenant may make at once: two seconds' worth of its rate, at least one request."""
    return max(1.0, 2 * rate)


class TokenBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}
        self._clock = clock

    def take(self, tenant_id: uuid.UUID, rate: float) -> float:
        """Take one token; returns 0 when allowed, else the seconds to wait before retrying."""
        if rate <= 0:
            return 0.0
        full = capacity(rate)
        now = self._clock()
        tokens, stamp = self._buckets.get(tenant_id, (full, now))
        tokens = min(full, tokens + (now - stamp) * rate)
        if tokens < 1:
            self._buckets[tenant_id] = (tokens, now)
            return math.ceil((1 - tokens) / rate * 1000) / 1000
        self._buckets[tenant_id] = (tokens - 1, now)
        return 0.0


class LocalRateLimiter:
    """:class:`~core.ratelimit.RateLimiter` over this process's :class:`TokenBuckets`."""

    def __init__(self) -> None:
        self.buckets = TokenBuckets()

    async def take(self, tenant_id: uuid.UUID, rate: float) -> float:
        return self.buckets.take(tenant_id, rate)

    async def close(self) -> None:
        return None
