"""HTTP: activity events — one, a batch, a simulation; reading them; reversing, approving and rejecting them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.utils.scope.state import ScopeState
from msgspec import Meta
from sqlalchemy import select

from core.errors import Conflict, FealtyError, ValidationFailed, invalid
from core.events import pipeline
from core.events.models import Event
from core.events.service import approve_held, get_event, pipeline_context, reject_held
from core.http.auth import Principal
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.group_commit import Answer
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.program.settings import ProgramSettings
from core.runtime import Runtime
from core.validation import AwareDatetime

MAX_BATCH = 1000


class AwardOut(msgspec.Struct, omit_defaults=False):
    source: str
    reason: str
    points: int
    base: bool = False
    available_at: str | None = None
    rule_id: str | None = None
    kind: str | None = None
    capped_from: int | None = None
    campaign_id: str | None = None
    #: What a plugin says of its award (e.g. the hotel's eligible amount and rate).
    detail: dict[str, Any] | None = None


class TierMoveOut(msgspec.Struct):
    to: str | None
    reason: str
    valid_until: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")


class ReturnOut(msgspec.Struct):
    original_event_id: str
    fraction: str


class ReversalOut(msgspec.Struct):
    fraction: str
    points: int
    at: str
    reason: str


class EventOutcome(msgspec.Struct):
    """What an event earned and why, award by award. A retry of the same event answers exactly this again."""

    id: str
    event_id: str
    type: str
    member_id: str
    occurred_at: str
    status: Literal["awarded", "held", "rejected"]
    points: int
    awards: list[AwardOut]
    credits: dict[str, str]
    reason: str | None = None
    tier: TierMoveOut | None = None
    returns: ReturnOut | None = None
    simulated: bool = False
    reversed_points: int = 0
    reversals: list[ReversalOut] = msgspec.field(default_factory=list)


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    #: Up to 1,000 events; each is decoded, validated and applied on its own (all or nothing per item): an item that
    #: is not even an object is that item's 422.
    events: list[Any]


class BatchItemOut(msgspec.Struct):
    index: int
    event_id: str | None
    #: created, duplicate (the first outcome is repeated) or error (see problem).
    result: Literal["created", "duplicate", "error"]
    status: int
    outcome: EventOutcome | None = None
    problem: dict[str, Any] | None = None


class BatchOut(msgspec.Struct):
    created: int
    duplicates: int
    errors: int
    results: list[BatchItemOut]


class ReverseIn(msgspec.Struct, forbid_unknown_fields=True):
    """How much to reverse: everything left (default), a share, or an amount of the original purchase."""

    reason: Annotated[str, Meta(min_length=1, max_length=300)] = "reversed"
    fraction: Decimal | None = None
    amount: Decimal | None = None


class ReverseOut(msgspec.Struct):
    event: EventOutcome
    points_requested: int
    points_removed: int
    written_off: int
    fraction: str
    #: The member's move down, when the credits taken back were what held their tier.
    tier: TierMoveOut | None = None


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=300)]


def outcome_of(data: dict[str, Any]) -> EventOutcome:
    return msgspec.convert(data, EventOutcome)


async def context_for(
    db: Any, principal: Principal, program: ProgramSettings, runtime: Runtime
) -> pipeline.PipelineContext:
    assert principal.tenant_id is not None
    return await pipeline_context(db, runtime, program, tenant_id=principal.tenant_id, actor=principal.actor)


def _decode(raw: Any, prefix: str) -> pipeline.EventIn:
    if not isinstance(raw, dict):
        raise ValidationFailed(f"{prefix}: an event is an object, not {type(raw).__name__}.", field=prefix)
    try:
        return msgspec.convert(raw, pipeline.EventIn, str_keys=True)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc), prefix) from None


def _stored_outcome(event: Event) -> EventOutcome:
    outcome = dict(event.outcome)
    outcome["status"] = event.status
    outcome["reason"] = event.status_reason
    outcome["reversed_points"] = event.reversed_points
    return outcome_of(outcome)


class _SingleEvents:
    """Single events of one API key arriving together are written in one transaction (see core.http.group_commit)."""

    writes = True

    def decode(self, scope: Any, body: bytes) -> pipeline.EventIn | None:
        checked = ScopeState.from_scope(scope).json  # the input gate's strict decoding, when it ran
        if isinstance(checked, pipeline.EventIn):
            return checked
        try:
            return msgspec.json.decode(body, type=pipeline.EventIn)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # the ordinary path answers with the problem

    async def process(
        self, session: Any, principal: Principal, runtime: Runtime, payloads: Sequence[pipeline.EventIn]
    ) -> list[Answer | FealtyError]:
        ctx = await context_for(session, principal, principal.require_program(), runtime)
        answers: list[Answer | FealtyError] = []
        for result in await pipeline.process(ctx, payloads):
            if result.error is not None:
                answers.append(result.error)
                continue
            assert result.outcome is not None
            body = msgspec.json.encode(outcome_of(result.outcome))
            answers.append(Answer(result.status_code, body, {"Fealty-Duplicate": "true"} if result.duplicate else {}))
        return answers


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @post(operation_id="sendEvent", opt={"scope": "events:write", "group_commit": _SingleEvents()})
    async def send(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        data: JSONBody[pipeline.EventIn],
    ) -> Response[EventOutcome]:
        """Send one activity event. Answers what it earned and why (201), or, for an event_id already sent with the
        same content, the first answer again (200, header ``Fealty-Duplicate: true``)."""
        ctx = await context_for(db, principal, program, runtime)
        result = (await pipeline.process(ctx, [data]))[0]
        if result.error is not None:
            raise result.error
        assert result.outcome is not None
        headers = {"Fealty-Duplicate": "true"} if result.duplicate else {}
        return Response(outcome_of(result.outcome), status_code=result.status_code, headers=headers)

    @post("/batch", operation_id="sendEventBatch", opt={"scope": "events:write"}, status_code=200)
    async def batch(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        data: JSONBody[BatchIn],
    ) -> BatchOut:
        """Up to 1,000 events in one request: a result per item; bad items are reported, good ones applied."""
        if not data.events:
            raise ValidationFailed("Send at least one event.", field="events")
        if len(data.events) > MAX_BATCH:
            raise ValidationFailed(f"At most {MAX_BATCH} events per batch.", field="events")
        decoded: list[pipeline.EventIn | FealtyError] = []
        for i, raw in enumerate(data.events):
            try:
                decoded.append(_decode(raw, f"events[{i}]"))
            except FealtyError as error:
                decoded.append(error)
        valid = [(i, e) for i, e in enumerate(decoded) if isinstance(e, pipeline.EventIn)]
        ctx = await context_for(db, principal, program, runtime)
        processed = await pipeline.process(ctx, [e for _, e in valid], isolate_items=True)
        by_index = {i: r for (i, _), r in zip(valid, processed, strict=True)}
        results: list[BatchItemOut] = []
        for i, item in enumerate(decoded):
            result = by_index.get(i)
            raw = data.events[i]
            raw_id = raw.get("event_id") if isinstance(raw, dict) else None
            event_id = raw_id if isinstance(raw_id, str) else None
            failure = item if isinstance(item, FealtyError) else result.error if result else None
            if failure is not None:
                if result is not None:
                    failure.field = f"events[{i}].{failure.field}" if failure.field else f"events[{i}]"
                problem = failure.to_problem()
                results.append(BatchItemOut(i, event_id, "error", problem["status"], problem=problem))
            else:
                assert result is not None and result.outcome is not None
                kind: Literal["created", "duplicate"] = "duplicate" if result.duplicate else "created"
                results.append(BatchItemOut(i, event_id, kind, result.status_code, outcome_of(result.outcome)))
        return BatchOut(
            created=sum(r.result == "created" for r in results),
            duplicates=sum(r.result == "duplicate" for r in results),
            errors=sum(r.result == "error" for r in results),
            results=results,
        )

    @post(
        "/simulate",
        operation_id="simulateEvent",
        opt={"scope": "events:write", "allowed_when_suspended": True},  # writes nothing
        status_code=200,
    )
    async def simulate(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        data: JSONBody[pipeline.EventIn],
    ) -> EventOutcome:
        """What this event would earn now, rule by rule. Nothing is written."""
        ctx = await context_for(db, principal, program, runtime)
        result = (await pipeline.process(ctx, [data], simulate=True))[0]
        if result.error is not None:
            raise result.error
        assert result.outcome is not None
        return outcome_of(result.outcome)

    @get(operation_id="listEvents", opt={"scope": "members:read"})
    async def list_events(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        member_id: FromQuery[uuid.UUID | None] = None,
        event_id: FromQuery[str | None] = None,
        type: FromQuery[str | None] = None,
        status: FromQuery[Literal["awarded", "held", "rejected"] | None] = None,
        received_after: FromQuery[AwareDatetime | None] = None,
        received_before: FromQuery[AwareDatetime | None] = None,
    ) -> Page[EventOutcome]:
        """Events, newest first (``status=held`` is the review queue)."""
        check_limit(limit)
        query = select(Event).order_by(Event.id.desc()).limit(limit + 1)
        if cursor:
            query = query.where(Event.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        for column, value in (
            (Event.member_id, member_id),
            (Event.event_id, event_id),
            (Event.type, type),
            (Event.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        if received_after is not None:
            query = query.where(Event.received_at >= received_after)
        if received_before is not None:
            query = query.where(Event.received_at < received_before)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda e: encode_cursor(e.id))
        return Page([_stored_outcome(e) for e in items], next_cursor)

    @get("/{id:uuid}", operation_id="getEvent", opt={"scope": "members:read"})
    async def get_event(self, db: Db, id: FromPath[uuid.UUID]) -> EventOutcome:
        """The event, its outcome and its awards, and any reversals."""
        return _stored_outcome(await get_event(db, id))

    @post("/{id:uuid}/reverse", operation_id="reverseEvent", opt={"scope": "events:write"}, status_code=200)
    async def reverse(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        id: FromPath[uuid.UUID],
        data: JSONBody[ReverseIn],
    ) -> ReverseOut:
        """Refund or cancel: remove exactly what the event earned (points and tier credits), all of it or a share
        (``fraction``, or ``amount`` of the original). Points already spent follow the program's reversal policy."""
        event = await get_event(db, id, lock=True)
        if event.status != "awarded":
            raise Conflict(f"Only an awarded event can be reversed; this one is {event.status}.", field="id")
        if data.fraction is not None and data.amount is not None:
            raise ValidationFailed("Give fraction or amount, not both.", field="fraction")
        fraction = Decimal(1) - event.reversed_fraction
        if data.fraction is not None:
            if not data.fraction.is_finite() or not Decimal(0) < data.fraction <= 1:
                raise ValidationFailed("fraction must be more than 0 and at most 1.", field="fraction")
            fraction = data.fraction
        elif data.amount is not None:
            if not event.amount:
                raise ValidationFailed("This event has no amount to return a part of.", field="amount")
            if not data.amount.is_finite() or data.amount <= 0 or data.amount > event.amount:
                raise ValidationFailed(f"amount must be more than 0 and at most {event.amount}.", field="amount")
            fraction = data.amount / event.amount
        if fraction > Decimal(1) - event.reversed_fraction:
            raise Conflict("That is more than is left to reverse of this event.", field="fraction")
        ctx = await context_for(db, principal, program, runtime)
        result = await pipeline.reverse(ctx, event, fraction, reason=data.reason)
        await db.refresh(event)
        move = result.tier_move
        return ReverseOut(
            _stored_outcome(event),
            result.points_requested,
            result.points_removed,
            result.written_off,
            str(result.fraction),
            None
            if move is None
            else TierMoveOut(
                move.move.to.code if move.move.to else None,
                move.move.reason,
                move.move.valid_until.isoformat() if move.move.valid_until else None,
                move.from_tier.code if move.from_tier else None,
            ),
        )

    @post("/{id:uuid}/approve", operation_id="approveEvent", status_code=200)
    async def approve(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
    ) -> EventOutcome:
        """Approve an event held for review: it earns now, exactly once however often this is called."""
        assert principal.tenant_id is not None
        event = await approve_held(
            db, runtime, program, id, tenant_id=principal.tenant_id, actor=principal.actor, reason=data.reason
        )
        return _stored_outcome(event)

    @post("/{id:uuid}/reject", operation_id="rejectEvent", status_code=200)
    async def reject(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        id: FromPath[uuid.UUID],
        data: JSONBody[DecisionIn],
    ) -> EventOutcome:
        """Reject an event held for review: it never earns."""
        assert principal.tenant_id is not None
        event = await reject_held(
            db, runtime, program, id, tenant_id=principal.tenant_id, actor=principal.actor, reason=data.reason
        )
        return _stored_outcome(event)
