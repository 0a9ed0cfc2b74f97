"""Events in, points out: the set-based pipeline behind ``POST /v1/events``, ``/batch``, ``/simulate`` and approvals.

One event and a thousand take the same path, with a constant number of statements:

1. **validate** each item (type, member reference, amount, currency, time, attributes schema) — a bad item gets its
   own 4xx problem and is left out, the others go on;
2. **read** what the items need in a handful of queries: events already stored under these ids (a retry returns the
   first outcome), the members (auto-enrolling unknown ones when the program says so), metric sums for tiers, segments
   and caps;
3. **compute** in memory, item after item (so a member's second event in a batch sees the first): plugin validation
   and screening (hold or reject), the earning rules, plugin awards and qualification credits, the tier move;
4. **write**: the events (their unique index settles any concurrent duplicate), the ledger credits, the metric
   buckets, tier changes, the outbox, then the plugins' ``event_processed`` hooks — all in the caller's transaction.

An item that fails in steps 2 or 3 without the read of step 2 (a single event: its insert answers a retry) is looked
up then, so a retry still gets its first answer. A batch writes in a savepoint: should the set-based write raise (a
return reversed meanwhile, a plugin's hook refusing an item), it is rolled back and the items are written one by one,
each in its own savepoint, so the bad ones are reported and the others applied.

Simulation stops after step 3 and writes nothing (an unknown member under auto-enrolment is a transient one).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.billing.usage import record_activity as record_usage
from core.db import bulk
from core.db.base import table_of
from core.errors import Conflict, FealtyError, NotFound, ValidationFailed, invalid
from core.events.models import Event
from core.ids import new_id
from core.ledger import service as ledger
from core.ledger.models import PointBalance
from core.members.models import Member
from core.members.service import enrol
from core.members.views import member_view
from core.metrics import service as metrics
from core.metrics.service import Window
from core.outbox.service import emit_many
from core.plugin_types import (
    Award,
    Decision,
    EarlierResult,
    EventContext,
    EventType,
    EventView,
    MemberView,
    ReversalView,
    TenantView,
    TierChange,
)
from core.plugins import PluginManager, TenantHooks
from core.program.config import TenantConfig
from core.program.settings import ProgramSettings
from core.rules import engine
from core.segments.service import member_facts, metric_windows, segments_of
from core.tiers import rules as tier_rules
from core.tiers import service as tier_service
from core.tiers.models import TierChange as TierChangeRow

events_table = table_of(Event)
#: What storing an event writes (see ``_event_row``).
EVENT_COLUMNS = (
    "tenant_id", "id", "event_id", "type", "member_id", "occurred_at", "received_at", "local_day", "amount",
    "currency", "quantity", "unit", "attributes", "status", "status_reason", "points", "reversed_points",
    "reversed_fraction", "request_hash", "outcome", "original_event_id", "decided_by", "decided_at",
)  # fmt: skip
members_table = table_of(Member)
balances_table = table_of(PointBalance)
tier_changes_table = table_of(TierChangeRow)

MAX_AMOUNT = Decimal("1e13")
#: The most points one event may earn: more is surely a wrong amount or quantity (and would not fit the ledger).
MAX_EVENT_POINTS = 10**12
#: What the pipeline reads of a member (plain rows: no ORM identity map on the hot path).
MEMBER_COLUMNS = (
    "id",
    "external_id",
    "card",
    "phone",
    "status",
    "attributes",
    "created_at",
    "timezone",
    "locale",
    "birthday",
    "tier_id",
    "tier_valid_until",
)
CORE_METRICS = ("points", "base_points", "spend", "events")


class MemberRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Exactly one way to find the member."""

    member_id: uuid.UUID | None = None
    external_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    card: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    phone: Annotated[str, Meta(min_length=3, max_length=40)] | None = None


class EventIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    #: The source system's id (a POS receipt, a PMS folio, a loan instalment): retries with it apply once.
    event_id: Annotated[str, Meta(min_length=1, max_length=128)]
    member: MemberRef
    occurred_at: Annotated[datetime, Meta(tz=True)]
    amount: Decimal | None = None
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    quantity: Decimal | None = None
    unit: Annotated[str, Meta(min_length=1, max_length=16)] | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


_MEMBERS = select(*(members_table.c[c] for c in MEMBER_COLUMNS), balances_table.c.last_activity_at).join(
    balances_table,
    (balances_table.c.tenant_id == members_table.c.tenant_id) & (balances_table.c.member_id == members_table.c.id),
)
_MEMBER_BY = {
    name: _MEMBERS.where(
        members_table.c.tenant_id == bindparam("m_tenant"),
        members_table.c["id" if name == "member_id" else name] == bindparam("m_value"),
    )
    for name in ("member_id", "external_id", "card", "phone")
}


@dataclass
class ItemResult:
    index: int
    event_id: str
    outcome: dict[str, Any] | None = None
    error: FealtyError | None = None
    duplicate: bool = False

    @property
    def status_code(self) -> int:
        if self.error is not None:
            return self.error.to_problem()["status"]  # type: ignore[no-any-return]
        return 200 if self.duplicate else 201


@dataclass
class PipelineContext:
    session: AsyncSession
    tenant_id: uuid.UUID
    program: ProgramSettings
    config: TenantConfig
    plugins: PluginManager
    now: datetime
    actor: str
    max_future: timedelta = timedelta(minutes=15)
    #: An approval of held events: the person's decision, handed to the plugins' hooks with each item.
    decision: Decision | None = None

    @property
    def hooks(self) -> TenantHooks:
        return self.program.hooks(self.plugins)

    def tenant_view(self) -> TenantView:
        return self.program.tenant_view(self.tenant_id, self.plugins)


@dataclass
class _Item:
    index: int
    data: EventIn
    event_type: EventType
    attributes: Any
    request_hash: str
    amount: Decimal | None
    currency: str | None
    quantity: Decimal | None
    existing_id: uuid.UUID | None = None
    #: The member as a row of MEMBER_COLUMNS (or a Member just enrolled).
    member: Any = None
    last_activity_at: datetime | None = None
    event_uuid: uuid.UUID = field(default_factory=new_id)
    status: str = "awarded"
    reason: str | None = None
    lines: list[engine.AwardLine] = field(default_factory=list)
    plugin_awards: list[Award] = field(default_factory=list)
    #: The program-local day the event happened on (its metrics are counted on that day).
    local_day: date = date.min
    #: Every award (rule lines as awards, then the plugins'), computed once.
    awards: list[Award] = field(default_factory=list)
    credits: dict[str, Decimal] = field(default_factory=dict)
    tier_move: tier_rules.Move | None = None
    tier_before: tier_rules.TierSpec | None = None
    original: Any = None
    reverse_fraction: Decimal | None = None
    context: EventContext | None = None
    #: The outcome as stored with the event (the answer is the very same, so a retry's answer equals the first).
    outcome: dict[str, Any] | None = None


