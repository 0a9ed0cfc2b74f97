"""An open-loop load generator: requests at a constant arrival rate, latency from each one's *intended* send time.

A closed-loop client (wrk, or wrk's ``delay()`` pacing in the soak) sends a connection's next request only when the
previous answer is back: when the server stalls, the client stops asking, and the requests that would have arrived
during the stall are never sent, so the stall shows as one slow request instead of hundreds (*coordinated omission*),
and the p99 is flattered by the very back-pressure it should show. Here, as in wrk2:

* request ``i`` is due at ``start + i / rate``, whatever happened before (:func:`intended_times`);
* it is sent on an idle keep-alive connection, or on a new one (up to ``--max-connections``): a slow server makes
  the generator open connections, never wait;
* its latency is ``answered - intended`` (:func:`summarize`): time spent waiting for a free connection or behind a
  late event loop counts, as it would for a user who clicked at the intended time. The service time
  (``answered - sent``, what a closed-loop client reports) is given beside it.

The generator says when it was itself the bottleneck (``generator_behind``): its send lag (sent - intended, on a free
connection) above ``--lag-limit-ms`` at the 99th percentile, fewer requests sent than scheduled, or the connection
cap reached. A figure from a run that fell behind is still corrected (the latency counts from the intended time) but
is an upper bound on what the server did, and the report says so.

    python -m bench.openloop --url http://127.0.0.1:8000 --key KEY --kind events --rate 800 --seconds 30
    python -m bench.run --open-loop     # the served app on PostgreSQL: maxima closed-loop, then 70 % open-loop

Raw HTTP/1.1 over asyncio protocols (uvloop when present), the requests' bytes built before they are due, responses
parsed by their ``Content-Length``: the generator needs about 15 us of CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

#: The percentiles reported (as fractions).
PERCENTILES = (0.5, 0.9, 0.99, 0.999)


# --- the arithmetic (tests/bench/test_openloop.py) -------------------------------------------------------------------


def intended_times(rate: float, seconds: float, start: float = 0.0) -> list[float]:
    """When each request is due: ``start + i / rate`` for as many as fit in ``seconds`` (a fixed interval, no
    jitter, so two runs at one rate ask the same)."""
    if rate <= 0 or seconds <= 0:
        return []
    count = math.floor(rate * seconds + 1e-9)
    return [start + i / rate for i in range(count)]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence (the value at rank ceil(q * n)); None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Outcome:
    """One request: when it was due, sent and answered (seconds on one monotonic clock), and how."""

    intended: float
    sent: float | None = None
    answered: float | None = None
    status: int | None = None
    #: Sent later than due because every connection was busy and the cap was reached.
    waited_for_connection: bool = False
    error: str | None = None


def _ms(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {f"p{q * 100:g}_ms": _round(percentile(ordered, q)) for q in PERCENTILES} | {
        "max_ms": _round(ordered[-1] if ordered else None)
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summarize(
    outcomes: Sequence[Outcome],
    *,
    rate: float,
    seconds: float,
    lag_limit_ms: float = 5.0,
    cap_reached: int = 0,
) -> dict[str, Any]:
    """The figures of a run: achieved rate, latency from the intended time (coordinated-omission corrected), the
    service time, errors, and whether the generator itself fell behind (and why)."""
    answered = [o for o in outcomes if o.answered is not None and o.error is None]
    ok = [o for o in answered if o.status is not None and 200 <= o.status < 300]
    sent = [o for o in outcomes if o.sent is not None]
    latency = [o.answered - o.intended for o in answered if o.answered is not None]
    service = [o.answered - o.sent for o in answered if o.answered is not None and o.sent is not None]
    # The generator's own lateness: only where a connection was free (a wait for one is the server's doing).
    lag = [o.sent - o.intended for o in sent if o.sent is not None and not o.waited_for_connection]
    lag_ordered = sorted(lag)
    lag_p99 = percentile(lag_ordered, 0.99)
    scheduled = len(outcomes)
    reasons = []
    if lag_p99 is not None and lag_p99 * 1000 > lag_limit_ms:
        reasons.append(f"send lag p99 {lag_p99 * 1000:.1f} ms > {lag_limit_ms:g} ms (the generator was short of CPU)")
    if len(sent) < scheduled:
        reasons.append(f"{scheduled - len(sent)} of {scheduled} requests never sent")
    if cap_reached:
        reasons.append(f"the connection cap was reached {cap_reached} times (requests waited for a connection)")
    first = min((o.intended for o in outcomes), default=0.0)
    last = max((o.answered for o in answered if o.answered is not None), default=first)
    elapsed = max(seconds, last - first)
    return {
        "target_per_s": round(rate, 1),
        "seconds": seconds,
        "scheduled": scheduled,
        "sent": len(sent),
        "answered": len(answered),
        "achieved_per_s": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        "sent_per_s": round(len(sent) / seconds, 1) if seconds else 0.0,
        "latency": _ms(latency),
        "service_time": _ms(service),
        "send_lag": _ms(lag),
        "errors": {
            "non_2xx": len(answered) - len(ok),
            "socket_or_timeout": len(outcomes) - len(answered),
            "samples": sorted({o.error for o in outcomes if o.error})[:3],
        },
        "waited_for_connection": sum(1 for o in outcomes if o.waited_for_connection),
        "generator_behind": bool(reasons),
        "behind_because": reasons,
    }


# --- HTTP/1.1 over keep-alive connections ----------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer found by ``Content-Length``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.answered_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transport is not a subclass of asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            if b"transfer-encoding: chunked" in head:
                stop = self.buffer.find(b"0\r\n\r\n", end + 4)
                if stop < 0:
                    return
                total = stop + 5
            else:
                total = end + 4
        else:
            line_end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : line_end if line_end >= 0 else len(head)].strip())
            total = end + 4 + length
        if len(self.buffer) < total:
            return
        self.answered_at = time.perf_counter()
        status = int(head[9:12])
        del self.buffer[:total]
        self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))


@dataclass
class Generator:
    host: str
    port: int
    #: Builds request ``i``'s bytes (called before it is due).
    build: Callable[[int], bytes]
    connections: int = 32
    max_connections: int = 1024
    timeout: float = 30.0
    idle: list[_Connection] = field(default_factory=list)
    open_count: int = 0
    opened_total: int = 0
    waiting: deque[asyncio.Future[_Connection]] = field(default_factory=deque)
    cap_reached: int = 0

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self.open_count += 1
        self.opened_total += 1
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except OSError:
            self.open_count -= 1
            raise
        return conn

    async def _take(self, outcome: Outcome) -> _Connection:
        while self.idle:
            conn = self.idle.pop()  # the most recently used: least likely closed by the server's keep-alive timeout
            if not conn.closed:
                return conn
            self.open_count -= 1
        if self.open_count < self.max_connections:
            return await self._open()
        self.cap_reached += 1
        outcome.waited_for_connection = True
        future: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return await future

    def _give_back(self, conn: _Connection) -> None:
        if conn.closed:
            self.open_count -= 1
            return
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(conn)
                return
        self.idle.append(conn)

    async def _one(self, request: bytes, outcome: Outcome) -> None:
        try:
            await self._send(request, outcome)
        except Exception as exc:  # a fault of the generator's own is an error of the run, never a silent gap
            outcome.error = f"generator: {exc!r}"[:120]

    async def _send(self, request: bytes, outcome: Outcome) -> None:
        try:
            conn = await self._take(outcome)
        except OSError as exc:
            outcome.error = f"connect: {exc}"
            return
        assert conn.transport is not None
        conn.waiter = asyncio.get_running_loop().create_future()
        outcome.sent = time.perf_counter()
        conn.transport.write(request)
        try:
            outcome.status = await asyncio.wait_for(conn.waiter, self.timeout)
            outcome.answered = conn.answered_at
        except (ConnectionError, TimeoutError) as exc:
            outcome.error = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc)[:80]
            conn.transport.close()
            conn.closed = True
        finally:
            conn.waiter = None
        self._give_back(conn)

    async def run(self, rate: float, seconds: float) -> list[Outcome]:
        """Send at ``rate`` for ``seconds``; wait for the answers (at most ``timeout`` after the last is due)."""
        opened = await asyncio.gather(*(self._open() for _ in range(self.connections)))
        self.idle.extend(opened)
        due = intended_times(rate, seconds)
        requests = [self.build(i) for i in range(len(due))]  # built before the clock starts
        outcomes = [Outcome(0.0) for _ in due]
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        i = 0
        while i < len(due):
            now = time.perf_counter()
            # Everything due by now goes out (a late wake-up sends the backlog at once, each timed from its due).
            while i < len(due) and start + due[i] <= now:
                outcomes[i].intended = start + due[i]
                task = asyncio.create_task(self._one(requests[i], outcomes[i]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if i < len(due):
                await asyncio.sleep(max(0.0, start + due[i] - time.perf_counter()))
        if tasks:
            await asyncio.wait(set(tasks), timeout=self.timeout + 1)
        for task in list(tasks):
            task.cancel()
        for o in outcomes:
            if o.answered is None and o.error is None:
                o.error = "no answer"
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        return outcomes


# --- the requests ---------------------------------------------------------------------------------------------------


def request_builder(
    kind: str, host: str, key: str, members: int, ids: Sequence[str], occurred_at: str
) -> Callable[[int], bytes]:
    """The bench's requests: ``events`` (a purchase by a random member, a new event id each) or ``balance`` (a random
    member's balance), as bench/wrk/events.lua and balance.lua send them."""
    prefix = uuid.uuid4().hex[:10]
    head = f"Host: {host}\r\nAuthorization: Bearer {key}\r\nConnection: keep-alive\r\n"
    rng = random.Random(7)
    if kind == "events":

        def events(i: int) -> bytes:
            member = rng.randint(1, members)
            body = (
                f'{{"type":"purchase","event_id":"o{prefix}-{i}","member":{{"external_id":"m-{member}"}}'
                f',"occurred_at":"{occurred_at}","amount":"{rng.randint(1, 200)}.50"}}'
            ).encode()
            start = f"POST /v1/events HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            return f"{start}Content-Length: {len(body)}\r\n\r\n".encode() + body

        return events
    if kind == "balance":

        def balance(i: int) -> bytes:
            return f"GET /v1/members/{rng.choice(ids)}/balance HTTP/1.1\r\n{head}\r\n".encode()

        return balance
    raise ValueError(f"unknown kind {kind!r}")


