"""Metrics everywhere: with ``fealty serve --workers 2`` one scrape of /metrics adds up both processes (Prometheus
multiprocess mode); ``fealty worker --metrics-port`` serves the worker's own metrics (jobs by kind and outcome,
lateness)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db.engine import tenant_session
from core.jobs import queue
from core.runtime import Runtime
from core.testing import TEST_PLATFORM_KEY


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEALTY_", "PROMETHEUS_"))}
    return env | {
        "FEALTY_DATABASE_URL": database_url,
        "FEALTY_PLATFORM_KEY": TEST_PLATFORM_KEY,
        "FEALTY_MIGRATE_ON_START": "false",
        "FEALTY_EMBEDDED_WORKER": "false",
        "FEALTY_LOG_LEVEL": "WARNING",
        "FEALTY_LOAD_ENTRY_POINT_PLUGINS": "false",
        **extra,
    }


@contextmanager
def _running(args: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "not ready:\n" + log.read_text()
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _samples(text: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


@pytest.mark.postgres_only
def test_one_scrape_counts_every_api_process(postgres_url: str, tmp_path: Path) -> None:
    port = _port()
    base = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    env = _env(postgres_url, FEALTY_METRICS_DIR=str(metrics_dir))
    with _running(["serve", "--workers", "2", "--port", str(port)], env, f"{base}/readyz", tmp_path / "serve.log"):
        auth = {"Authorization": f"Bearer {TEST_PLATFORM_KEY}"}
        for _ in range(40):  # a new connection each: both processes answer some
            with httpx.Client(base_url=base) as http:
                assert http.get("/v1/platform/tenants", params={"limit": 1}, headers=auth).status_code == 200
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2  # both processes wrote their samples
        for _ in range(3):  # whichever process answers the scrape, it sees all 40
            scraped = httpx.get(f"{base}/metrics").text
            counted = sum(
                s.value for s in _samples(scraped, "fealty_requests_total") if "tenants" in s.labels.get("route", "")
            )
            assert counted == 40


def _sockets_of(pid: int) -> set[int]:
    """The inodes of the sockets a process holds open."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _tcp_on(port: int) -> dict[int, str]:
    """Every IPv4 TCP socket whose local port is ``port``: its inode and state (0A listening, 01 established)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {
        int(fields[9]): fields[3]
        for fields in (row.split() for row in rows)
        if int(fields[1].split(":")[1], 16) == port
    }


def _workers_of(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@contextmanager
def _serving_two_workers(postgres_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    """``fealty serve --workers 2`` on a free port: the supervisor's process, the base URL and the port."""
    port = _port()
    base = f"http://127.0.0.1:{port}"
    env = _env(postgres_url, FEALTY_METRICS_DIR=str(tmp_path / "metrics"))
    with _running(
        ["serve", "--workers", "2", "--port", str(port)], env, f"{base}/healthz", tmp_path / "serve.log"
    ) as server:
        yield server, base, port


@pytest.mark.postgres_only
def test_each_api_process_accepts_on_a_socket_of_its_own(postgres_url: str, tmp_path: Path) -> None:
    """``fealty serve --workers 2``: each process listens on its own socket (``SO_REUSEPORT``), so that the kernel
    spreads kept-alive connections over both; with one shared socket the first process awake took them all."""
    with _serving_two_workers(postgres_url, tmp_path) as (server, base, port):
        workers = _workers_of(server.pid)
        assert len(workers) == 2
        # Each keeps its one connection open; a worker still starting answers from its socket's backlog when ready.
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(24)]
        try:
            for client in clients:
                assert client.get("/healthz").status_code == 200
            on_port = _tcp_on(port)
            listening = {inode for inode, state in on_port.items() if state == "0A"}
            established = {inode for inode, state in on_port.items() if state == "01"}
            held = [_sockets_of(pid) for pid in workers]
            assert all(len(sockets & listening) == 1 for sockets in held)  # a listening socket each
            assert len(listening) == 2
            kept = [len(sockets & established) for sockets in held]
            assert sum(kept) == 24 and min(kept) > 0, kept  # 2**-23 that a fair hash gives one process all 24
        finally:
            for client in clients:
                client.close()
        os.kill(workers[0], signal.SIGKILL)  # a worker dies: another takes its socket
        deadline = time.monotonic() + 30
        while (replaced := _workers_of(server.pid)) == [workers[1]] or workers[0] in replaced:
            assert time.monotonic() < deadline, replaced
            time.sleep(0.2)
        assert len(replaced) == 2
        for _ in range(20):  # the new worker answers what its socket held meanwhile
            with httpx.Client(base_url=base, timeout=60) as http:
                assert http.get("/healthz").status_code == 200
    assert server.returncode == 0  # stopped by SIGTERM, its workers with it
    assert not [pid for pid in replaced if Path(f"/proc/{pid}").exists()]


@pytest.mark.postgres_only
def test_few_kept_alive_connections_end_shared_fairly_between_the_workers(postgres_url: str, tmp_path: Path) -> None:
    """Eight clients each keep one connection and send requests back to back. However the kernel's hash first split
    them (four and four only about one time in four), the workers even it out: one holding more than its share
    answers a request on its surplus with ``Connection: close``, and the client's next connection is hashed afresh.
    Every request is answered."""
    with _serving_two_workers(postgres_url, tmp_path) as (server, base, port):
        workers = _workers_of(server.pid)
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(8)]
        statuses: list[int] = []

        def keep_sending(client: httpx.Client) -> None:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                statuses.append(client.get("/readyz").status_code)  # it reads the database: a request in flight

        try:
            threads = [threading.Thread(target=keep_sending, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            on_port = _tcp_on(port)
            established = {inode for inode, state in on_port.items() if state == "01"}
            kept = sorted(len(_sockets_of(pid) & established) for pid in workers)
        finally:
            for client in clients:
                client.close()
    assert kept == [4, 4], kept
    assert statuses and set(statuses) == {200}


@pytest.mark.postgres_only
async def test_the_worker_serves_its_own_metrics(postgres_url: str, pg_client, tmp_path: Path) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    async with tenant_session(runtime.sessionmaker, None) as session:
        await queue.enqueue(session, "retention.platform", dedupe_key=f"metrics-test-{time.time_ns()}")
    port = _port()
    env = _env(postgres_url, FEALTY_WORKER_POLL_SECONDS="0.2")
    url = f"http://127.0.0.1:{port}/metrics"
    with _running(["worker", "--metrics-port", str(port)], env, url, tmp_path / "worker.log"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            scraped = httpx.get(url).text
            done = [
                s
                for s in _samples(scraped, "fealty_jobs_total")
                if s.labels == {"kind": "retention.platform", "outcome": "done"}
            ]
            if done and done[0].value >= 1:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(scraped)
        assert _samples(scraped, "fealty_job_lateness_seconds_count")
        assert _samples(scraped, "fealty_job_duration_seconds_count")