def _hash(item: EventIn) -> str:
    return hashlib.sha256(msgspec.json.encode(msgspec.to_builtins(item), order="sorted")).hexdigest()


def _decimal(value: Decimal | None, field_name: str, *, positive: bool) -> Decimal | None:
    if value is None:
        return None
    try:
        if not value.is_finite() or abs(value) >= MAX_AMOUNT:
            raise InvalidOperation
        if value.as_tuple().exponent < -4:  # type: ignore[operator]
            raise ValidationFailed(f"{field_name} has more than 4 decimal places.", field=field_name)
    except InvalidOperation:
        raise ValidationFailed(f"{field_name} is not a usable number.", field=field_name) from None
    if positive and value <= 0:
        raise ValidationFailed(f"{field_name} must be greater than zero.", field=field_name)
    if value < 0:
        raise ValidationFailed(f"{field_name} must not be negative.", field=field_name)
    return value


def _validate(ctx: PipelineContext, index: int, data: EventIn) -> _Item:
    """Everything that can be checked without the database (raises ValidationFailed naming the field)."""
    types = ctx.plugins.event_types()
    event_type = types.get(data.type)
    if event_type is None or (event_type.plugin and event_type.plugin not in ctx.program.enabled_plugins):
        known = sorted(n for n, t in types.items() if t.plugin is None or t.plugin in ctx.program.enabled_plugins)
        raise ValidationFailed(f"Unknown event type '{data.type}'; this program accepts {known}.", field="type")
    ref = data.member
    given = [name for name in ("member_id", "external_id", "card", "phone") if getattr(ref, name) is not None]
    if len(given) != 1:
        raise ValidationFailed(
            "Identify the member by exactly one of member_id, external_id, card, phone.", field="member"
        )
    if data.occurred_at > ctx.now + ctx.max_future:
        raise ValidationFailed("occurred_at is in the future.", field="occurred_at")
    amount = _decimal(data.amount, "amount", positive=event_type.requires_amount)
    quantity = _decimal(data.quantity, "quantity", positive=event_type.requires_quantity)
    if event_type.requires_amount and amount is None:
        raise ValidationFailed(f"Events of type '{data.type}' need an amount.", field="amount")
    if event_type.requires_quantity and quantity is None:
        raise ValidationFailed(f"Events of type '{data.type}' need a quantity.", field="quantity")
    currency = validation.currency(data.currency) if data.currency else (ctx.program.currency if amount else None)
    attributes: Any = dict(data.attributes)
    if event_type.attributes is not None:
        try:
            attributes = msgspec.convert(data.attributes, event_type.attributes)
        except msgspec.ValidationError as exc:
            raise invalid(str(exc), "attributes") from None
    return _Item(index, data, event_type, attributes, _hash(data), amount, currency, quantity)


async def process(
    ctx: PipelineContext,
    batch: Sequence[EventIn],
    *,
    simulate: bool = False,
    existing: dict[int, uuid.UUID] | None = None,
    isolate_items: bool = False,
) -> list[ItemResult]:
    """Process ``batch``; one result per item, in order. ``existing`` (approvals) maps item index -> stored event.

    ``isolate_items`` (a batch): an item whose write fails is reported and the others are applied (savepoints).
    Without it a write failure raises, for the caller's transaction to roll back (a single event, or a group commit,
    which then answers each request on its own)."""
    results = [ItemResult(i, e.event_id) for i, e in enumerate(batch)]
    items: list[_Item] = []
    seen: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, data in enumerate(batch):
        try:
            item = _validate(ctx, i, data)
        except FealtyError as error:
            results[i].error = error
            continue
        if existing and i in existing:
            item.existing_id = item.event_uuid = existing[i]
        elif data.event_id in seen:
            first = items[seen[data.event_id]]
            if first.request_hash != item.request_hash:
                results[i].error = Conflict("This event_id was already used for a different event.", field="event_id")
            else:
                repeats[i] = first.index  # answered with the first copy's result below
            continue
        seen[data.event_id] = len(items)
        items.append(item)

    items, looked_up = await _drop_stored(ctx, items, results, simulate)
    candidates = items
    items = await _resolve_members(ctx, items, results, simulate)
    await _compute(ctx, items, results, simulate)
    if not simulate and not looked_up:
        # A retry of an event that fails now (a return already reversed, a member since anonymized) answers what
        # was stored the first time: looked up only for failed items, so the common path has no extra read.
        await _answer_stored(
            ctx, [i for i in candidates if results[i.index].error is not None and i.existing_id is None], results
        )
    items = [item for item in items if results[item.index].error is None]
    if not simulate and items:
        items = await (_write_isolated(ctx, items, results) if isolate_items else _write(ctx, items, results))
    for item in items:
        results[item.index].outcome = item.outcome or _outcome(ctx, item, simulate)
    for i, first_index in repeats.items():  # in-batch repeats answer what their first copy got
        first_result = results[first_index]
        results[i].outcome, results[i].error = first_result.outcome, first_result.error
        results[i].duplicate = first_result.error is None
    return results


@functools.cache
def _stored_events(postgres: bool) -> Any:
    return select(events_table.c.event_id, events_table.c.request_hash, events_table.c.outcome).where(
        events_table.c.tenant_id == bindparam("s_tenant"),
        bulk.one_of(events_table.c.event_id, "s_ids", postgres),
    )


async def _stored_rows(ctx: PipelineContext, items: Sequence[_Item]) -> dict[str, Any]:
    rows = await ctx.session.execute(
        _stored_events(bulk.is_postgres(ctx.session)),
        {"s_tenant": ctx.tenant_id, "s_ids": [i.data.event_id for i in items]},
    )
    return {r.event_id: r for r in rows}


def _answer_retry(item: _Item, row: Any, result: ItemResult) -> None:
    """``item``'s event_id is stored as ``row``: the same content is a retry (the first answer again), other content
    a conflict."""
    if row.request_hash != item.request_hash:
        result.error = Conflict("This event_id was already used for a different event.", field="event_id")
    else:
        result.outcome, result.duplicate, result.error = dict(row.outcome), True, None


