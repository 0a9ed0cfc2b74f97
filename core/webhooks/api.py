"""HTTP: webhook endpoints (CRUD, test, secret rotation), the delivery log, replay, and the event types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select

from core.clock import utcnow
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db, after_commit
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.runtime import Runtime
from core.validation import AwareDatetime
from core.webhooks import service
from core.webhooks.event_types import for_tenant
from core.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from core.webhooks.urls import check_endpoint_url

Url = Annotated[str, Meta(min_length=1, max_length=2048, examples=["https://example.com/fealty/webhooks"])]
Description = Annotated[str, Meta(max_length=500)]
EventTypes = Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50, examples=[["points.earned"]])]
DeliveryStatus = Literal["pending", "sending", "succeeded", "dead", "cancelled"]
AnyRequest = Request[Any, Any, Any]


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    #: Event types to receive (``GET /v1/webhook-event-types``), or ``["*"]`` for all.
    event_types: EventTypes
    description: Description | None = None


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    #: ``disabled`` stops deliveries (waiting ones are cancelled; replay them after enabling again).
    status: Literal["active", "disabled"] | UnsetType = UNSET
    #: ``standard`` (Standard Webhooks headers) or ``fealty-v1`` (the ``Fealty-Signature`` header of before). An
    #: endpoint whose secret predates Standard Webhooks switches by rotating its secret (409 otherwise).
    signature_scheme: Literal["standard", "fealty-v1"] | UnsetType = UNSET


class RotateSecretIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Keep signing with the old secret too (a second ``v1`` in the signature header) for this many hours, so your
    #: receiver can switch without missing a request. 0 (the default) retires the old secret at once.
    keep_previous_hours: Annotated[int, Meta(ge=0, le=service.MAX_PREVIOUS_SECRET_HOURS)] = 0


class EndpointOut(msgspec.Struct):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    status: str
    #: The secret's prefix and last characters, to tell secrets apart; the secret itself is shown only once.
    secret_hint: str
    #: How requests are signed: ``standard`` (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
    #: ``webhook-signature``) or ``fealty-v1`` (``Fealty-Signature``, endpoints created before, until rotated).
    signature_scheme: str
    #: Until then, the rotated-out secret still signs too.
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, e: WebhookEndpoint) -> EndpointOut:
        return cls(
            e.id,
            e.url,
            e.description,
            list(e.event_types),
            e.status,
            e.secret_hint,
            e.signature_scheme,
            e.previous_secret_expires_at,
            e.created_at,
            e.updated_at,
            e.disabled_at,
        )


class EndpointWithSecretOut(EndpointOut):
    #: The signing secret. Shown only in this response: store it now (rotate it if it is ever lost).
    secret: str

    @classmethod
    def issued(cls, endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecretOut:
        return cls(**msgspec.structs.asdict(EndpointOut.of(endpoint)), secret=secret)


class DeliveryOut(msgspec.Struct):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    #: pending (waiting for ``next_attempt_at``), sending, succeeded, dead (out of attempts) or cancelled (the
    #: endpoint was disabled). Dead and cancelled deliveries can be replayed.
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    #: The delivery this one replays.
    replay_of: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            d.id,
            d.endpoint_id,
            d.event_id,
            d.event_type,
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.last_attempt_at,
            d.last_status_code,
            d.last_error,
            d.replay_of,
            d.created_at,
            d.finished_at,
        )


class AttemptOut(msgspec.Struct):
    attempt: int
    started_at: datetime
    duration_ms: int
    succeeded: bool
    status_code: int | None
    #: The start of your endpoint's answer (at most 2 KB).
    response_body: str | None
    error: str | None

    @classmethod
    def of(cls, a: WebhookDeliveryAttempt) -> AttemptOut:
        return cls(a.attempt, a.started_at, a.duration_ms, a.succeeded, a.status_code, a.response_body, a.error)


class DeliveryDetailOut(msgspec.Struct):
    delivery: DeliveryOut
    #: The exact JSON body sent on every attempt.
    payload: dict[str, Any]
    attempts: list[AttemptOut]


class EventTypeOut(msgspec.Struct):
    type: str
    description: str
    #: The plugin that emits it (the tenant enabled it); null for core's own.
    plugin: str | None = None


def _wake_after_commit(request: AnyRequest, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async def wake() -> None:
        await service.wake_delivery(runtime.sessionmaker, tenant_id)

    after_commit(request, wake)


class WebhookEndpointsController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]

    @post(operation_id="createWebhookEndpoint", opt={"idempotency_redact": ("secret",)})
    async def create_endpoint(
        self,
        db: Db,
        principal: CurrentPrincipal,
        runtime: CurrentRuntime,
        program: CurrentProgram,
        data: JSONBody[EndpointCreate],
    ) -> EndpointWithSecretOut:
        """Register a URL for the event types given (core's, and those of the plugins the tenant enabled). The
        answer holds the signing secret, shown only this once."""
        assert principal.tenant_id is not None
        url = check_endpoint_url(data.url, allow_loopback=runtime.settings.webhook_allow_loopback)
        known = for_tenant(runtime.plugins, program.enabled_plugins)
        event_types = service.check_event_types(data.event_types, known=known)
        endpoint, secret = await service.create_endpoint(
            db, principal.tenant_id, url=url, description=data.description, event_types=event_types, now=utcnow()
        )
        return EndpointWithSecretOut.issued(endpoint, secret)

    @get(operation_id="listWebhookEndpoints")
    async def list_endpoints(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        status: FromQuery[Literal["active", "disabled"] | None] = None,
    ) -> Page[EndpointOut]:
        """The tenant's endpoints, oldest first (secrets as hints only)."""
        check_limit(limit)
        query = select(WebhookEndpoint).order_by(WebhookEndpoint.id).limit(limit + 1)
        if cursor:
            query = query.where(WebhookEndpoint.id > cursor_uuid(decode_cursor(cursor, 1)[0]))
        if status:
            query = query.where(WebhookEndpoint.status == status)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda e: encode_cursor(e.id))
        return Page([EndpointOut.of(e) for e in items], next_cursor)

    @get("/{endpoint_id:uuid}", operation_id="getWebhookEndpoint")
    async def get_endpoint(self, db: Db, endpoint_id: FromPath[uuid.UUID]) -> EndpointOut:
        return EndpointOut.of(await service.get_endpoint(db, endpoint_id))

    @patch("/{endpoint_id:uuid}", operation_id="updateWebhookEndpoint")
    async def update_endpoint(
        self,
        db: Db,
        runtime: CurrentRuntime,
        program: CurrentProgram,
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[EndpointUpdate],
    ) -> EndpointOut:
        """Change the URL, event types, description or status; absent fields stay as they are."""
        changes: dict[str, Any] = {}
        if data.url is not UNSET:
            changes["url"] = check_endpoint_url(data.url, allow_loopback=runtime.settings.webhook_allow_loopback)
        if data.event_types is not UNSET:
            known = for_tenant(runtime.plugins, program.enabled_plugins)
            changes["event_types"] = service.check_event_types(data.event_types, known=known)
        if data.description is not UNSET:
            changes["description"] = data.description
        if data.status is not UNSET:
            changes["status"] = data.status
        if data.signature_scheme is not UNSET:
            changes["signature_scheme"] = data.signature_scheme
        endpoint = await service.get_endpoint(db, endpoint_id, for_update=True)
        return EndpointOut.of(await service.update_endpoint(db, endpoint, changes, utcnow()))

    # Security actions (disabling an endpoint, rotating its secret) work while the tenant is suspended for billing.
    @delete(
        "/{endpoint_id:uuid}",
        operation_id="disableWebhookEndpoint",
        status_code=200,
        opt={"allowed_when_suspended": True},
    )
    async def disable_endpoint(self, db: Db, endpoint_id: FromPath[uuid.UUID]) -> EndpointOut:
        """Disable the endpoint: it receives nothing more and waiting deliveries are cancelled. It stays listed with
        its delivery log; ``PATCH {"status": "active"}`` enables it again. Repeating it is harmless."""
        endpoint = await service.get_endpoint(db, endpoint_id, for_update=True)
        await service.disable_endpoint(db, endpoint, utcnow())
        return EndpointOut.of(endpoint)

    @post("/{endpoint_id:uuid}/test", operation_id="testWebhookEndpoint", status_code=202)
    async def send_test(
        self,
        request: AnyRequest,
        db: Db,
        principal: CurrentPrincipal,
        runtime: CurrentRuntime,
        endpoint_id: FromPath[uuid.UUID],
    ) -> DeliveryOut:
        """Send a ``webhook.test`` event to this endpoint only; follow it with ``GET /v1/webhook-deliveries/{id}``."""
        assert principal.tenant_id is not None
        endpoint = await service.get_endpoint(db, endpoint_id)
        delivery = await service.create_test_delivery(db, endpoint, now=utcnow())
        _wake_after_commit(request, runtime, principal.tenant_id)
        return DeliveryOut.of(delivery)

    @post(
        "/{endpoint_id:uuid}/rotate-secret",
        operation_id="rotateWebhookEndpointSecret",
        status_code=200,
        opt={"idempotency_redact": ("secret",), "allowed_when_suspended": True},
    )
    async def rotate_secret(
        self, db: Db, endpoint_id: FromPath[uuid.UUID], data: JSONBody[RotateSecretIn | None] = None
    ) -> EndpointWithSecretOut:
        """A new signing secret, shown only in this answer; the endpoint signs with Standard Webhooks from now on.
        Send ``{"keep_previous_hours": n}`` to have requests signed with both secrets for a while (the old one in
        its old scheme); ``{}`` retires the old one at once (do that if it leaked)."""
        endpoint = await service.get_endpoint(db, endpoint_id, for_update=True)
        keep = data.keep_previous_hours if data else 0
        secret = await service.rotate_secret(db, endpoint, keep_previous_hours=keep, now=utcnow())
        return EndpointWithSecretOut.issued(endpoint, secret)


