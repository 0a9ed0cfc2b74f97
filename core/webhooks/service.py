"""Webhook use cases: endpoints, turning outbox events into deliveries, claiming and recording attempts, replay.

Transactions belong to the callers (a request's unit of work, or one of the worker's short transactions): nothing
here commits, and nothing here talks to the network.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Table, and_, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.webhook_http import OutboundResult
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.lookup import one_or_404
from core.errors import Conflict, SecretNotStandard, ValidationFailed
from core.ids import new_id
from core.jobs.queue import backoff, enqueue_or_wake
from core.outbox.models import OutboxEvent
from core.program.models import Program
from core.webhooks import signing
from core.webhooks.event_types import ALL, EVENT_TYPES, TEST_EVENT, matches
from core.webhooks.models import FINAL_STATUSES, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

DELIVER_JOB = "webhooks.deliver"
#: Active endpoints a tenant may have: every event fans out to each of them.
MAX_ACTIVE_ENDPOINTS = 20
#: Longest a rotated secret may keep signing alongside the new one.
MAX_PREVIOUS_SECRET_HOURS = 72

endpoints = table_of(WebhookEndpoint)
deliveries = table_of(WebhookDelivery)
attempts_table = table_of(WebhookDeliveryAttempt)
outbox = table_of(OutboxEvent)
programs = table_of(Program)


def deliver_key(tenant_id: uuid.UUID) -> str:
    return f"{DELIVER_JOB}:{tenant_id}"


def _insert(session: AsyncSession, table: Table) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# --- endpoints ------------------------------------------------------------------------------------------------------


def check_event_types(
    given: Sequence[str], field: str = "event_types", known: Collection[str] | None = None
) -> list[str]:
    """Known types (``known``: the tenant's, core's and its enabled plugins'; default core's) or ``"*"``, at least
    one; duplicates dropped, order kept."""
    if not given:
        raise ValidationFailed('event_types: name at least one event type, or "*" for all.', field=field)
    types = EVENT_TYPES if known is None else known
    for i, kind in enumerate(given):
        if kind != ALL and kind not in types:
            raise ValidationFailed(
                f"'{kind}' is not an event type (GET /v1/webhook-event-types lists them; \"*\" means all).",
                field=f"{field}[{i}]",
            )
    return list(dict.fromkeys(given))


async def bump_config_version(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Endpoints are part of the tenant's configuration: per-tenant caches are keyed by this version."""
    await session.execute(
        update(programs).where(programs.c.tenant_id == tenant_id).values(config_version=programs.c.config_version + 1)
    )