async def _drop_stored(
    ctx: PipelineContext, items: list[_Item], results: list[ItemResult], simulate: bool
) -> tuple[list[_Item], bool]:
    """Events already stored under these ids: a retry answers the first outcome; other content is a conflict.
    Also says whether the read was made."""
    fresh = [i for i in items if i.existing_id is None]
    if not fresh or simulate or len(items) == 1:
        # A single event needs no read first: its insert's unique index answers a retry (see _write), and if it
        # fails before that, _answer_stored looks it up.
        return items, False
    stored = await _stored_rows(ctx, fresh)
    kept = []
    for item in items:
        row = stored.get(item.data.event_id) if item.existing_id is None else None
        if row is None:
            kept.append(item)
        else:
            _answer_retry(item, row, results[item.index])
    return kept, True


async def _answer_stored(ctx: PipelineContext, failed: list[_Item], results: list[ItemResult]) -> None:
    """Items that failed before their insert: those whose event_id is stored answer as retries of it."""
    if not failed:
        return
    stored = await _stored_rows(ctx, failed)
    for item in failed:
        row = stored.get(item.data.event_id)
        if row is not None:
            _answer_retry(item, row, results[item.index])


@functools.cache
def _members_by(names: tuple[str, ...], postgres: bool) -> Any:
    """Members found by any of several identifiers (a batch's): one statement per combination of identifier kinds."""
    return _MEMBERS.where(
        members_table.c.tenant_id == bindparam("m_tenant"),
        or_(*(bulk.one_of(members_table.c["id" if n == "member_id" else n], f"m_{n}", postgres) for n in names)),
    )


async def _resolve_members(
    ctx: PipelineContext, items: list[_Item], results: list[ItemResult], simulate: bool = False
) -> list[_Item]:
    if not items:
        return items
    refs: dict[str, set[Any]] = defaultdict(set)
    for item in items:
        ref = item.data.member
        if ref.phone is not None:
            try:
                ref.phone = validation.phone(ref.phone, ctx.program.country, field="member.phone")
            except FealtyError as error:
                results[item.index].error = error
                continue
        for name in ("member_id", "external_id", "card", "phone"):
            value = getattr(ref, name)
            if value is not None:
                refs[name].add(value)
    items = [i for i in items if results[i.index].error is None]
    found: list[tuple[Any, datetime | None]] = []
    if len(refs) == 1 and len(next(iter(refs.values()))) == 1:
        # One member (a single event): a statement built once, executed with parameters.
        name, values = next(iter(refs.items()))
        rows = await ctx.session.execute(_MEMBER_BY[name], {"m_tenant": ctx.tenant_id, "m_value": next(iter(values))})
        found = [(row, row.last_activity_at) for row in rows]
    elif refs:
        names = tuple(sorted(refs))
        query = _members_by(names, bulk.is_postgres(ctx.session))
        parameters: dict[str, Any] = {"m_tenant": ctx.tenant_id}
        parameters |= {f"m_{kind}": sorted(refs[kind], key=str) for kind in names}
        found = [(row, row.last_activity_at) for row in await ctx.session.execute(query, parameters)]
    index: dict[tuple[str, Any], tuple[Any, datetime | None]] = {}
    for member, last in found:
        index[("member_id", member.id)] = (member, last)
        for name in ("external_id", "card", "phone"):
            if getattr(member, name) is not None:
                index[(name, getattr(member, name))] = (member, last)
    kept = []
    for item in items:
        ref = item.data.member
        name = next(n for n in ("member_id", "external_id", "card", "phone") if getattr(ref, n) is not None)
        value = getattr(ref, name)
        hit = index.get((name, value))
        if hit is None and ctx.program.auto_enrol and name != "member_id":
            external_id = value if name == "external_id" else f"{name}:{value}"
            fields = {name: value} if name != "external_id" else {}
            if simulate:
                # As if enrolled now, but transient: nothing is written and no hook hears of it.
                member = Member(
                    tenant_id=ctx.tenant_id,
                    id=new_id(),
                    external_id=external_id,
                    status="active",
                    attributes={},
                    created_at=ctx.now,
                    updated_at=ctx.now,
                    **fields,
                )
            else:
                member = await enrol(
                    ctx.session,
                    tenant_id=ctx.tenant_id,
                    external_id=external_id,
                    fields=fields,
                    attributes={},
                    consents=[],
                    now=ctx.now,
                )
                await ctx.hooks.member_enrolled(ctx.tenant_view(), member_view(member), ctx.session)
                ctx.session.info.setdefault("fealty.enrolled", []).append(member)
            hit = (member, ctx.now)
            index[(name, value)] = hit
        if hit is None:
            results[item.index].error = NotFound(
                f"No member with this {name}; enrol the member first or enable auto-enrolment.",
                field=f"member.{name}",
            )
            continue
        if hit[0].status == "anonymized":
            results[item.index].error = Conflict("This member has been anonymized.", field="member")
            continue
        item.member, item.last_activity_at = hit
        kept.append(item)
    return kept


