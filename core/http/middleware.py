"""One middleware owns every ``/v1`` request's life: body limit, authentication, scopes, rate limit, input checks
(:mod:`core.http.inputs`), the database transaction, idempotency and the access log.

The handler runs inside a single transaction that this middleware opens (with the tenant set for row-level security)
and commits only when the response is a success, *before* the response is sent: a client that sees a 2xx knows the
change is durable, and any 4xx/5xx leaves nothing half-written. Route handlers declare what they need in ``opt``:

* ``auth``: ``"tenant"`` (default), ``"platform"`` or ``"none"`` (e.g. Stripe's signed webhook);
* ``scope``: the API key scope required (``admin`` grants all; ``x:write`` grants ``x:read``);
* ``idempotency_redact``: response fields never stored for replay (secrets shown once);
* ``streams``: a read whose response is sent as it is produced (exports), not buffered until the commit;
* ``allowed_when_suspended``: writes a billing-suspended (or canceled) tenant may still make: ``True`` (billing,
  revoking a key, erasing a member, read-only POSTs...), or a callable given the ASGI scope that decides per request
  (``query_flag("preview")``: only the preview). Plugins set it in their routes' ``opt`` the same way;
* ``group_commit``: a :class:`~core.http.group_commit.GroupedRoute` whose requests of one key that arrive together
  share one transaction (single events, balance reads; see :mod:`core.http.group_commit`). A request with an
  ``Idempotency-Key`` always takes the ordinary path.

A tenant not in good standing with billing hears about it on every response: ``Fealty-Billing-Warning`` says it is
past due and when it will be suspended (or that it is suspended, or its subscription has ended), and once suspended
its writes are refused with a 402 problem that says how to resume.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from core.billing import gate as billing_gate
from core.care.messages import queued_tenants
from core.clock import utcnow
from core.db.engine import set_write_intent
from core.db.tenancy import set_current_tenant
from core.errors import (
    AuthenticationRequired,
    FealtyError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    TenantDisabled,
)
from core.http.auth import ANONYMOUS, PLATFORM, Principal, authenticate_tenant_key, bearer_token
from core.http.group_commit import GroupCommit, GroupedRoute
from core.http.inputs import InputGate
from core.http.metrics import LATENCY, REQUESTS
from core.http.problems import problem_messages
from core.idempotency import service as idempotency
from core.ids import new_id
from core.outbox.service import pending_wakes
from core.runtime import Runtime
from core.tenancy.keys import keys_match, parse_tenant_key, scope_allows

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATE_SESSION = "fealty.session"
STATE_PRINCIPAL = "fealty.principal"
STATE_AFTER_COMMIT = "fealty.after_commit"
BILLING_WARNING_HEADER = b"fealty-billing-warning"

log = structlog.get_logger("fealty.http")

#: ASGI messages as plain dicts: this middleware builds and buffers them itself.
Message = dict[str, Any]


class _Finish(Exception):
    """Leave the transaction (rolling it back) and send ``messages`` instead."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in cast(Any, scope).get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = cast(Message, await receive())
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def query_flag(name: str) -> Callable[[Scope], bool]:
    """For ``allowed_when_suspended``: the request asks ``?<name>=true`` (or ``1``), e.g. a preview that writes
    nothing."""

    def given(scope: Scope) -> bool:
        query = parse_qs(cast(Any, scope).get("query_string", b"").decode("latin-1"))
        return any(v.lower() in ("true", "1") for v in query.get(name, ()))

    return given