async def _check_room(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    active = (
        await session.execute(
            select(endpoints.c.id).where(endpoints.c.tenant_id == tenant_id, endpoints.c.status == "active")
        )
    ).all()
    if len(active) >= MAX_ACTIVE_ENDPOINTS:
        raise Conflict(
            f"A tenant may have {MAX_ACTIVE_ENDPOINTS} active webhook endpoints; disable one first.", field="status"
        )


async def create_endpoint(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    url: str,
    description: str | None,
    event_types: list[str],
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    """A new active endpoint and its secret (returned here and never again)."""
    # First: the version bump locks the tenant's program row, so concurrent endpoint changes queue and the limit holds.
    await bump_config_version(session, tenant_id)
    await _check_room(session, tenant_id)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        id=new_id(),
        url=url,
        description=description,
        event_types=event_types,
        status="active",
        secret=secret,
        secret_hint=signing.secret_hint(secret),
        signature_scheme=signing.STANDARD,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    endpoint = await one_or_404(session, query, "No such webhook endpoint.", field="endpoint_id")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    changes: dict[str, Any],
    now: datetime,
) -> WebhookEndpoint:
    """Apply ``changes`` (url, description, event_types, status, signature_scheme), already validated."""
    await bump_config_version(session, endpoint.tenant_id)  # first, as in create_endpoint
    status = changes.pop("status", None)
    scheme = changes.get("signature_scheme")
    if scheme == signing.STANDARD and not signing.is_standard_secret(endpoint.secret):
        raise SecretNotStandard(
            "This endpoint's secret predates Standard Webhooks and cannot sign that way: rotate the secret "
            "(POST .../rotate-secret), which switches the endpoint to Standard Webhooks with a new secret.",
            field="signature_scheme",
        )
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if status == "disabled" and endpoint.status == "active":
        await disable_endpoint(session, endpoint, now)
    elif status == "active" and endpoint.status == "disabled":
        await _check_room(session, endpoint.tenant_id)
        endpoint.status = "active"
        endpoint.disabled_at = None
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def disable_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> int:
    """Stop deliveries to ``endpoint``: it gets nothing new and what was waiting is cancelled (replayable).

    Returns how many waiting deliveries were cancelled. A POST already in flight finishes and is recorded.
    """
    if endpoint.status != "disabled":
        endpoint.status = "disabled"
        endpoint.disabled_at = now
        endpoint.updated_at = now
        await session.flush()
        await bump_config_version(session, endpoint.tenant_id)
    result = await session.execute(
        update(deliveries)
        .where(
            deliveries.c.tenant_id == endpoint.tenant_id,
            deliveries.c.endpoint_id == endpoint.id,
            deliveries.c.status == "pending",
        )
        .values(status="cancelled", next_attempt_at=None, finished_at=now, last_error="endpoint disabled")
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def rotate_secret(
    session: AsyncSession, endpoint: WebhookEndpoint, *, keep_previous_hours: int, now: datetime
) -> str:
    """A new secret, in the Standard Webhooks scheme (whatever the endpoint used before); the old one keeps signing,
    in its own scheme, for ``keep_previous_hours`` (0: stops now)."""
    if not 0 <= keep_previous_hours <= MAX_PREVIOUS_SECRET_HOURS:
        raise ValidationFailed(
            f"keep_previous_hours must be between 0 and {MAX_PREVIOUS_SECRET_HOURS}.", field="keep_previous_hours"
        )
    secret = signing.new_secret()
    if keep_previous_hours:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + timedelta(hours=keep_previous_hours)
        endpoint.previous_signature_scheme = endpoint.signature_scheme
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
        endpoint.previous_signature_scheme = None
    endpoint.signature_scheme = signing.STANDARD
    endpoint.secret = secret
    endpoint.secret_hint = signing.secret_hint(secret)
    endpoint.updated_at = now
    await session.flush()
    await bump_config_version(session, endpoint.tenant_id)
    return secret


# --- from events to deliveries --------------------------------------------------------------------------------------


class EventPayload(msgspec.Struct):
    """The JSON body of every webhook request (``data`` is the event's own document)."""

    id: uuid.UUID
    type: str
    created_at: datetime
    tenant_id: uuid.UUID
    data: dict[str, Any]


def build_body(
    event_id: uuid.UUID, event_type: str, created_at: datetime, tenant_id: uuid.UUID, data: dict[str, Any]
) -> str:
    return msgspec.json.encode(EventPayload(event_id, event_type, created_at, tenant_id, data)).decode()


def _delivery_row(
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    body: str,
    now: datetime,
    replay_of: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "replay_of": replay_of,
        "created_at": now,
    }


@dataclass(frozen=True)
class DispatchReport:
    events: int
    deliveries: int


async def dispatch_batch(session: AsyncSession, tenant_id: uuid.UUID, *, now: datetime, limit: int) -> DispatchReport:
    """Turn up to ``limit`` undispatched outbox events (oldest first) into deliveries and mark them dispatched.

    Rows are taken with ``FOR UPDATE SKIP LOCKED``, so dispatchers running at once for one tenant split the events
    between them; the unique (event, endpoint) index makes a duplicate delivery impossible even so. Events no active
    endpoint wants are simply marked dispatched.
    """
    events = (
        await session.execute(
            select(outbox.c.id, outbox.c.type, outbox.c.payload, outbox.c.created_at)
            .where(outbox.c.tenant_id == tenant_id, outbox.c.dispatched_at.is_(None))
            .order_by(outbox.c.created_at, outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not events:
        return DispatchReport(0, 0)
    active = (
        await session.execute(
            select(endpoints.c.id, endpoints.c.event_types)
            .where(endpoints.c.tenant_id == tenant_id, endpoints.c.status == "active")
            .order_by(endpoints.c.id)
        )
    ).all()
    rows: list[dict[str, Any]] = []
    for event in events:
        wanted = [e.id for e in active if matches(e.event_types, event.type)]
        if not wanted:
            continue
        body = build_body(event.id, event.type, event.created_at, tenant_id, dict(event.payload or {}))
        rows += [_delivery_row(tenant_id, endpoint_id, event.id, event.type, body, now) for endpoint_id in wanted]
    if rows:
        statement = _insert(session, deliveries).on_conflict_do_nothing(
            index_elements=["tenant_id", "event_id", "endpoint_id"], index_where=text("replay_of IS NULL")
        )
        await session.execute(statement, rows)
        await enqueue_or_wake(session, DELIVER_JOB, tenant_id=tenant_id, dedupe_key=deliver_key(tenant_id))
    await session.execute(
        update(outbox)
        .where(outbox.c.tenant_id == tenant_id, outbox.c.id.in_([e.id for e in events]))
        .values(dispatched_at=now)
    )
    return DispatchReport(len(events), len(rows))


async def create_test_delivery(session: AsyncSession, endpoint: WebhookEndpoint, *, now: datetime) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint only: recorded in the outbox as already dispatched, so no other
    endpoint (not even a ``"*"`` one) receives it."""
    if endpoint.status != "active":
        raise Conflict("The endpoint is disabled; enable it (PATCH status) to send it events.", field="endpoint_id")
    event_id = new_id()
    data = {"endpoint_id": str(endpoint.id), "message": "A test event from Fealty: your endpoint works."}
    await session.execute(
        insert(outbox).values(
            tenant_id=endpoint.tenant_id,
            id=event_id,
            type=TEST_EVENT,
            member_id=None,
            payload=data,
            created_at=now,
            dispatched_at=now,
        )
    )
    body = build_body(event_id, TEST_EVENT, now, endpoint.tenant_id, data)
    row = _delivery_row(endpoint.tenant_id, endpoint.id, event_id, TEST_EVENT, body, now)
    await session.execute(insert(deliveries).values(row))
    return await get_delivery(session, row["id"])


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await one_or_404(
        session,
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id),
        "No such webhook delivery.",
        field="delivery_id",
    )
    return delivery


async def attempts_of(session: AsyncSession, delivery_id: uuid.UUID) -> list[WebhookDeliveryAttempt]:
    query = (
        select(WebhookDeliveryAttempt)
        .where(WebhookDeliveryAttempt.delivery_id == delivery_id)
        .order_by(WebhookDeliveryAttempt.attempt)
    )
    return list((await session.execute(query)).scalars().all())


async def replay(session: AsyncSession, original: WebhookDelivery, *, now: datetime) -> WebhookDelivery:
    """Queue a finished delivery again as a new delivery (same event, body and endpoint) linked to the original."""
    if original.status not in FINAL_STATUSES:
        raise Conflict(
            f"This delivery is still {original.status}: only a succeeded, dead or cancelled one can be replayed.",
            field="delivery_id",
        )
    endpoint = await get_endpoint(session, original.endpoint_id)
    if endpoint.status != "active":
        raise Conflict("The delivery's endpoint is disabled; enable it first.", field="delivery_id")
    row = _delivery_row(
        original.tenant_id,
        original.endpoint_id,
        original.event_id,
        original.event_type,
        original.body,
        now,
        original.id,
    )
    await session.execute(insert(deliveries).values(row))
    return await get_delivery(session, row["id"])


async def wake_delivery(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> None:
    """Make sure the tenant's delivery job is due (after the commit that queued deliveries)."""
    async with tenant_session(sessionmaker, None) as session:
        await enqueue_or_wake(session, DELIVER_JOB, tenant_id=tenant_id, dedupe_key=deliver_key(tenant_id))


# --- claiming and recording attempts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: bytes
    #: This attempt's number (1 for the first POST).
    attempt: int
    url: str
    #: The endpoint's scheme and its current secret.
    scheme: signing.Scheme
    secret: str
    #: A rotated secret still in its grace period, and the scheme it signs in.
    previous: tuple[signing.Scheme, str] | None = None

    def headers(self, timestamp: int) -> dict[str, str]:
        signed = signing.signed_headers(
            self.scheme, str(self.id), (self.scheme, self.secret), self.previous, self.body, timestamp
        )
        return signed | {
            "Fealty-Delivery-Id": str(self.id),
            "Fealty-Event-Id": str(self.event_id),
            "Fealty-Event-Type": self.event_type,
            "Fealty-Attempt": str(self.attempt),
        }


@dataclass(frozen=True)
class ClaimReport:
    claimed: list[ClaimedDelivery]
    #: Deliveries found due but finished instead: their endpoint was disabled, or a lost attempt was their last.
    finished: int


async def claim_due(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    max_attempts: int,
) -> ClaimReport:
    """Take up to ``limit`` due deliveries of the tenant and mark them ``sending`` until ``now + lease``.

    Due: ``pending`` whose time has come, or ``sending`` whose lease ran out (its worker died mid-POST: the receiver
    may or may not have the event, hence at-least-once delivery). Rows are locked with ``SKIP LOCKED``, so workers
    running at once never take the same delivery. The caller commits, then POSTs, with no transaction open.
    """
    d, e = deliveries, endpoints
    candidates = (
        await session.execute(
            select(
                d.c.id,
                d.c.endpoint_id,
                d.c.event_id,
                d.c.event_type,
                d.c.body,
                d.c.status,
                d.c.attempts,
                e.c.status.label("endpoint_status"),
                e.c.url,
                e.c.secret,
                e.c.signature_scheme,
                e.c.previous_secret,
                e.c.previous_secret_expires_at,
                e.c.previous_signature_scheme,
            )
            .select_from(d.join(e, and_(e.c.tenant_id == d.c.tenant_id, e.c.id == d.c.endpoint_id)))
            .where(d.c.tenant_id == tenant_id, d.c.status.in_(("pending", "sending")), d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(of=d, skip_locked=True)
        )
    ).all()
    cancel = [c.id for c in candidates if c.endpoint_status != "active"]
    bury = [c for c in candidates if c.endpoint_status == "active" and c.attempts >= max_attempts]
    take = [c for c in candidates if c.endpoint_status == "active" and c.attempts < max_attempts]
    final = {"next_attempt_at": None, "finished_at": now}
    if cancel:
        await session.execute(
            update(d)
            .where(d.c.tenant_id == tenant_id, d.c.id.in_(cancel))
            .values(status="cancelled", last_error="endpoint disabled", **final)
        )
    for was, why in (
        ("sending", "the last attempt's worker stopped before recording an answer; no attempts left"),
        ("pending", "no attempts left (the maximum was lowered)"),
    ):
        ids = [c.id for c in bury if c.status == was]
        if ids:
            await session.execute(
                update(d)
                .where(d.c.tenant_id == tenant_id, d.c.id.in_(ids))
                .values(status="dead", last_error=why, **final)
            )
    if not take:
        return ClaimReport([], len(cancel) + len(bury))
    await session.execute(
        update(d)
        .where(d.c.tenant_id == tenant_id, d.c.id.in_([c.id for c in take]))
        .values(status="sending", attempts=d.c.attempts + 1, next_attempt_at=now + lease, last_attempt_at=now)
    )
    claimed = []
    for c in take:
        previous = None
        if c.previous_secret and c.previous_secret_expires_at and c.previous_secret_expires_at > now:
            previous = (c.previous_signature_scheme or signing.LEGACY, c.previous_secret)
        claimed.append(
            ClaimedDelivery(
                c.id,
                c.endpoint_id,
                c.event_id,
                c.event_type,
                c.body.encode(),
                c.attempts + 1,
                c.url,
                c.signature_scheme,
                c.secret,
                previous,
            )
        )
    return ClaimReport(claimed, len(cancel) + len(bury))


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter after failed attempt ``attempt``; a receiver's ``Retry-After`` (up to the
    cap) is honoured when it asks for longer."""
    delay = backoff(attempt, base=base, cap=cap)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, cap)))
    return delay


async def record_result(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    claimed: ClaimedDelivery,
    result: OutboundResult,
    *,
    now: datetime,
    max_attempts: int,
    backoff_base: float,
    backoff_cap: float,
) -> str:
    """Log the attempt and move the delivery on: ``succeeded``, ``pending`` again later, or ``dead``.

    Returns the new status. If the lease was lost meanwhile (another worker took the delivery over), the attempt is
    still logged but the delivery is left to its new owner (``"superseded"``).
    """
    await session.execute(
        insert(attempts_table).values(
            tenant_id=tenant_id,
            id=new_id(),
            delivery_id=claimed.id,
            attempt=claimed.attempt,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            succeeded=result.succeeded,
            status_code=result.status_code,
            response_body=result.response_body,
            error=result.error,
        )
    )
    values: dict[str, Any] = {"last_status_code": result.status_code, "last_error": result.error}
    if result.succeeded:
        values |= {"status": "succeeded", "next_attempt_at": None, "finished_at": now}
    elif claimed.attempt >= max_attempts:
        values |= {"status": "dead", "next_attempt_at": None, "finished_at": now}
    else:
        delay = retry_delay(claimed.attempt, base=backoff_base, cap=backoff_cap, retry_after=result.retry_after)
        values |= {"status": "pending", "next_attempt_at": now + delay}
    changed = await session.execute(
        update(deliveries)
        .where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.id == claimed.id,
            deliveries.c.status == "sending",
            deliveries.c.attempts == claimed.attempt,
        )
        .values(values)
    )
    return str(values["status"]) if getattr(changed, "rowcount", 0) else "superseded"


async def has_undispatched(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    query = select(outbox.c.id).where(outbox.c.tenant_id == tenant_id, outbox.c.dispatched_at.is_(None)).limit(1)
    return (await session.execute(query)).first() is not None


async def has_due(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> bool:
    row = (
        await session.execute(
            select(deliveries.c.id)
            .where(
                deliveries.c.tenant_id == tenant_id,
                deliveries.c.status.in_(("pending", "sending")),
                deliveries.c.next_attempt_at <= now,
            )
            .limit(1)
        )
    ).first()
    return row is not None