async def measure(
    url: str,
    build: Callable[[int], bytes],
    rate: float,
    seconds: float,
    *,
    connections: int = 32,
    max_connections: int = 1024,
    lag_limit_ms: float = 5.0,
) -> dict[str, Any]:
    parts = urlsplit(url)
    generator = Generator(parts.hostname or "127.0.0.1", parts.port or 80, build, connections, max_connections)
    before = resource.getrusage(resource.RUSAGE_SELF)
    outcomes = await generator.run(rate, seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result = summarize(
        outcomes, rate=rate, seconds=seconds, lag_limit_ms=lag_limit_ms, cap_reached=generator.cap_reached
    )
    result["generator_cores"] = round(
        (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds, 2
    )
    result["connections_opened"] = generator.opened_total
    return result


def line(kind: str, r: dict[str, Any]) -> str:
    """One Markdown table row (see :data:`HEADER`)."""
    lat, svc = r["latency"], r["service_time"]
    errors = r["errors"]["non_2xx"] + r["errors"]["socket_or_timeout"]
    behind = "**yes**: " + "; ".join(r["behind_because"]) if r["generator_behind"] else "no"
    return (
        f"| {kind} | {r['target_per_s']:,} | {r['achieved_per_s']:,} | {lat['p50_ms']} | {lat['p90_ms']} | "
        f"{lat['p99_ms']} | {lat['p99.9_ms']} | {svc['p99_ms']} | {errors} | {r['connections_opened']} | "
        f"{r['generator_cores']} | {behind} |"
    )


HEADER = [
    "| kind | target/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | service p99 ms | errors | connections |"
    " generator cores | generator behind |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="the tenant's API key")
    parser.add_argument("--kind", choices=["events", "balance"], default="events")
    parser.add_argument("--rate", type=float, required=True, help="requests per second, constant")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--members", type=int, default=10_000, help="events: members m-1..m-N exist")
    parser.add_argument("--ids-file", help="balance: member ids, one per line")
    parser.add_argument("--connections", type=int, default=32, help="opened before the start")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--lag-limit-ms", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    ids = Path(args.ids_file).read_text().split() if args.ids_file else []
    occurred_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    parts = urlsplit(args.url)
    build = request_builder(args.kind, parts.netloc, args.key, args.members, ids, occurred_at)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(
        measure(
            args.url,
            build,
            args.rate,
            args.seconds,
            connections=args.connections,
            max_connections=args.max_connections,
            lag_limit_ms=args.lag_limit_ms,
        )
    )
    result["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.json:
        print(json.dumps(result))
        return
    print("\n".join([*HEADER, line(args.kind, result)]))
    print(json.dumps(result, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
