"""The README's first command: ``fealty serve`` on SQLite, as a real process on a loopback port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

FEALTY = [sys.executable, "-m", "core.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_")}
    env |= {
        "FEALTY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "FEALTY_LOG_JSON": "true",
        "FEALTY_LOG_LEVEL": "INFO",
        "FEALTY_WORKER_POLL_SECONDS": "0.2",
        "FEALTY_RELEASE_EVERY_SECONDS": "1",
        # A new tenant's recurring jobs are scheduled at the next sync of changed tenants (30 s by default).
        "FEALTY_SCHEDULE_SYNC_SECONDS": "1",
    }
    return env | extra


def _start(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*FEALTY, "serve", "--port", str(port)], env=_env(db), stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        time.sleep(0.1)
    process.terminate()
    raise AssertionError("fealty serve did not become ready:\n" + log.read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=15)


def test_serve_on_sqlite_walkthrough_and_logs(tmp_path: Path) -> None:
    db, port, log = tmp_path / "fealty.db", _free_port(), tmp_path / "serve.log"
    process = _start(db, port, log)
    try:
        output = log.read_text()
        keys = re.findall(r"ftp_[A-Za-z0-9_-]{20,}", output)
        assert len(keys) == 1, output  # generated and printed once
        platform_key = keys[0]
        base = f"http://127.0.0.1:{port}"
        created = httpx.post(
            f"{base}/v1/platform/tenants",
            headers={"Authorization": f"Bearer {platform_key}"},
            json={"name": "Demo", "slug": "demo", "timezone": "UTC", "currency": "EUR"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["api_key"]["secret"]
        auth = {"Authorization": f"Bearer {secret}"}
        member = httpx.post(f"{base}/v1/members", headers=auth, json={"external_id": "m-1"}).json()
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        credited = httpx.post(
            f"{base}/v1/members/{member['id']}/points/adjust",
            headers=auth,
            json={"points": 10, "reason": "hello", "available_at": soon},
        )
        assert credited.status_code == 201 and credited.json()["pending"] == 10
        for _ in range(50):  # the worker embedded in `fealty serve` releases the pending points
            balance = httpx.get(f"{base}/v1/members/{member['id']}/balance", headers=auth).json()
            if balance["available"] == 10:
                break
            time.sleep(0.1)
        assert (balance["available"], balance["pending"]) == (10, 0)
        assert httpx.get(f"{base}/v1/members", headers={"Authorization": "Bearer wrong"}).status_code == 401
        logged_before_readyz = len(log.read_text().splitlines())
        for _ in range(3):
            assert httpx.get(f"{base}/readyz").status_code == 200
        time.sleep(0.3)
        after_readyz = log.read_text().splitlines()[logged_before_readyz:]
    finally:
        _stop(process)
    # Structured logs: every line of stdout and stderr is JSON (the app's, uvicorn's, Alembic's, the key notice),
    # with the request id and tenant id, and never a key.
    raw = log.read_text().splitlines()
    assert raw
    lines = []
    for text in raw:
        try:
            lines.append(json.loads(text))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {text!r}") from None
    assert all(isinstance(line, dict) and line.get("event") and line.get("level") for line in lines)
    loggers = {line.get("logger") for line in lines}
    assert {"uvicorn.error", "alembic.runtime.migration"} <= loggers  # the standard library's loggers, as JSON
    assert not any(json.loads(text).get("logger", "").startswith("alembic") for text in after_readyz)
    notices = [line for line in lines if line["event"] == "platform_key_generated"]
    assert [n["platform_operator_key"] for n in notices] == [platform_key]
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests and all("request_id" in line for line in requests)
    tenant_lines = [line for line in requests if line["path"].startswith("/v1/members")]
    assert tenant_lines and all(line.get("tenant_id") for line in tenant_lines if line["status"] != 401)
    body_of_logs = "\n".join(json.dumps(line) for line in lines if line["event"] != "platform_key_generated")
    assert secret not in body_of_logs
    assert platform_key not in body_of_logs
    # A second start keeps the stored key and prints none.
    log2 = tmp_path / "serve2.log"
    process = _start(db, port, log2)
    try:
        assert "ftp_" not in log2.read_text()
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/v1/platform/tenants", headers={"Authorization": f"Bearer {platform_key}"}
            ).status_code
            == 200
        )
    finally:
        _stop(process)


def test_migrate_and_worker_once(tmp_path: Path) -> None:
    env = _env(tmp_path / "m.db")
    migrated = subprocess.run([*FEALTY, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    assert "latest migration" in migrated.stdout
    worker = subprocess.run([*FEALTY, "worker", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 0, worker.stderr
    assert "failed=0" in worker.stdout and "retention.platform=1" in worker.stdout