async def _compute(
    ctx: PipelineContext,
    items: list[_Item],
    results: list[ItemResult],
    simulate: bool,
    applied: Sequence[_Item] = (),
) -> None:
    """Hooks, rules, credits and tier moves for every item, in order (a member's later items see earlier ones).

    An item that fails (a plugin's validation or hook refusing it, a return that cannot be applied, an absurd award)
    gets its error and leaves nothing behind for the items after it. ``applied``: items of the same batch already
    written (when computing again after a failure), which plugins see as earlier items."""
    if not items:
        return
    config, tz, hooks = ctx.config, ctx.program.tz, ctx.hooks
    plugin_hooks = bool(ctx.program.enabled_plugins)  # core's own types implement no per-event hook
    today = metrics.local_day(ctx.now, tz)
    for item in items:
        item.local_day = metrics.local_day(item.data.occurred_at, tz)
    member_ids = sorted({i.member.id for i in items if i.member}, key=str)
    wanted: set[tuple[str, Window]] = set(tier_rules.metric_windows(config.tiers))
    if config.needs_segments:
        wanted |= metric_windows(config.segments)
    for rule in config.capped:
        wanted |= {(f"rule:{rule.id}", Window("rolling_days", 1)), (f"rule:{rule.id}", Window("calendar_month"))}
    sums = await metrics.sums(ctx.session, ctx.tenant_id, member_ids, wanted, today) if wanted else {}
    caps = await _CapTotals.read(ctx, items, sums, today)
    tenant = ctx.tenant_view()
    tier_of: dict[uuid.UUID, tier_rules.TierSpec | None] = {}
    valid_until: dict[uuid.UUID, datetime | None] = {}
    earlier: dict[uuid.UUID, list[_Item]] = defaultdict(list)
    for done in applied:
        assert done.member is not None
        earlier[done.member.id].append(done)
    #: The share of each purchase this batch's returns already take back.
    returned: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for item in items:
        assert item.member is not None
        member = item.member
        if member.id not in tier_of:
            tier_of[member.id] = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
            valid_until[member.id] = member.tier_valid_until
        tier = tier_of[member.id]
        member_sums = sums.get(member.id, {})
        facts = member_facts(
            tier=tier,
            attributes=member.attributes or {},
            locale=member.locale,
            timezone=member.timezone,
            enrolled_at=member.created_at,
            last_activity_at=item.last_activity_at,
            birthday=member.birthday,
            now=ctx.now,
            sums=member_sums,
        )
        segments: set[str] = segments_of(config.segments, facts) if config.needs_segments else set()
        if segments:
            facts["member"]["segments"] = sorted(segments)
        local = item.data.occurred_at.astimezone(tz)
        event_facts = {
            "type": item.data.type,
            "amount": item.amount,
            "currency": item.currency,
            "quantity": item.quantity,
            "unit": item.data.unit,
            "weekday": local.isoweekday(),
            "hour": local.hour,
            "attributes": msgspec.to_builtins(item.attributes)
            if not isinstance(item.attributes, dict)
            else item.attributes,
        }
        view = EventView(
            item.event_uuid,
            item.data.event_id,
            item.data.type,
            item.data.occurred_at,
            item.amount,
            item.currency,
            item.quantity,
            item.data.unit,
            item.attributes,
            dict(item.data.attributes),
        )
        mview = member_view(member, tier, segments)
        context = EventContext(
            tenant=tenant,
            event=view,
            member=mview,
            session=ctx.session,
            now=ctx.now,
            simulate=simulate,
            earlier=tuple(e.context.event for e in earlier[member.id] if e.context is not None),
            earlier_results=tuple(
                EarlierResult(
                    e.context.event,
                    e.status,  # type: ignore[arg-type]
                    tuple(_all_awards(e, ctx.now)) if e.status == "awarded" else (),
                )
                for e in earlier[member.id]
                if e.context is not None
            ),
            decision=ctx.decision if item.existing_id is not None else None,
        )
        item.context = context
        try:
            issues = await hooks.validate_event(context) if plugin_hooks else []
            if issues:
                raise ValidationFailed(
                    f"{issues[0].field}: {issues[0].detail}",
                    field=issues[0].field,
                    errors=[{"field": i.field, "detail": i.detail} for i in issues],
                )
            if item.data.type == "return":
                await _plan_return(ctx, item, returned)
            if plugin_hooks and item.existing_id is None and item.data.type != "return":
                screening = await hooks.screen_event(context)
                if screening is not None:
                    item.status = "held" if screening.action == "hold" else "rejected"
                    item.reason = f"{screening.code}: {screening.reason}"
            if item.status == "awarded" and item.data.type != "return":
                multiplier = tier.benefits.earning_multiplier if tier else None
                item.lines = engine.compute(
                    config.rules,
                    {"event": event_facts, **facts},
                    occurred_at=item.data.occurred_at,
                    program_currency=ctx.program.currency,
                    tier_multiplier=multiplier,
                    tier_name=tier.name if tier else None,
                    usage=caps.usage(member.id, item.local_day),
                )
                rule_awards = [_award_of(line, ctx.now) for line in item.lines]
                item.plugin_awards = await hooks.compute_awards(context, rule_awards) if plugin_hooks else []
                item.awards = [*rule_awards, *item.plugin_awards]
                _check_points(item)
                plugin_credits = await hooks.qualifying_credits(context, item.awards) if plugin_hooks else {}
                item.credits = _credits(item, plugin_credits, ctx.program.currency)
        except FealtyError as error:
            results[item.index].error = error
            continue
        # The item stands: what it takes and earns counts for the items after it.
        earlier[member.id].append(item)
        if item.original is not None:
            returned[item.original.id] += item.reverse_fraction or Decimal(0)
        if item.status != "awarded" or item.data.type == "return":
            continue
        for key, value in item.credits.items():  # this batch's later items and the tier check see them ...
            for window in {w for metric, w in wanted if metric == key}:
                start = window.start(today)
                if start is None or item.local_day >= start:  # ... in the windows the stored sums cover
                    member_sums[(key, window.key)] = member_sums.get((key, window.key), Decimal(0)) + value
        caps.add(member.id, item.local_day, item.lines)
        sums[member.id] = member_sums
        if config.tiers:
            move = tier_rules.on_activity(config.tiers, tier, valid_until[member.id], member_sums, ctx.now, tz)
            if move is not None:
                item.tier_before, item.tier_move = tier, move
                tier_of[member.id], valid_until[member.id] = move.to, move.valid_until


