"""Per-tenant request rate limits, kept apart from the HTTP layer, which receives a limiter through the runtime.

Each tenant may make its plan's ``rate_limit_per_second`` (else the deployment's ``FEALTY_RATE_LIMIT_PER_SECOND``;
0 disables), with a burst of two seconds' worth. With ``FEALTY_REDIS_URL`` set the buckets are held in Redis
(:class:`RedisRateLimiter`), so the rate holds across every API process; without it each process keeps its own
(:class:`LocalRateLimiter`).
"""

from __future__ import annotations

import uuid
from typing import Protocol

from core.ratelimit.local import LocalRateLimiter, TokenBuckets, capacity
from core.ratelimit.shared import RedisRateLimiter
from core.settings import Settings

__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter", "TokenBuckets", "capacity", "rate_limiter_for"]


class RateLimiter(Protocol):
    async def take(self, tenant_id: uuid.UUID, rate: float) -> float:
        """Take one request from the tenant's bucket at ``rate`` per second: 0 when allowed, else the seconds to
        wait before retrying. A rate of 0 or less is no limit. Never raises because a store is unavailable."""
        ...

    async def close(self) -> None:
        """Release the limiter's connections (the runtime calls it when it closes)."""
        ...


def rate_limiter_for(settings: Settings) -> RateLimiter:
    """The limiter the settings ask for: shared in Redis with ``redis_url``, else in this process."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    return LocalRateLimiter()
