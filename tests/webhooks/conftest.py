"""Fixtures for the webhook tests: a receiver on a loopback port and a worker with small webhook settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from core.runtime import Runtime
from tests.webhooks.helpers import Receiver, make_worker


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def worker(database_url: str) -> AsyncIterator[Runtime]:
    runtime = make_worker(database_url)
    yield runtime
    await runtime.close()