class _CapTotals:
    """What each capped rule already gave each member on each local day and in each local month, kept up to date
    across a batch. Caps count on the event's own day and month: a backdated event is capped by what that day gave.

    Events of today (nearly all of them) read the stored totals with the other metric sums; events of other days add
    one query, for every such item at once."""

    def __init__(
        self,
        rules: Sequence[engine.Rule],
        sums: dict[uuid.UUID, dict[tuple[str, str], Decimal]],
        stored: dict[tuple[uuid.UUID, str, date], Decimal],
        today: date,
    ) -> None:
        self.rules, self.sums, self.today = rules, sums, today
        self.ids = {r.id for r in rules}
        self.stored_days = stored
        self.stored_months: dict[tuple[uuid.UUID, str, date], Decimal] = defaultdict(Decimal)
        for (member_id, metric, day), value in stored.items():
            self.stored_months[(member_id, metric, metrics.month_start(day))] += value
        self.day: dict[tuple[uuid.UUID, uuid.UUID, date], int] = {}
        self.month: dict[tuple[uuid.UUID, uuid.UUID, date], int] = {}

    @classmethod
    async def read(
        cls,
        ctx: PipelineContext,
        items: Sequence[_Item],
        sums: dict[uuid.UUID, dict[tuple[str, str], Decimal]],
        today: date,
    ) -> _CapTotals:
        rules = ctx.config.capped
        stored: dict[tuple[uuid.UUID, str, date], Decimal] = {}
        elsewhere = [i for i in items if i.local_day != today and i.member is not None] if rules else []
        if elsewhere:
            stored = await metrics.daily_values(
                ctx.session,
                ctx.tenant_id,
                sorted({i.member.id for i in elsewhere}, key=str),
                sorted(f"rule:{r.id}" for r in rules),
                first=min(metrics.month_start(i.local_day) for i in elsewhere),
                before=max(metrics.next_month(i.local_day) for i in elsewhere),
            )
        return cls(rules, sums, stored, today)

    def usage(self, member_id: uuid.UUID, day: date) -> engine.CapUsage:
        if not self.rules:
            return engine.CapUsage()
        month = metrics.month_start(day)
        this_month = month == metrics.month_start(self.today)
        member_sums = self.sums.get(member_id, {})
        for rule in self.rules:
            metric = f"rule:{rule.id}"
            if (member_id, rule.id, day) not in self.day:
                given = member_sums.get((metric, "1d")) if day == self.today else None
                if given is None:
                    given = self.stored_days.get((member_id, metric, day), Decimal(0))
                self.day[(member_id, rule.id, day)] = int(given)
            if (member_id, rule.id, month) not in self.month:
                given = member_sums.get((metric, "month")) if this_month else None
                if given is None:
                    given = self.stored_months.get((member_id, metric, month), Decimal(0))
                self.month[(member_id, rule.id, month)] = int(given)
        return engine.CapUsage(
            day={r.id: self.day[(member_id, r.id, day)] for r in self.rules},
            month={r.id: self.month[(member_id, r.id, month)] for r in self.rules},
        )

    def add(self, member_id: uuid.UUID, day: date, lines: Sequence[engine.AwardLine]) -> None:
        month = metrics.month_start(day)
        for line in lines:
            if line.rule_id in self.ids:
                self.day[(member_id, line.rule_id, day)] += line.points
                self.month[(member_id, line.rule_id, month)] += line.points


def _check_points(item: _Item) -> None:
    """Refuse an event that would earn more than :data:`MAX_EVENT_POINTS` (naming the number that drove it)."""
    if sum(a.points for a in item.awards) > MAX_EVENT_POINTS:
        field_name = "amount" if item.amount is not None else "quantity" if item.quantity is not None else None
        raise ValidationFailed(
            f"This event would earn more than {MAX_EVENT_POINTS:,} points; check its amount and quantity.",
            field=field_name,
        )


def _award_of(line: engine.AwardLine, now: datetime) -> Award:
    available_at = now + timedelta(days=line.pending_days) if line.pending_days else None
    source = f"rule:{line.rule_id}" if line.rule_id else line.kind
    return Award(
        line.points,
        f"{line.rule_name} ({line.basis})",
        source,
        available_at,
        line.base,
        {
            "rule_id": str(line.rule_id) if line.rule_id else None,
            "kind": line.kind,
            "capped_from": line.capped_from,
            "campaign_id": str(line.campaign_id) if line.campaign_id else None,
        },
    )


def _all_awards(item: _Item, now: datetime) -> list[Award]:
    return item.awards


def _credits(item: _Item, plugin_credits: dict[str, Decimal], currency: str) -> dict[str, Decimal]:
    awards = [*item.lines]
    credits: dict[str, Decimal] = defaultdict(Decimal)
    credits["events"] += 1
    credits[f"count:{item.data.type}"] += 1
    if item.amount is not None and item.currency == currency:
        credits["spend"] += item.amount
    points = sum(line.points for line in awards) + sum(a.points for a in item.plugin_awards)
    base = sum(line.points for line in awards if line.base) + sum(a.points for a in item.plugin_awards if a.base)
    if points:
        credits["points"] += points
    if base:
        credits["base_points"] += base
    for name, value in plugin_credits.items():
        credits[name] += Decimal(value)
    return {k: v for k, v in credits.items() if v}


async def _plan_return(ctx: PipelineContext, item: _Item, returned: Mapping[uuid.UUID, Decimal]) -> None:
    """A return reverses the same share of its purchase: return amount / purchase amount (capped at what is left,
    after ``returned``, what this batch's earlier returns take). It is in the purchase's currency (by default)."""
    original_id = item.attributes.original_event_id
    row = (
        await ctx.session.execute(
            select(events_table).where(
                events_table.c.tenant_id == ctx.tenant_id, events_table.c.event_id == original_id
            )
        )
    ).first()
    assert item.member is not None
    if row is None or row.member_id != item.member.id:
        raise ValidationFailed("No purchase of this member has that event_id.", field="attributes.original_event_id")
    if row.status != "awarded" or not row.amount:
        raise Conflict("Only an awarded event with an amount can be returned.", field="attributes.original_event_id")
    assert item.amount is not None
    if item.data.currency is None:
        item.currency = row.currency
    elif item.currency != row.currency:
        raise ValidationFailed(
            f"The purchase was in {row.currency}; its return must be in {row.currency} too.", field="currency"
        )
    left = Decimal(1) - row.reversed_fraction - returned.get(row.id, Decimal(0))
    if left <= 0:
        raise Conflict("That purchase has already been returned in full.", field="attributes.original_event_id")
    item.original = row
    item.reverse_fraction = min(left, item.amount / row.amount)


@functools.cache
def _insert_events(postgres: bool) -> Any:
    """Store new events; an event_id stored meanwhile by another request is skipped (and answered as a race)."""
    return (
        bulk.insert(postgres, events_table, EVENT_COLUMNS)
        .on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
        .returning(events_table.c.event_id)
    )


