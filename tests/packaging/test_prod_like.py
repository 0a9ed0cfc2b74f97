"""`make prod-like` (infra/prod-like): the production layout on this machine's PostgreSQL and Redis -- the owner
migrates, the API runs as a login role that owns nothing, two API processes sharing their rate limits in Redis and a
worker under honcho -- started as an operator would, used over real HTTP, and stopped with one signal."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as redis

from core.testing import DEFAULT_ADMIN_URL, TEST_PLATFORM_KEY
from tests.redis_server import RedisServer
from tests.webhooks.helpers import Receiver

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.postgres_only
RATE = 3  # requests per second per tenant (burst twice that), held in Redis across both API processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            try:
                if (await http.get(f"{base}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            await asyncio.sleep(0.2)
    pytest.fail(f"{base} did not become ready:\n{log.read_text()}")


async def _shared_rate_limit(http: httpx.AsyncClient, api1: str, api2: str, platform: str, redis_url: str) -> None:
    """A burst split between the two processes gets one plan's worth, not two: the bucket is in Redis."""
    created = await http.post(
        f"{api1}/v1/platform/tenants",
        headers={"Authorization": f"Bearer {platform}"},
        json={"name": "Burst", "slug": "burst", "timezone": "UTC", "currency": "EUR"},
    )
    assert created.status_code == 201, created.text
    tenant_id, auth = created.json()["tenant"]["id"], {"Authorization": f"Bearer {created.json()['api_key']['secret']}"}
    started = time.monotonic()
    answers = await asyncio.gather(*(http.get(f"{(api1, api2)[n % 2]}/v1/program", headers=auth) for n in range(40)))
    elapsed = time.monotonic() - started
    allowed = sum(a.status_code == 200 for a in answers)
    assert {a.status_code for a in answers} == {200, 429}
    # One bucket: its burst (2 x RATE) and what it refilled meanwhile; two buckets would allow twice the burst.
    assert allowed <= 2 * RATE + math.ceil(RATE * elapsed) + 1, (allowed, elapsed)
    async with redis.Redis.from_url(redis_url) as client:
        assert await client.exists(f"fealty:ratelimit:{tenant_id}")


async def test_two_apis_and_a_worker_on_postgres_and_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    """On a redis-server of its own (infra/prod-like's default is this machine's, on 6379)."""
    admin = os.environ.get("FEALTY_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
    where = urlsplit(admin)
    db = f"fealty_prodlike_test_{uuid.uuid4().hex[:8]}"
    ports = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")} | {
        "PRODLIKE_DB": db,
        "PRODLIKE_PGHOST": where.hostname or "127.0.0.1",
        "PRODLIKE_PGPORT": str(where.port or 5432),
        "PRODLIKE_PGADMIN": where.username or "postgres",
        "PRODLIKE_API1_PORT": str(ports[0]),
        "PRODLIKE_API2_PORT": str(ports[1]),
        "PRODLIKE_REDIS": redis_server.url,
        "FEALTY_PLATFORM_KEY": TEST_PLATFORM_KEY,
        "FEALTY_WORKER_POLL_SECONDS": "0.2",
        "FEALTY_DISPATCH_EVERY_SECONDS": "1",
        "FEALTY_RATE_LIMIT_PER_SECOND": str(RATE),
        # Small pools: three processes beside the rest of the suite on one PostgreSQL (100 connections by default);
        # the burst below queues on them instead of opening forty connections.
        "FEALTY_DATABASE_POOL_SIZE": "4",
        "FEALTY_DATABASE_MAX_OVERFLOW": "2",
    }
    log = tmp_path / "prod-like.log"
    process = subprocess.Popen(
        [str(ROOT / "infra" / "prod-like")],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: honcho and its three processes
    )
    receiver = Receiver()
    await receiver.start()
    api1, api2 = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        await _ready(api1, process, log)
        await _ready(api2, process, log)
        async with httpx.AsyncClient(timeout=10) as http:
            created = await http.post(
                f"{api1}/v1/platform/tenants",
                headers={"Authorization": f"Bearer {TEST_PLATFORM_KEY}"},
                json={"name": "Prod-like", "slug": "prod-like", "timezone": "UTC", "currency": "EUR"},
            )
            assert created.status_code == 201, created.text
            auth = {"Authorization": f"Bearer {created.json()['api_key']['secret']}"}
            # Written through one API process, read through the other: one database behind both.
            member = await http.post(f"{api1}/v1/members", headers=auth, json={"external_id": "m-1"})
            assert member.status_code == 201, member.text
            listed = await http.get(f"{api2}/v1/members", headers=auth, params={"external_id": "m-1"})
            assert [m["id"] for m in listed.json()["items"]] == [member.json()["id"]]
            # The APIs on PostgreSQL run no worker of their own: a delivery reaching the receiver is the worker's.
            hook = receiver.hook()
            endpoint = await http.post(
                f"{api2}/v1/webhook-endpoints", headers=auth, json={"url": receiver.url(hook), "event_types": ["*"]}
            )
            assert endpoint.status_code == 201, endpoint.text
            hook.secret = endpoint.json()["secret"]
            sent = await http.post(f"{api1}/v1/webhook-endpoints/{endpoint.json()['id']}/test", headers=auth)
            assert sent.status_code == 202, sent.text
            # (The member's enrolment, dispatched by the worker after the endpoint exists, may come to it too.)
            for _ in range(300):
                if sent.json()["id"] in {r.headers["webhook-id"] for r in hook.verified}:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the test delivery never came: {hook.requests}\n{log.read_text()}")
            await _shared_rate_limit(http, api1, api2, TEST_PLATFORM_KEY, redis_server.url)
        # The API connects as the login role, which owns nothing and runs as fealty_app (row-level security).
        conn = await asyncpg.connect(admin.rsplit("/", 1)[0] + f"/{db}")
        try:
            owner = await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'members'")
            member_of = await conn.fetchval("SELECT pg_has_role('fealty_api', 'fealty_app', 'MEMBER')")
            assert owner == "fealty_owner" and member_of
        finally:
            await conn.close()
    finally:
        await receiver.stop()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()
    output = log.read_text()
    for name in ("api1.1", "api2.1", "worker.1"):
        assert f"{name} started" in output and f"{name} stopped" in output, output
