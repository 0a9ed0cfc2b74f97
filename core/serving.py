"""``fealty serve --workers N``: N uvicorn processes, each accepting on a listening socket of its own.

uvicorn's own multiprocess mode shares one listening socket between its workers, and whichever process wakes first
accepts: a client's keep-alive connections (a load balancer's, a load generator's) pile up on one process while the
others idle (measured in ``bench/``: 32 connections split 32 to 0, and four batch connections 4 to 0, so one
process's core did the work of two). Here every worker binds its own socket to the same address with
``SO_REUSEPORT``, and the kernel spreads new connections over the sockets by a hash of their addresses.

A hash spreads many connections evenly but few of them rarely: four kept-alive connections land two and two only
three times in eight (bench/: four batch connections split three to one ran a fifth slower). So the workers keep
the split fair themselves: each publishes how many connections it holds (shared memory, every
:data:`BALANCE_SECONDS`), and one holding more than its share (the total over the workers, rounded up) answers the
request in flight on its surplus connections with ``Connection: close``, as a graceful shutdown does; the client
opens a new connection, which the kernel hashes afresh. Idle connections are never closed (a request could be on its
way), and nothing is refused.

The supervisor starts the workers, restarts one that dies (a worker that dies within :data:`STARTUP_SECONDS` of its
start twice in a row stops the whole server: the app cannot start), and on SIGINT or SIGTERM stops them all and
waits for them (each finishes its requests in flight, as uvicorn does on SIGTERM).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import socket
import threading
import time
from typing import Any

#: A worker that dies sooner than this after its start counts as failing to start.
STARTUP_SECONDS = 10.0
#: Pending connections each worker's socket holds (uvicorn's default).
BACKLOG = 2048
#: How often each worker publishes its connection count and sheds its surplus.
BALANCE_SECONDS = 0.05


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other sockets of this user may bind too (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _worker(sock: socket.socket, app: str, options: dict[str, Any], counts: Any, index: int) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **options))

    async def serve() -> None:
        balancing = asyncio.create_task(_keep_fair(server, counts, index))
        try:
            await server.serve(sockets=[sock])
        finally:
            balancing.cancel()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:  # as uvicorn.Server.run does
        runner.run(serve())


async def _keep_fair(server: Any, counts: Any, index: int) -> None:
    """Publish this worker's connection count in ``counts[index]``; while it holds more than its share, close its
    surplus connections after the request each has in flight (``Connection: close``)."""
    while True:
        await asyncio.sleep(BALANCE_SECONDS)
        # An HTTP connection's request in flight; a WebSocket's protocol has none (counted, never shed).
        cycles = [getattr(protocol, "cycle", None) for protocol in server.server_state.connections]
        counts[index] = len(cycles)
        share = -(-sum(counts) // len(counts))
        closing = sum(1 for cycle in cycles if cycle is not None and not cycle.keep_alive)
        surplus = len(cycles) - closing - share
        for cycle in cycles:
            if surplus <= 0:
                break
            if cycle is not None and cycle.keep_alive and not cycle.response_complete:
                cycle.keep_alive = False  # answered with Connection: close, then closed
                surplus -= 1


def serve(app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Serve ``app`` on ``host:port`` with ``workers`` processes until SIGINT or SIGTERM; the exit status."""
    sockets = [listening_socket(host, port) for _ in range(workers)]  # all bound before any worker starts
    context = multiprocessing.get_context("spawn")
    counts = context.Array("i", workers, lock=False)  # each worker's connections, written by that worker only
    stopping = threading.Event()

    def start(index: int) -> tuple[multiprocessing.process.BaseProcess, float]:
        counts[index] = 0
        process = context.Process(target=_worker, args=(sockets[index], app, options, counts, index), daemon=False)
        process.start()
        return process, time.monotonic()

    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start(index) for index in range(workers)]
    failed_starts = [0] * workers
    status = 0
    try:
        while not stopping.wait(0.5):
            for index, (process, started) in enumerate(running):
                if process.is_alive():
                    continue
                failed_starts[index] = failed_starts[index] + 1 if time.monotonic() - started < STARTUP_SECONDS else 0
                if failed_starts[index] >= 2:
                    status = 3  # uvicorn's STARTUP_FAILURE
                    stopping.set()
                    break
                running[index] = start(index)
    finally:
        for process, _ in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes what is in flight
        for process, _ in running:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