async def _write(ctx: PipelineContext, items: list[_Item], results: list[ItemResult]) -> list[_Item]:
    """Every write, in a fixed number of statements. Returns the items actually applied."""
    session, now = ctx.session, ctx.now
    new = [i for i in items if i.existing_id is None]
    if new:
        statement = _insert_events(bulk.is_postgres(session))
        event_rows = [_event_row(ctx, i) for i in new]
        inserted = set(
            (await session.execute(statement, bulk.params(session, events_table, EVENT_COLUMNS, event_rows))).scalars()
        )
        raced = [i for i in new if i.data.event_id not in inserted]
        if raced:
            # Another request stored the same event_id first (its transaction was waited for): answer its outcome.
            if len(raced) != len(new) or len(new) != len(items):
                raise Conflict(
                    "Events of this batch were stored concurrently by another request; retry the batch.", field="events"
                )
            rows = await session.execute(
                select(events_table.c.event_id, events_table.c.outcome, events_table.c.request_hash).where(
                    events_table.c.tenant_id == ctx.tenant_id,
                    events_table.c.event_id.in_([i.data.event_id for i in raced]),
                )
            )
            for row in rows:
                item = next(i for i in raced if i.data.event_id == row.event_id)
                if row.request_hash == item.request_hash:
                    results[item.index].outcome, results[item.index].duplicate = dict(row.outcome), True
                else:
                    results[item.index].error = Conflict(
                        "This event_id was already used for a different event.", field="event_id"
                    )
            return []
    awarded = [i for i in items if i.status == "awarded"]
    credits: list[ledger.CreditRequest] = []
    for item in awarded:
        assert item.member is not None
        by_time: dict[datetime | None, list[Award]] = defaultdict(list)
        for award in _all_awards(item, now):
            if award.points > 0:
                by_time[award.available_at].append(award)
        for available_at, awards in by_time.items():
            credits.append(
                ledger.CreditRequest(
                    member_id=item.member.id,
                    points=sum(a.points for a in awards),
                    kind="earn",
                    cause=ledger.Cause(
                        "event",
                        id=str(item.event_uuid),
                        reason=f"{item.data.type} {item.data.event_id}",
                        actor=ctx.actor,
                    ),
                    available_at=available_at,
                    details={
                        "event_id": item.data.event_id,
                        "awards": [{"source": a.source, "points": a.points} for a in awards],
                    },
                )
            )
    activity = [i.member.id for i in awarded if i.member and i.event_type.counts_as_activity]
    await ledger.credit_many(
        session, tenant_id=ctx.tenant_id, credits=credits, policy=ctx.program.ledger_policy, now=now, activity=activity
    )
    # Billing usage: events stored now (an approval was counted when first held) and every member acted for.
    await record_usage(
        session, tenant_id=ctx.tenant_id, member_ids=[i.member.id for i in items], now=now, events=len(new)
    )
    await metrics.add(
        session,
        ctx.tenant_id,
        [
            (i.member.id, name, i.local_day, value)
            for i in awarded
            if i.member
            for name, value in _metric_rows(i).items()
        ],
    )
    await _write_tier_moves(ctx, [i for i in awarded if i.tier_move is not None])
    for item in awarded:  # after the tier moves: a return's tier check sees where the batch left the member
        if item.original is not None:
            await reverse(
                ctx, item.original, item.reverse_fraction or Decimal(0), reason=f"return {item.data.event_id}"
            )
    if any(i.existing_id for i in items):
        for item in items:
            if item.existing_id is not None:
                stored = _event_row(ctx, item)
                await session.execute(
                    update(events_table)
                    .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == item.existing_id)
                    .values(
                        status=stored["status"],
                        status_reason=stored["status_reason"],
                        points=stored["points"],
                        outcome=stored["outcome"],
                        decided_by=ctx.actor,
                        decided_at=now,
                    )
                )
    await emit_many(
        session,
        ctx.tenant_id,
        [ev for i in items for ev in _domain_events(ctx, i) if ctx.config.wants_outbox(ev[0])],
        now,
    )
    for item in items:
        assert item.context is not None and item.member is not None
        awards = _all_awards(item, now)
        context = replace(item.context, reverse_event=_reverser(ctx, item.member.id))
        await ctx.hooks.event_processed(context, item.status, awards, item.credits)
    return items


async def _write_isolated(ctx: PipelineContext, items: list[_Item], results: list[ItemResult]) -> list[_Item]:
    """:func:`_write` in a savepoint. Should it raise a FealtyError (one item's problem: a return reversed meanwhile,
    a plugin's ``event_processed`` refusing an item), it is rolled back and the items are written one by one, each in
    its own savepoint: each bad item gets its problem, the others are applied. A member's items after one of theirs
    that failed are computed again first, so their caps, tier and credits do not count the failed one."""
    session = ctx.session
    try:
        async with session.begin_nested():
            return await _write(ctx, items, results)
    except FealtyError:
        pass
    applied: list[_Item] = []
    failed_members: set[uuid.UUID] = set()
    for item in items:
        assert item.member is not None
        member_id = item.member.id
        if member_id in failed_members:
            again = await _recompute(
                ctx, item, results, [a for a in applied if a.member is not None and a.member.id == member_id]
            )
            if again is None:
                continue
            item = again
        try:
            async with session.begin_nested():
                applied += await _write(ctx, [item], results)
        except FealtyError as error:
            results[item.index].error = error
            failed_members.add(member_id)
    return applied


async def _recompute(
    ctx: PipelineContext, item: _Item, results: list[ItemResult], applied: Sequence[_Item]
) -> _Item | None:
    """``item`` computed afresh from its data and what is stored now, after ``applied`` (the member's items of this
    batch written so far). None if it fails now: its result says why."""
    try:
        fresh = _validate(ctx, item.index, item.data)
    except FealtyError as error:
        results[item.index].error = error
        return None
    fresh.request_hash = item.request_hash  # as first received (a phone number is normalised since)
    if item.existing_id is not None:
        fresh.existing_id = fresh.event_uuid = item.existing_id
    kept = await _resolve_members(ctx, [fresh], results)
    await _compute(ctx, kept, results, simulate=False, applied=applied)
    return fresh if kept and results[item.index].error is None else None


def _reverser(ctx: PipelineContext, member_id: uuid.UUID) -> Callable[[str, Decimal, str], Awaitable[int]]:
    """What a plugin's ``ctx.reverse_event`` does: reverse one of this member's earlier events, by its event_id."""

    async def reverse_event(event_id: str, fraction: Decimal, reason: str) -> int:
        row = (
            await ctx.session.execute(
                select(events_table).where(
                    events_table.c.tenant_id == ctx.tenant_id, events_table.c.event_id == event_id
                )
            )
        ).first()
        if row is None or row.member_id != member_id:
            raise NotFound("No event of this member has that event_id.", field="event_id")
        if row.status != "awarded" or row.reversed_fraction >= 1:
            return 0
        result = await reverse(ctx, row, min(Decimal(fraction), Decimal(1) - row.reversed_fraction), reason=reason)
        return result.points_removed

    return reverse_event


def _metric_rows(item: _Item) -> dict[str, Decimal]:
    rows = dict(item.credits)
    for line in item.lines:
        if line.rule_id is not None:
            rows[f"rule:{line.rule_id}"] = rows.get(f"rule:{line.rule_id}", Decimal(0)) + line.points
    return rows


