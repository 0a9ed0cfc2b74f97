"""Per-tenant request rate limit: a token bucket in this process (burst = 2 seconds' worth).

With several API processes each enforces its own bucket; the production note in infra/ describes moving the buckets
to Redis for one shared limit.
"""

from __future__ import annotations

import math
import time
import uuid


class TokenBuckets:
    def __init__(self) -> None:
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def take(self, tenant_id: uuid.UUID, rate: float) -> float:
        """Take one token; returns 0 when allowed, else the seconds to wait before retrying."""
        if rate <= 0:
            return 0.0
        capacity = max(1.0, 2 * rate)
        now = time.monotonic()
        tokens, stamp = self._buckets.get(tenant_id, (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens < 1:
            self._buckets[tenant_id] = (tokens, now)
            return math.ceil((1 - tokens) / rate * 1000) / 1000
        self._buckets[tenant_id] = (tokens - 1, now)
        return 0.0