def _replaying(body: bytes, then: Receive | None = None) -> Receive:
    """The body already read, once; then what ``then`` receives (a streamed response listens there for the client
    going away), or at once a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return cast(Message, await then()) if then is not None else {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return cast(Receive, receive)


def _stored_to_messages(stored: idempotency.StoredResponse) -> list[Message]:
    headers = [(k.encode(), v.encode()) for k, v in stored.headers.items()]
    headers.append((b"idempotent-replayed", b"true"))
    return [
        {"type": "http.response.start", "status": stored.status, "headers": headers},
        {"type": "http.response.body", "body": stored.body, "more_body": False},
    ]


def _with_request_id(message: Message, request_id: str) -> Message:
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id.encode()))
        message = {**message, "headers": headers}
    return message


class ApiMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.group_commit = GroupCommit(runtime, self._admit)
        self.inputs = InputGate()
        #: Each /v1 path template's methods, for OPTIONS (worked out on the first one).
        self._allow: dict[str, str] | None = None
        runtime.closers.append(self.group_commit.close)
        self.should_bypass_for_scope = lambda scope: not scope["path"].startswith("/v1/")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        http_scope = cast(Any, scope)
        started = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or new_id().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = {"status": 500}
        #: Headers every response to this request carries, whatever its status (the billing warning).
        extra_headers: list[tuple[bytes, bytes]] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if extra_headers:
                    message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            await send(cast(Any, _with_request_id(message, request_id)))

        try:
            if http_scope["method"] == "OPTIONS":
                await self._options(scope, cast(Send, send_with_id))
            else:
                await self._handle(scope, receive, cast(Send, send_with_id), next_app, request_id, extra_headers)
        except FealtyError as error:
            for message in problem_messages(error, instance=scope["path"]):
                await send_with_id(message)
        finally:
            elapsed = time.perf_counter() - started
            # The route's whole template (/v1/members/{member_id:uuid}/balance): a handler's own path is relative
            # to its controller, so "/" alone would lump every list endpoint together.
            route_name = scope.get("path_template") or scope["path"]
            REQUESTS.labels(http_scope["method"], route_name, status_holder["status"]).inc()
            LATENCY.labels(http_scope["method"], route_name).observe(elapsed)
            log.info(
                "request",
                method=http_scope["method"],
                path=scope["path"],
                status=status_holder["status"],
                duration_ms=round(elapsed * 1000, 2),
            )

    async def _options(self, scope: Scope, send: Send) -> None:
        """``OPTIONS``: the resource's methods in ``Allow`` (RFC 9110), without credentials (a CORS preflight has
        none). Answered here because the framework's own answer lists only the methods of the first controller
        that declared the path."""
        if self._allow is None:
            app = cast(Any, scope)["litestar_app"]
            self._allow = {
                route.path_format: ", ".join(sorted(route.methods))
                for route in app.routes
                if route.path.startswith("/v1/")
            }
        allow = self._allow.get(cast(Any, scope).get("path_template") or "", "OPTIONS")
        await send(cast(Any, {"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]}))
        await send(cast(Any, {"type": "http.response.body", "body": b"", "more_body": False}))

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        next_app: ASGIApp,
        request_id: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        runtime = self.runtime
        settings = runtime.settings
        opt = scope["route_handler"].opt
        if callable(opt.get("allowed_when_suspended")):  # decided by this request (a preview, a dry run)
            opt = {**opt, "allowed_when_suspended": bool(opt["allowed_when_suspended"](scope))}
        method: str = cast(Any, scope)["method"]
        writes = method not in SAFE_METHODS
        body = await _read_body(scope, receive, settings.max_body_bytes)
        principal, parsed_key = self._identify(scope, opt.get("auth", "tenant"))
        content_type = _header(scope, b"content-type")
        set_current_tenant(parsed_key.tenant_id if parsed_key else None)
        set_write_intent(writes)
        idempotency_key = _header(scope, b"idempotency-key") if writes else None
        if idempotency_key is not None:
            idempotency.validate_key(idempotency_key)
        grouped: GroupedRoute | None = opt.get("group_commit")
        if grouped is not None and parsed_key is not None and idempotency_key is None:
            # Input the gate would refuse takes the ordinary path, which answers it after authentication.
            payload = grouped.decode(scope, body) if self.inputs.accepts(scope, body, content_type) else None
            if payload is not None:
                structlog.contextvars.bind_contextvars(tenant_id=str(parsed_key.tenant_id))
                answer = await self.group_commit.submit(parsed_key, grouped, opt, payload, scope["path"], extra_headers)
                if answer is not None:
                    for message in answer:
                        await send(cast(Any, message))
                    return
                extra_headers.clear()  # the ordinary path admits the request again
        after_commit: list[Callable[[], Awaitable[None]]] = []
        state = scope.setdefault("state", {})
        state[STATE_AFTER_COMMIT] = after_commit

        try:
            async with runtime.sessionmaker() as session:
                state[STATE_SESSION] = session
                async with session.begin():
                    now = utcnow()
                    if parsed_key is not None:
                        principal = await authenticate_tenant_key(session, parsed_key, now)
                        structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
                        await self._admit(principal, opt, writes, now, extra_headers)
                    state[STATE_PRINCIPAL] = principal
                    # Bad input is refused once the caller is known and admitted (401, 403 and a plugin's 404 come
                    # first), before anything is read for or written by the request; the body is decoded once.
                    self.inputs.check(scope, body, content_type)
                    tenant_scope = principal.tenant_id if principal.kind == "tenant" else None
                    if idempotency_key is not None and principal.kind != "anonymous":
                        fingerprint = idempotency.request_fingerprint(
                            method, scope["path"], scope.get("query_string", b""), body
                        )
                        stored = await idempotency.claim(
                            session,
                            tenant_id=tenant_scope,
                            key=idempotency_key,
                            fingerprint=fingerprint,
                            now=now,
                            ttl=settings.idempotency_ttl,
                        )
                        if stored is not None:
                            raise _Finish(_stored_to_messages(stored))

                    messages: list[Message] = []

                    async def capture(message: Message) -> None:
                        messages.append(message)

                    if opt.get("streams") and not writes:
                        # A streamed read (an export): sent while it is produced, inside this read-only transaction.
                        await next_app(scope, _replaying(body, receive), send)
                    else:
                        await next_app(scope, _replaying(body), cast(Send, capture))
                        status = messages[0]["status"] if messages else 500
                        if status >= 400:
                            raise _Finish(messages)
                    wakes = pending_wakes(session)
                    care_wakes = queued_tenants(session)
                    if idempotency_key is not None and principal.kind != "anonymous":
                        await idempotency.complete(
                            session,
                            tenant_id=tenant_scope,
                            key=idempotency_key,
                            response=_stored_from_messages(messages),
                            redact=tuple(opt.get("idempotency_redact", ())),
                        )
        except _Finish as finish:
            for message in finish.messages:
                await send(cast(Any, message))
            return
        for message in messages:
            await send(cast(Any, message))
        if principal.touch_last_used:
            after_commit.append(lambda: self._touch_key(principal))
        if wakes:
            after_commit.append(lambda: runtime.wake_dispatchers(wakes))
        if care_wakes:
            after_commit.append(lambda: runtime.wake_care_delivery(care_wakes))
        for callback in after_commit:
            try:
                await callback()
            except Exception:  # an after-commit side effect must never turn a committed success into an error
                log.exception("after_commit_failed")

    def _identify(self, scope: Scope, auth: str) -> tuple[Principal, Any]:
        token = bearer_token(_header(scope, b"authorization"))
        if auth == "none":
            return ANONYMOUS, None
        if token is None:
            raise AuthenticationRequired()
        if auth == "platform":
            expected = self.runtime.platform_key_hash
            # Any secret the operator chose (FEALTY_PLATFORM_KEY, at least 32 characters) or the generated ftp_ key.
            if expected is None or not keys_match(token, expected):
                raise AuthenticationRequired("The platform key is not valid.")
            return PLATFORM, None
        parsed = parse_tenant_key(token)
        if parsed is None:
            raise AuthenticationRequired("The API key is not valid.")
        return ANONYMOUS, parsed

    async def _admit(
        self,
        principal: Principal,
        opt: dict[str, Any],
        writes: bool,
        now: datetime,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        plugin = opt.get("plugin")
        if plugin is not None and (principal.program is None or plugin not in principal.program.enabled_plugins):
            # A plugin's routes do not exist for tenants that have not enabled it.
            raise NotFound("No such resource.")
        if principal.tenant_status == "suspended":
            raise TenantDisabled("This tenant has been disabled by the platform operator; contact them to resume.")
        required = opt.get("scope", "admin")
        if not scope_allows(principal.scopes, required):
            raise PermissionDenied(f"This API key lacks the '{required}' scope.", required_scope=required)
        settings = self.runtime.settings
        admission = billing_gate.admit(
            principal.billing_status,
            principal.past_due_since,
            now,
            timedelta(days=settings.billing_grace_days),
            writes=writes,
            allowed_when_suspended=bool(opt.get("allowed_when_suspended")),
        )
        if admission.warning:
            extra_headers.append((BILLING_WARNING_HEADER, admission.warning.encode()))
        if admission.refusal is not None:
            raise admission.refusal
        assert principal.tenant_id is not None
        rate = principal.plan_rate_limit if principal.plan_rate_limit is not None else settings.rate_limit_per_second
        wait = await self.runtime.rate_limits.take(principal.tenant_id, rate)
        if wait:
            raise RateLimited(f"Slow down: retry in {wait:.3f} s.", headers={"Retry-After": str(max(1, round(wait)))})

    async def _touch_key(self, principal: Principal) -> None:
        from core.tenancy.service import touch_api_key

        await touch_api_key(self.runtime.sessionmaker, principal.tenant_id, principal.key_id)  # type: ignore[arg-type]


def _stored_from_messages(messages: list[Message]) -> idempotency.StoredResponse:
    start = messages[0]
    headers = {
        k.decode(): v.decode() for k, v in start.get("headers", []) if k.lower() in (b"content-type", b"location")
    }
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return idempotency.StoredResponse(start["status"], headers, body)
