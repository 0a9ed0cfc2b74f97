"""Outbound HTTP for webhooks: POST signed requests, a bounded number at once, and report what happened to each.

No database here and nothing raised: every request ends in an :class:`OutboundResult` (a status code, or the error
that prevented one). Redirects are not followed (the tenant registered this URL, not wherever it points), proxies
from the environment are ignored, each request has a hard deadline, and only the first bytes of an answer are read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx

from core.clock import utcnow

USER_AGENT = "Fealty-Webhooks/1"
MAX_RESPONSE_BYTES = 2048


@dataclass(frozen=True)
class OutboundRequest:
    url: str
    body: bytes
    #: Called just before the request goes out, so a signature's timestamp is the sending time.
    headers: Callable[[], dict[str, str]]


@dataclass(frozen=True)
class OutboundResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    #: The start of the answer (at most ``MAX_RESPONSE_BYTES``), for the delivery log.
    response_body: str | None
    error: str | None
    #: Seconds the receiver asked us to wait (``Retry-After``), if it said.
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now`` (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _text(raw: bytes) -> str:
    # PostgreSQL text cannot hold NUL; the log is for humans, so undecodable bytes become U+FFFD.
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _failure(status: int | None, error: str) -> str | None:
    """A receiver that answered 2xx has the event, even if reading the rest of its answer then failed."""
    if status is None:
        return error
    return None if 200 <= status < 300 else f"HTTP {status}, then {error}"


class WebhookSender:
    """``async with WebhookSender(...) as sender: await sender.post(request)`` -- one connection pool per batch."""

    def __init__(self, *, timeout: float, concurrency: int, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._slots = asyncio.Semaphore(max(1, concurrency))
        limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=max(1, concurrency))
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, limits=limits
        )

    async def __aenter__(self) -> WebhookSender:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.__aexit__(kind, error, tb)

    async def post(self, request: OutboundRequest) -> OutboundResult:
        """POST once (waiting for a free slot first); never raises for anything the network or receiver does."""
        async with self._slots:
            return await self._post(request)

    async def _post(self, request: OutboundRequest) -> OutboundResult:
        started_at = utcnow()
        clock = time.perf_counter()
        status: int | None = None
        received = b""
        error: str | None = None
        retry_after: float | None = None
        try:
            async with asyncio.timeout(self.timeout):
                headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT} | request.headers()
                async with self._http.stream("POST", request.url, content=request.body, headers=headers) as response:
                    status = response.status_code
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                        if 300 <= status < 400:
                            location = response.headers.get("location", "")[:300]
                            error = f"HTTP {status}: redirects are not followed (Location: {location})"
                        retry_after = retry_after_seconds(response.headers.get("retry-after"), utcnow())
                    async for chunk in response.aiter_bytes():
                        received += chunk
                        if len(received) >= self.max_response_bytes:
                            break
        except TimeoutError:
            error = _failure(status, f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            error = _failure(status, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:  # anything the transport let through
            error = _failure(status, f"{type(exc).__name__}: {exc}")
        duration_ms = round((time.perf_counter() - clock) * 1000)
        body = _text(received[: self.max_response_bytes]) if status is not None else None
        return OutboundResult(started_at, duration_ms, status, body, error[:1000] if error else None, retry_after)
