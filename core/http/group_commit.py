"""Group commit: requests of one API key that arrive together share one transaction and one set-based statement.

A route opts in with ``opt={"group_commit": <GroupedRoute>}`` (single events and balance reads do). When such a
request carries a tenant key and no ``Idempotency-Key`` and its payload decodes, the middleware hands it here instead
of opening a transaction of its own. Per key, one task drains the queue: it takes every request waiting (up to
:data:`MAX_GROUP`), opens one transaction, authenticates the key once, admits each request (scope, billing, rate
limit), lets the route process them all at once, commits, and only then answers each request with its own status and
body. Nothing waits for a group to fill: a lone request runs at once, and requests that arrive while a group is being
written form the next one, so under load the cost of a transaction, the authentication and each statement is shared.

Each request keeps its own answer: a request refused (scope, validation, unknown member) gets its own problem and
writes nothing, as the items of a batch do. If the group's transaction fails as a whole (a race with another writer,
a database error, a bug), nothing of it was written and every request of the group falls back to the ordinary path,
one transaction each, so a failure is answered exactly as it would have been without grouping.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from prometheus_client import Histogram

from core.care.messages import queued_tenants
from core.clock import utcnow
from core.db.engine import set_write_intent
from core.db.tenancy import set_current_tenant
from core.errors import FealtyError
from core.http.auth import Principal, authenticate_tenant_key
from core.http.problems import problem_messages
from core.outbox.service import pending_wakes
from core.runtime import Runtime
from core.tenancy.keys import ParsedTenantKey

log = structlog.get_logger("fealty.http")

#: The most requests one transaction takes (the rest form the next group at once).
MAX_GROUP = 200

GROUP_SIZE = Histogram(
    "fealty_group_commit_size",
    "Requests written together in one transaction by group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

Message = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """A successful answer to one request of a group."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class GroupedRoute(Protocol):
    #: Whether the route writes (billing may refuse writes; SQLite takes its write lock up front).
    writes: bool

    def decode(self, scope: Any, body: bytes) -> Any | None:
        """The request's payload (from its body or path), or ``None`` to leave the request to the ordinary path (its
        error, if any, comes from there)."""

    async def process(
        self, session: Any, principal: Principal, runtime: Runtime, payloads: Sequence[Any]
    ) -> list[Answer | FealtyError]:
        """Process every payload in ``session``'s transaction; one answer or error per payload, in order."""


Admit = Callable[[Principal, dict[str, Any], bool, datetime, list[tuple[bytes, bytes]]], Awaitable[None]]


@dataclass
class _Request:
    payload: Any
    path: str
    #: Headers for this request's response whatever its status (the billing warning), filled in by admission.
    extra_headers: list[tuple[bytes, bytes]]
    answer: asyncio.Future[list[Message] | None]


class GroupCommit:
    """The queues and drain tasks of one process (one per middleware)."""

    def __init__(self, runtime: Runtime, admit: Admit) -> None:
        self.runtime = runtime
        self.admit = admit
        self.enabled = runtime.settings.group_commit
        self._queues: dict[tuple[GroupedRoute, str], deque[_Request]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        key: ParsedTenantKey,
        route: GroupedRoute,
        opt: dict[str, Any],
        payload: Any,
        path: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> list[Message] | None:
        """The response to send, or ``None``: answer this request on the ordinary path."""
        if not self.enabled:
            return None
        answer: asyncio.Future[list[Message] | None] = asyncio.get_running_loop().create_future()
        # Grouped per route and by the full key as presented: a request never rides on another's authentication.
        name = (route, key.raw)
        queue = self._queues.get(name)
        if queue is None:
            # One group at a time per key and route (measured: overlapping groups were slower and their p99 worse).
            queue = self._queues[name] = deque()
            task = asyncio.create_task(self._drain(key, route, opt, name, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append(_Request(payload, path, extra_headers, answer))
        return await answer

    async def _drain(
        self,
        key: ParsedTenantKey,
        route: GroupedRoute,
        opt: dict[str, Any],
        name: tuple[GroupedRoute, str],
        queue: deque[_Request],
    ) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(tenant_id=str(key.tenant_id), group_commit=True)
        set_current_tenant(key.tenant_id)
        set_write_intent(route.writes)
        try:
            while queue:
                group = [queue.popleft() for _ in range(min(len(queue), MAX_GROUP))]
                GROUP_SIZE.observe(len(group))
                after_commit: list[Callable[[], Awaitable[None]]] = []
                try:
                    answers = await self._write(key, route, opt, group, after_commit)
                except Exception:
                    # Nothing of the group was committed: each request goes its own way, one transaction each.
                    log.warning("group_commit_fell_back", size=len(group), exc_info=True)
                    answers, after_commit = [None] * len(group), []
                for request, messages in zip(group, answers, strict=True):
                    if not request.answer.done():  # the client may have gone
                        request.answer.set_result(messages)
                for callback in after_commit:
                    try:
                        await callback()
                    except Exception:
                        log.exception("after_commit_failed")
        finally:
            self._queues.pop(name, None)
            for request in queue:  # only if this task was cancelled (shutdown): the ordinary path answers them
                if not request.answer.done():
                    request.answer.set_result(None)

    async def _write(
        self,
        key: ParsedTenantKey,
        route: GroupedRoute,
        opt: dict[str, Any],
        group: list[_Request],
        after_commit: list[Callable[[], Awaitable[None]]],
    ) -> list[list[Message] | None]:
        runtime = self.runtime
        answers: list[list[Message] | None] = [None] * len(group)
        async with runtime.sessionmaker() as session, session.begin():
            now = utcnow()
            try:
                principal = await authenticate_tenant_key(session, key, now)
            except FealtyError as error:
                return [problem_messages(error, instance=r.path) for r in group]
            admitted: list[int] = []
            for index, request in enumerate(group):
                try:
                    await self.admit(principal, opt, route.writes, now, request.extra_headers)
                    admitted.append(index)
                except FealtyError as error:
                    answers[index] = problem_messages(error, instance=request.path)
            if admitted:
                results = await route.process(session, principal, runtime, [group[i].payload for i in admitted])
                for index, result in zip(admitted, results, strict=True):
                    path = group[index].path
                    answers[index] = (
                        problem_messages(result, instance=path)
                        if isinstance(result, FealtyError)
                        else _messages(result)
                    )
            wakes = pending_wakes(session)
            care_wakes = queued_tenants(session)
        if principal.touch_last_used:
            from core.tenancy.service import touch_api_key

            after_commit.append(lambda: touch_api_key(runtime.sessionmaker, key.tenant_id, key.key_id))
        if wakes:
            after_commit.append(lambda: runtime.wake_dispatchers(wakes))
        if care_wakes:
            after_commit.append(lambda: runtime.wake_care_delivery(care_wakes))
        return answers

    def waiting(self) -> int:
        """Requests queued behind a group being written (for tests and diagnostics)."""
        return sum(len(queue) for queue in self._queues.values())

    async def close(self) -> None:
        """Let every group under way finish (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _messages(answer: Answer) -> list[Message]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer.body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in answer.headers.items()]
    return [
        {"type": "http.response.start", "status": answer.status, "headers": headers},
        {"type": "http.response.body", "body": answer.body, "more_body": False},
    ]