async def _write_tier_moves(ctx: PipelineContext, items: list[_Item]) -> None:
    if not items:
        return
    final: dict[uuid.UUID, _Item] = {}
    for item in items:
        assert item.member is not None
        final[item.member.id] = item
    for member_id, item in final.items():
        move = item.tier_move
        assert move is not None and item.member is not None
        values: dict[str, Any] = {"tier_valid_until": move.valid_until}
        if move.reason != "renewal":
            values |= {"tier_id": move.to.id if move.to else None, "tier_since": ctx.now}
        await ctx.session.execute(
            update(members_table)
            .where(members_table.c.tenant_id == ctx.tenant_id, members_table.c.id == member_id)
            .values(values)
        )
    await ctx.session.execute(
        insert(tier_changes_table),
        [
            {
                "tenant_id": ctx.tenant_id,
                "id": new_id(),
                "member_id": i.member.id,
                "from_tier_id": i.tier_before.id if i.tier_before else None,
                "to_tier_id": i.tier_move.to.id if i.tier_move and i.tier_move.to else None,
                "reason": i.tier_move.reason if i.tier_move else "upgrade",
                "valid_until": i.tier_move.valid_until if i.tier_move else None,
                "changed_at": ctx.now,
                "details": {"event_id": i.data.event_id},
            }
            for i in items
        ],
    )
    tenant = ctx.tenant_view()
    for item in items:
        if item.tier_move and item.tier_move.reason != "renewal":
            assert item.context is not None
            change = TierChange(
                item.context.member,
                item.tier_before.code if item.tier_before else None,
                item.tier_move.to.code if item.tier_move.to else None,
                item.tier_move.reason,
            )
            await ctx.hooks.tier_changed(tenant, change, ctx.session)


def _event_row(ctx: PipelineContext, item: _Item) -> dict[str, Any]:
    assert item.member is not None
    outcome = item.outcome = _outcome(ctx, item, simulate=False)
    return {
        "tenant_id": ctx.tenant_id,
        "id": item.event_uuid,
        "event_id": item.data.event_id,
        "type": item.data.type,
        "member_id": item.member.id,
        "occurred_at": item.data.occurred_at,
        "received_at": ctx.now,
        "local_day": item.local_day,
        "amount": item.amount,
        "currency": item.currency,
        "quantity": item.quantity,
        "unit": item.data.unit,
        "attributes": dict(item.data.attributes),
        "status": item.status,
        "status_reason": item.reason,
        "points": outcome["points"],
        "reversed_points": 0,
        "reversed_fraction": Decimal(0),
        "request_hash": item.request_hash,
        "outcome": outcome,
        "original_event_id": item.original.id if item.original is not None else None,
        "decided_by": None,
        "decided_at": None,
    }


def _outcome(ctx: PipelineContext, item: _Item, simulate: bool) -> dict[str, Any]:
    """What the API answers for an event (and stores, so a retry gets the very same answer)."""
    assert item.member is not None
    awards = [
        {
            "source": a.source,
            "reason": a.reason,
            "points": a.points,
            "base": a.base,
            "available_at": a.available_at.isoformat() if a.available_at else None,
        }
        | {k: v for k, v in a.detail.items() if v is not None and k in RULE_AWARD_FIELDS}
        | _plugin_detail(a)
        for a in _all_awards(item, ctx.now)
    ]
    points = sum(a.points for a in _all_awards(item, ctx.now))
    move = item.tier_move
    return {
        "id": str(item.event_uuid),
        "event_id": item.data.event_id,
        "type": item.data.type,
        "member_id": str(item.member.id),
        "occurred_at": item.data.occurred_at.isoformat(),
        "status": item.status,
        "reason": item.reason,
        "points": points if item.status == "awarded" else 0,
        "awards": awards if item.status == "awarded" else [],
        "credits": {k: str(v) for k, v in sorted(item.credits.items())},
        "tier": None
        if move is None
        else {
            "from": item.tier_before.code if item.tier_before else None,
            "to": move.to.code if move.to else None,
            "reason": move.reason,
            "valid_until": move.valid_until.isoformat() if move.valid_until else None,
        },
        "returns": None
        if item.original is None
        else {
            "original_event_id": item.original.event_id,
            "fraction": str(item.reverse_fraction),
        },
        "simulated": simulate,
    }


#: What a rule's award says of itself (listed as fields of each award); anything else an award carries is the
#: plugin's own ``detail`` (eligible amount, rate...), answered under ``detail``.
RULE_AWARD_FIELDS = frozenset({"rule_id", "kind", "capped_from", "campaign_id"})


def _plugin_detail(award: Award) -> dict[str, Any]:
    extra = {k: v for k, v in award.detail.items() if v is not None and k not in RULE_AWARD_FIELDS}
    return {"detail": extra} if extra else {}


def _domain_events(ctx: PipelineContext, item: _Item) -> list[tuple[str, dict[str, Any], uuid.UUID | None]]:
    assert item.member is not None
    member_id = item.member.id
    data = {
        "event_id": item.data.event_id,
        "id": str(item.event_uuid),
        "member_id": str(member_id),
        "type": item.data.type,
        "status": item.status,
    }
    kind = "event.processed" if item.status == "awarded" else f"event.{item.status}"
    out: list[tuple[str, dict[str, Any], uuid.UUID | None]] = [(kind, data, member_id)]
    points = sum(a.points for a in _all_awards(item, ctx.now)) if item.status == "awarded" else 0
    if points:
        out.append(("points.earned", data | {"points": points}, member_id))
    if item.tier_move is not None and item.tier_move.reason != "renewal":
        out.append(
            (
                "tier.changed",
                {
                    "member_id": str(member_id),
                    "from": item.tier_before.code if item.tier_before else None,
                    "to": item.tier_move.to.code if item.tier_move.to else None,
                    "reason": item.tier_move.reason,
                },
                member_id,
            )
        )
    return out


# --- reversal -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReversalResult:
    points_requested: int
    points_removed: int
    written_off: int
    fraction: Decimal
    credits_removed: dict[str, Decimal]
    #: The member's move down when the credits removed were what held their tier (see tiers.rules.on_reversal).
    tier_move: tier_service.PlannedMove | None = None


