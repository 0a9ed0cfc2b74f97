"""The workers' fair split of connections (core/serving.py), tick by tick on one worker's connections: its surplus is
shed only from requests in flight, once per connection, and a WebSocket (no request cycle) is counted but never
touched. The end-to-end split over real sockets is in test_metrics.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from core import serving

pytestmark = pytest.mark.asyncio(loop_scope="session")


class _Connection:
    """A protocol as uvicorn keeps it in ``server_state.connections`` (hashable, by identity)."""


def _http(in_flight: bool) -> _Connection:
    connection = _Connection()
    connection.cycle = SimpleNamespace(keep_alive=True, response_complete=not in_flight)  # type: ignore[attr-defined]
    return connection


async def test_a_worker_over_its_share_closes_its_surplus_after_requests_in_flight_only() -> None:
    busy = [_http(in_flight=True) for _ in range(3)]
    idle, websocket = _http(in_flight=False), _Connection()  # uvicorn's WebSocket protocols have no ``cycle``
    server = SimpleNamespace(server_state=SimpleNamespace(connections={*busy, idle, websocket}))
    counts = [0, 1]  # the other worker holds one connection: six in all, a share of three each
    task = asyncio.create_task(serving._keep_fair(server, counts, 0))
    await asyncio.sleep(serving.BALANCE_SECONDS * 5)  # several ticks: what is shed is not shed again
    assert not task.done(), task.exception() if task.done() else None
    task.cancel()
    assert counts == [5, 1]
    assert sum(not p.cycle.keep_alive for p in busy)  # type: ignore[attr-defined] == 2  # 5 held - 3 share
    assert idle.cycle.keep_alive  # type: ignore[attr-defined]  # an idle connection is never closed: a request could be on its way
