"""The open-loop generator's arithmetic (bench/openloop.py): a fixed schedule, latency counted from the intended send
time (coordinated omission corrected), and a run where the generator fell behind is said to be one. Not timed."""

from __future__ import annotations

import pytest

from bench.openloop import Outcome, intended_times, percentile, summarize


def test_requests_are_due_at_fixed_intervals_whatever_the_answers() -> None:
    due = intended_times(100, 2, start=10.0)
    assert len(due) == 200
    assert due[0] == 10.0 and due[1] == pytest.approx(10.01) and due[-1] == pytest.approx(11.99)
    assert intended_times(3, 1) == pytest.approx([0, 1 / 3, 2 / 3])
    assert intended_times(0, 10) == [] and intended_times(10, 0) == []


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 0.5) == 500 and percentile(values, 0.99) == 990 and percentile(values, 0.999) == 999
    assert percentile([7.0], 0.999) == 7.0 and percentile([], 0.5) is None


def test_a_stall_counts_for_every_request_due_during_it_not_only_the_one_that_waited() -> None:
    """The server stalls for 1 s at t = 1 s; at 100 requests/s, the hundred requests due during the stall are each
    answered when it ends. A closed-loop client's view (service time) sees one slow request; the open-loop latency
    sees the stall in every request due during it, so the p90 shows it."""
    outcomes = []
    for i in range(300):
        due = i / 100
        if 1.0 <= due < 2.0:  # sent on time (a free connection each), answered when the stall ends
            outcomes.append(Outcome(due, sent=due, answered=2.0 + 0.002, status=201))
        else:
            outcomes.append(Outcome(due, sent=due, answered=due + 0.002, status=201))
    result = summarize(outcomes, rate=100, seconds=3)
    assert result["latency"]["p50_ms"] == 2.0
    assert result["latency"]["p90_ms"] > 500  # a third of the requests were due during the stall
    assert result["latency"]["max_ms"] == pytest.approx(1002.0)
    assert result["achieved_per_s"] == pytest.approx(100, rel=0.01)
    assert not result["generator_behind"] and result["errors"] == {"non_2xx": 0, "socket_or_timeout": 0, "samples": []}


def test_waiting_for_a_connection_is_latency_not_the_generators_lag() -> None:
    outcomes = [Outcome(0.0, sent=0.5, answered=0.51, status=200, waited_for_connection=True)]
    outcomes += [Outcome(0.01 * i, sent=0.01 * i + 0.0001, answered=0.01 * i + 0.003, status=200) for i in range(1, 99)]
    result = summarize(outcomes, rate=100, seconds=1, cap_reached=1)
    assert result["latency"]["max_ms"] == pytest.approx(510.0)  # from the intended time, not from the send
    assert result["service_time"]["max_ms"] == pytest.approx(10.0)
    assert result["send_lag"]["max_ms"] == pytest.approx(0.1)  # the wait is not the generator's lateness
    assert result["generator_behind"] and "connection cap" in result["behind_because"][0]


def test_a_generator_short_of_cpu_says_so() -> None:
    late = [Outcome(0.01 * i, sent=0.01 * i + 0.02, answered=0.01 * i + 0.025, status=200) for i in range(100)]
    result = summarize(late, rate=100, seconds=1, lag_limit_ms=5)
    assert result["generator_behind"] and "send lag p99 20.0 ms" in result["behind_because"][0]
    assert result["latency"]["p50_ms"] == pytest.approx(25.0)  # still counted from the intended time


def test_errors_and_unsent_requests_are_counted() -> None:
    outcomes = [
        Outcome(0.0, sent=0.0, answered=0.01, status=201),
        Outcome(0.01, sent=0.01, answered=0.02, status=422),
        Outcome(0.02, sent=0.02, error="TimeoutError"),
        Outcome(0.03),
    ]
    result = summarize(outcomes, rate=100, seconds=0.04)
    assert result["errors"]["non_2xx"] == 1 and result["errors"]["socket_or_timeout"] == 2
    assert result["sent"] == 3 and result["generator_behind"]
    assert "1 of 4 requests never sent" in result["behind_because"]


def test_the_generator_sends_and_reads_answers_on_keep_alive_connections_under_uvloop() -> None:
    """Against a small HTTP/1.1 server of the test's own (keep-alive, Content-Length), on uvloop as the bench runs
    it: every request is sent and answered, and each outcome carries its three times in order. Not timed."""
    import asyncio

    import uvloop

    from bench.openloop import Generator

    async def main() -> list[Outcome]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:  # the generator closed the connection: the run is over
                    writer.close()
                    return
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if line.startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                await writer.drain()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            body = b'{"a":1}'
            request = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n" + body
            return await Generator("127.0.0.1", port, lambda i: request, connections=4).run(100, 0.3)
        finally:
            server.close()

    loop = uvloop.new_event_loop()
    try:
        outcomes = loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(outcomes) == 30
    assert all(o.status == 201 and o.error is None for o in outcomes), outcomes[:3]
    assert all(o.sent is not None and o.answered is not None for o in outcomes)
    assert all(o.intended <= o.sent <= o.answered for o in outcomes if o.sent and o.answered)  # type: ignore[operator]