async def reverse(ctx: PipelineContext, event: Any, fraction: Decimal, *, reason: str) -> ReversalResult:
    """Take back ``fraction`` of what ``event`` earned (points and qualification credits), following the reversal
    policy for points already spent. Cumulative rounding: the parts of several partial reversals add up exactly to
    what a full reversal would remove."""
    session = ctx.session
    locked = (
        await session.execute(
            select(events_table)
            .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == event.id)
            .with_for_update()
        )
    ).one()
    left = Decimal(1) - locked.reversed_fraction
    fraction = min(fraction, left)
    if fraction <= 0:
        raise Conflict("This event has already been reversed in full.", field="event")
    total_fraction = locked.reversed_fraction + fraction
    target = int((locked.points * total_fraction).to_integral_value(rounding="ROUND_FLOOR"))
    if total_fraction >= 1:
        target = locked.points
    remove = target - locked.reversed_points
    entries = (
        await session.execute(
            select(ledger.entries.c.id, ledger.entries.c.points)
            .where(
                ledger.entries.c.tenant_id == ctx.tenant_id,
                ledger.entries.c.cause_type == "event",
                ledger.entries.c.cause_id == str(locked.id),
                ledger.entries.c.kind == "earn",
            )
            .order_by(ledger.entries.c.id)
        )
    ).all()
    removed = written_off = 0
    shares = _split(remove, [e.points for e in entries])
    cause = ledger.Cause("event", id=str(locked.id), reason=reason, actor=ctx.actor)
    for entry, share in zip(entries, shares, strict=True):
        if share <= 0:
            continue
        posted = await ledger.reverse_credit(
            session,
            tenant_id=ctx.tenant_id,
            entry_id=entry.id,
            points=share,
            cause=cause,
            policy=ctx.program.ledger_policy,
            now=ctx.now,
        )
        if posted is not None:
            removed += -posted.points
            written_off += posted.written_off
    credits = credits_to_remove(locked.outcome, fraction, complete=total_fraction >= 1)
    await metrics.add(
        session,
        ctx.tenant_id,
        [(locked.member_id, k, locked.local_day, -v) for k, v in credits.items()]
        + [(locked.member_id, k, locked.local_day, -v) for k, v in _cap_usage_of(locked.outcome, fraction).items()],
    )
    outcome = dict(locked.outcome)
    outcome["reversals"] = [
        *outcome.get("reversals", []),
        {"fraction": str(fraction), "points": remove, "at": ctx.now.isoformat(), "reason": reason},
    ]
    outcome["reversed_points"] = target
    await session.execute(
        update(events_table)
        .where(events_table.c.tenant_id == ctx.tenant_id, events_table.c.id == locked.id)
        .values(reversed_points=target, reversed_fraction=total_fraction, outcome=outcome)
    )
    await emit_many(
        session,
        ctx.tenant_id,
        [
            (
                "event.reversed",
                {
                    "id": str(locked.id),
                    "event_id": locked.event_id,
                    "member_id": str(locked.member_id),
                    "points_removed": remove,
                    "fraction": str(fraction),
                },
                locked.member_id,
            )
        ],
        ctx.now,
    )
    if ctx.program.enabled_plugins:
        hook_ctx = await stored_event_context(ctx, locked)
        await ctx.hooks.event_reversed(
            hook_ctx,
            ReversalView(hook_ctx.event, hook_ctx.member, removed, fraction, credits, Decimal(total_fraction)),
        )
    tier_move = None
    if ctx.config.tiers and any(credits.values()):
        tier_move = await tier_service.after_reversal(
            session,
            ctx.tenant_id,
            ctx.config,
            ctx.program,
            locked.member_id,
            ctx.now,
            hooks=ctx.hooks,
            tenant=ctx.tenant_view(),
            details={"event_id": locked.event_id, "reason": reason},
        )
    return ReversalResult(remove, removed, written_off, fraction, credits, tier_move)


def is_count(credit: str) -> bool:
    """Credits that count events (``events``, ``count:<type>``): a refund of part of a purchase leaves a purchase."""
    return credit == "events" or credit.startswith("count:")


def credits_to_remove(outcome: Mapping[str, Any], fraction: Decimal, *, complete: bool) -> dict[str, Decimal]:
    """What a reversal of ``fraction`` takes back of an event's credits: that share of the quantities (spend, points,
    nights...), and the counts whole with the share that completes the reversal (never a fraction of a count)."""
    credits = (outcome.get("credits") or {}).items()
    return {
        k: (Decimal(v) if complete else Decimal(0)) if is_count(k) else Decimal(v) * fraction
        for k, v in credits
        if not is_count(k) or complete
    }


def _cap_usage_of(outcome: Mapping[str, Any], fraction: Decimal) -> dict[str, Decimal]:
    """The share of each capped rule's points a reversal gives back to the member's cap (``rule:<id>`` buckets)."""
    usage: dict[str, Decimal] = defaultdict(Decimal)
    for award in outcome.get("awards") or ():
        if award.get("rule_id"):
            usage[f"rule:{award['rule_id']}"] += Decimal(award["points"]) * fraction
    return dict(usage)


async def stored_event_context(ctx: PipelineContext, event: Any) -> EventContext:
    """What plugin hooks about a stored event receive (its attributes decoded by its type's schema when it has one);
    ``event`` is an ``Event`` or a row of the events table."""
    member = (await ctx.session.execute(select(Member).where(Member.id == event.member_id))).scalar_one()
    event_type = ctx.plugins.event_types().get(event.type)
    attributes: Any = dict(event.attributes)
    if event_type is not None and event_type.attributes is not None:
        attributes = msgspec.convert(attributes, event_type.attributes)
    view = EventView(
        event.id,
        event.event_id,
        event.type,
        event.occurred_at,
        event.amount,
        event.currency,
        event.quantity,
        event.unit,
        attributes,
        dict(event.attributes),
    )
    return EventContext(ctx.tenant_view(), view, member_view_of(member, ctx.config), ctx.session, ctx.now)


def _split(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` across entries in proportion to their points (largest remainder), never above each entry."""
    whole = sum(weights)
    if whole <= 0 or total <= 0:
        return [0] * len(weights)
    raw = [Decimal(total) * w / whole for w in weights]
    shares = [int(r) for r in raw]
    order = sorted(range(len(weights)), key=lambda i: raw[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return [min(s, w) for s, w in zip(shares, weights, strict=True)]


def member_view_of(member: Member, config: TenantConfig) -> MemberView:
    return member_view(member, config.tiers_by_id.get(member.tier_id) if member.tier_id else None)