class WebhookDeliveriesController(Controller):
    path = "/v1/webhook-deliveries"
    tags = ["webhooks"]

    @get(operation_id="listWebhookDeliveries")
    async def list_deliveries(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        endpoint_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[DeliveryStatus | None] = None,
        event_type: FromQuery[str | None] = None,
        event_id: FromQuery[uuid.UUID | None] = None,
        created_after: FromQuery[AwareDatetime | None] = None,
        created_before: FromQuery[AwareDatetime | None] = None,
    ) -> Page[DeliveryOut]:
        """The delivery log, newest first."""
        check_limit(limit)
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit + 1)
        if cursor:
            query = query.where(WebhookDelivery.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        if endpoint_id:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        if event_type:
            query = query.where(WebhookDelivery.event_type == event_type)
        if event_id:
            query = query.where(WebhookDelivery.event_id == event_id)
        if created_after:
            query = query.where(WebhookDelivery.created_at >= created_after)
        if created_before:
            query = query.where(WebhookDelivery.created_at < created_before)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda d: encode_cursor(d.id))
        return Page([DeliveryOut.of(d) for d in items], next_cursor)

    @get("/{delivery_id:uuid}", operation_id="getWebhookDelivery")
    async def get_delivery(self, db: Db, delivery_id: FromPath[uuid.UUID]) -> DeliveryDetailOut:
        """One delivery with the body sent and every attempt (status, start of the answer, error, duration)."""
        delivery = await service.get_delivery(db, delivery_id)
        attempts = await service.attempts_of(db, delivery_id)
        payload: dict[str, Any] = msgspec.json.decode(delivery.body)
        return DeliveryDetailOut(DeliveryOut.of(delivery), payload, [AttemptOut.of(a) for a in attempts])

    @post("/{delivery_id:uuid}/replay", operation_id="replayWebhookDelivery", status_code=202)
    async def replay(
        self,
        request: AnyRequest,
        db: Db,
        principal: CurrentPrincipal,
        runtime: CurrentRuntime,
        delivery_id: FromPath[uuid.UUID],
    ) -> DeliveryOut:
        """Send a succeeded, dead or cancelled delivery again, as a new delivery linked to it (``replay_of``); the
        log keeps both. The event id and body are the same; the delivery id is new."""
        assert principal.tenant_id is not None
        original = await service.get_delivery(db, delivery_id)
        delivery = await service.replay(db, original, now=utcnow())
        _wake_after_commit(request, runtime, principal.tenant_id)
        return DeliveryOut.of(delivery)


class WebhookEventTypesController(Controller):
    path = "/v1/webhook-event-types"
    tags = ["webhooks"]

    @get(operation_id="listWebhookEventTypes")
    async def list_event_types(self, runtime: CurrentRuntime, program: CurrentProgram) -> list[EventTypeOut]:
        """Every event type an endpoint can subscribe to: core's, then those of the plugins the tenant enabled ("*"
        subscribes to all, including future ones)."""
        known = for_tenant(runtime.plugins, program.enabled_plugins)
        return [EventTypeOut(t.type, t.description, t.plugin) for t in known.values()]
