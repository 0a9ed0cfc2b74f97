"""Test helpers: a real webhook receiver on a loopback port, a worker runtime, and shortcuts.

The receiver is a small HTTP/1.1 server (``asyncio.start_server``) that checks signatures exactly as a tenant's system
would: Standard Webhooks headers with the ``standardwebhooks`` library's own verifier, ``Fealty-Signature`` (endpoints
of before) with :func:`core.webhooks.signing.verify_signature`. It records every request and can be told to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.db.engine import tenant_session
from core.jobs.queue import enqueue_or_wake
from core.outbox.service import DISPATCH_JOB, emit
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.testing import TenantHandle, settings_for_tests
from core.webhooks.service import DELIVER_JOB
from core.webhooks.signing import InvalidSignature, verify_signature
from core.worker import WorkReport, build_registry, run_due, worker_name


def verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: Standard Webhooks when its headers are there (the library's verifier), else the
    ``Fealty-Signature`` scheme of before."""
    if "webhook-signature" in headers:
        if not secret:
            raise WebhookVerificationError("no secret to verify with")
        Webhook(secret).verify(body, headers, json_parse=False)
    else:
        verify_signature(secret, headers.get("fealty-signature"), body)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: None when the signature checked out, else why not.
    signature_error: str | None
    status: int

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Hook:
    """One endpoint on the receiver: its path, the secret to verify with, and how to answer."""

    path: str
    secret: str | None = None
    #: Answer 500 to this many requests first.
    fail_first: int = 0
    always_fail: bool = False
    #: Sleep this long before answering (to make the sender time out).
    delay: float = 0.0
    #: Answer this instead of 200 / 500 (status, extra headers, body).
    answer: tuple[int, dict[str, str], bytes] | None = None
    requests: list[Received] = field(default_factory=list)

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.requests if r.signature_error is None]


class Receiver:
    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.requests: list[Received] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def hook(self, name: str | None = None) -> Hook:
        path = f"/hooks/{name or uuid.uuid4().hex[:8]}"
        self.hooks[path] = Hook(path)
        return self.hooks[path]

    def url(self, hook: Hook) -> str:
        return f"http://127.0.0.1:{self.port}{hook.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the connection
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, extra, answer = await self._answer(method, target, headers, body)
                head = {"Content-Type": "text/plain", "Content-Length": str(len(answer))} | extra
                lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
                writer.write(f"HTTP/1.1 {status} Whatever\r\n{lines}\r\n".encode() + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        hook = self.hooks.get(path)
        if hook is None or method != "POST":
            return 404, {}, b"no such hook"
        if hook.delay:
            await asyncio.sleep(hook.delay)
        error: str | None = None
        try:
            verify(hook.secret or "", headers, body)
        except (InvalidSignature, WebhookVerificationError) as exc:
            error = str(exc)
        failing = hook.always_fail or len(hook.requests) < hook.fail_first
        status = 400 if error else 500 if failing else 200
        extra: dict[str, str] = {}
        answer = {400: f"bad signature: {error}", 500: "boom: told to fail", 200: "thanks"}[status].encode()
        if hook.answer is not None and not error:
            status, extra, answer = hook.answer
        received = Received(path, headers, body, error, status)
        hook.requests.append(received)
        self.requests.append(received)
        return status, extra, answer


WEBHOOK_TEST_SETTINGS: dict[str, Any] = {
    "webhook_max_attempts": 3,
    "webhook_backoff_base_seconds": 60.0,
    "webhook_backoff_cap_seconds": 3600.0,
    "webhook_timeout_seconds": 2.0,
    "webhook_concurrency": 4,
}


def make_worker(database_url: str, **overrides: Any) -> Runtime:
    """A worker process's runtime (its own engine and settings), as ``fealty worker`` would have."""
    settings = settings_for_tests(database_url, **(WEBHOOK_TEST_SETTINGS | overrides))
    return Runtime.create(settings, PluginManager())


async def drain(runtime: Runtime, tenant: TenantHandle) -> WorkReport:
    """Wake the tenant's dispatcher and deliverer and run every due job, as the worker does after a commit."""
    async with tenant_session(runtime.sessionmaker, None) as session:
        for kind in (DISPATCH_JOB, DELIVER_JOB):
            await enqueue_or_wake(session, kind, tenant_id=tenant.id, dedupe_key=f"{kind}:{tenant.id}")
    return await run_due(runtime, build_registry(runtime), worker_name())


async def emit_events(runtime: Runtime, tenant: TenantHandle, *events: tuple[str, dict[str, Any]]) -> None:
    """Domain events written into the outbox in one transaction, as a feature does with its change."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        for kind, data in events:
            await emit(session, tenant.id, kind, data)


async def add_endpoint(tenant: TenantHandle, receiver: Receiver, hook: Hook, event_types: list[str]) -> dict:
    response = await tenant.post("/v1/webhook-endpoints", json={"url": receiver.url(hook), "event_types": event_types})
    assert response.status_code == 201, response.text
    created: dict = response.json()
    hook.secret = created["secret"]
    return created


async def deliveries(tenant: TenantHandle, **params: Any) -> list[dict]:
    response = await tenant.get("/v1/webhook-deliveries", params={"limit": 500} | params)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items
