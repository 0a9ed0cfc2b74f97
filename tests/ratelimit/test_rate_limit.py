"""Per-tenant rate limit through the API: 429 with Retry-After when the tenant's bucket is empty; with
``FEALTY_REDIS_URL`` one bucket for every API process, and Redis going away degrades to each process's own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from core.app import create_app
from core.db.migrate import upgrade_async
from core.testing import TEST_PLATFORM_KEY, TenantHandle, create_tenant, settings_for_tests
from tests.redis_server import RedisServer

RATE = 4.0  # requests per second; burst = 8


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(db: Path, redis_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``fealty serve`` as its own process (uvicorn on a loopback port), sharing the database and Redis."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")} | {
        "FEALTY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "FEALTY_PLATFORM_KEY": TEST_PLATFORM_KEY,
        "FEALTY_REDIS_URL": redis_url,
        "FEALTY_RATE_LIMIT_PER_SECOND": str(RATE),
        "FEALTY_MIGRATE_ON_START": "false",
        "FEALTY_EMBEDDED_WORKER": "false",
        "FEALTY_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        time.sleep(0.1)
    process.terminate()
    raise AssertionError("fealty serve did not become ready:\n" + log.read_text())


async def _hammer(tenants: list[TenantHandle], seconds: float) -> tuple[Counter[tuple[int, int]], float]:
    """GET /v1/members as fast as four callers can, alternating between the processes: (process, status) counts."""
    counts: Counter[tuple[int, int]] = Counter()
    started = time.monotonic()

    async def caller(offset: int) -> None:
        i = offset
        while time.monotonic() - started < seconds:
            which = i % len(tenants)
            counts[which, (await tenants[which].get("/v1/members")).status_code] += 1
            i += 1

    await asyncio.gather(*(caller(n) for n in range(4)))
    return counts, time.monotonic() - started


def _statuses(counts: Counter[tuple[int, int]]) -> Counter[int]:
    return Counter({status: sum(n for (_, s), n in counts.items() if s == status) for _, status in counts})


async def test_two_api_processes_hold_one_rate_and_survive_redis_going_away(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    db = tmp_path / "fealty.db"
    logs = [tmp_path / "api-1.log", tmp_path / "api-2.log"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await upgrade_async(f"sqlite+aiosqlite:///{db}")
        (first, url1), (second, url2) = (_serve(db, redis_server.url, log) for log in logs)
        processes += [first, second]
        _wait_ready(first, url1, logs[0])
        _wait_ready(second, url2, logs[1])
        async with (
            httpx.AsyncClient(base_url=url1, timeout=30) as http1,
            httpx.AsyncClient(base_url=url2, timeout=30) as http2,
        ):
            tenant = await create_tenant(http1)
            # The same tenant (the same key) through each process.
            via = [tenant, TenantHandle(tenant.id, tenant.slug, tenant.key, http2, tenant.data)]

            counts, elapsed = await _hammer(via, 3.0)
            statuses = _statuses(counts)
            assert set(statuses) <= {200, 429}, counts
            burst = 2 * RATE
            # One shared bucket: the burst plus the rate over the run (N processes would give N times that).
            assert burst <= statuses[200] <= burst + RATE * elapsed + 2, (counts, elapsed)
            assert all(counts[p, 200] and counts[p, 429] for p in (0, 1)), counts  # both saw the one bucket

            redis_server.stop()  # Redis goes away
            await asyncio.sleep(2 * burst / RATE)  # each process's own bucket would be full by now
            counts, elapsed = await _hammer(via, 1.0)
            statuses = _statuses(counts)
            assert set(statuses) <= {200, 429}, counts  # never an error
            assert statuses[429], counts  # still limited
            # In process now: each has its own burst, so together more than the one shared bucket allowed.
            assert statuses[200] > burst + RATE * elapsed + 2, (counts, elapsed)
            assert all(counts[p, 200] >= burst for p in (0, 1)), counts
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
    for log in logs:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        warnings = [line for line in lines if line.get("event") == "rate_limit_redis_unavailable"]
        assert warnings and warnings[0]["level"] == "warning", log.read_text()
        assert not [line for line in lines if line.get("level") in ("error", "critical")], log.read_text()
