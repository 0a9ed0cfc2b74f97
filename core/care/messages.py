"""From occasions to messages: occasion -> rule -> message, in the caller's transaction.

:func:`raise_occasions` records a batch of occasions (one row per stable key: the same occasion found again is the
same row) and, for each active rule of the occasion's trigger whose audience holds the member, one message (unique
per occasion and rule, so a duplicate trigger never makes a second message). Each message is rendered at once in the
member's language (templates were checked when saved), gets its channel (the rule's first channel the member has an
address for), its validity, and the rule's points (once per occasion, through the ledger). Protection decides at
queuing and again at delivery (:mod:`core.care.delivery`).

Set-based: a few statements per batch whatever its size (occasions, the existing messages, the members with their
tiers and balances, the messages), never a query per member.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import structlog
from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.metrics import count
from core.care.models import CareMessage, CareOccasion, CareRule, CareTemplate
from core.care.policy import Defer, MemberFacts, MessageFacts, ProtectionSettings, Send, Suppress, Verdict, decide
from core.care.protection import load_member_facts, load_protection_settings
from core.care.templates import pick_locale, render, sms_segments
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.ids import new_id
from core.ledger.models import PointBalance
from core.members.models import Member
from core.program.settings import ProgramSettings
from core.tenancy.models import Tenant
from core.tiers.models import Tier

log = structlog.get_logger("fealty.care")

occasions_table = table_of(CareOccasion)
messages_table = table_of(CareMessage)
rules_table = table_of(CareRule)
templates_table = table_of(CareTemplate)
members_table = table_of(Member)
balances_table = table_of(PointBalance)
tiers_table = table_of(Tier)
tenants_table = table_of(Tenant)

#: Occasions per batch: a few statements each (on PostgreSQL one array per column; on SQLite SQLAlchemy splits an
#: executemany under the bound-parameter limit), and what memory holds at once.
BATCH = 2000
#: Set on the session when messages were queued, so the worker's delivery job can be woken after the commit.
QUEUED_KEY = "fealty.care_queued"


@dataclass(frozen=True)
class OccasionIn:
    trigger: str
    key: str
    member_id: uuid.UUID
    occurred_at: datetime
    variables: dict[str, Any] = field(default_factory=dict)
    source: str = "core"


@dataclass(frozen=True)
class RuleView:
    id: uuid.UUID
    name: str
    trigger: str
    params: dict[str, Any]
    tiers: frozenset[str]
    segments: frozenset[str]
    purpose: str
    category: str
    channels: tuple[str, ...]
    valid_for_hours: int | None
    points: int | None
    texts: dict[str, Any]
    default_locale: str


@dataclass(frozen=True)
class ProgramView:
    """What templates see of the program (``program.*``) and what rendering needs."""

    name: str
    currency: str
    timezone: str
    points_name: str

    def variables(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
            "points_name": self.points_name,
        }


@dataclass
class Raised:
    occasions: int = 0
    messages: int = 0


OCCASION_COLUMNS = (
    "tenant_id",
    "id",
    "trigger",
    "key",
    "member_id",
    "source",
    "variables",
    "occurred_at",
    "created_at",
)
MESSAGE_COLUMNS = (
    "tenant_id",
    "id",
    "occasion_id",
    "rule_id",
    "member_id",
    "trigger",
    "channel",
    "purpose",
    "category",
    "locale",
    "address",
    "subject",
    "body",
    "html",
    "segments",
    "state",
    "reason",
    "attempts",
    "provider_message_id",
    "reference",
    "due_at",
    "valid_until",
    "claimed_until",
    "created_at",
    "updated_at",
    "sent_at",
)


# Statements built once per dialect (building one costs more than running it); on PostgreSQL the rows go as one
# array per column (core.db.bulk): one execution whatever their number.
@functools.cache
def _insert_occasions(postgres: bool) -> Any:
    return (
        bulk.insert(postgres, occasions_table, OCCASION_COLUMNS)
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(occasions_table.c.id, occasions_table.c.key)
    )


@functools.cache
def _insert_messages(postgres: bool) -> Any:
    return (
        bulk.insert(postgres, messages_table, MESSAGE_COLUMNS)
        .on_conflict_do_nothing(index_elements=["tenant_id", "occasion_id", "rule_id"])
        .returning(messages_table.c.id)
    )


@functools.cache
def _stored_occasions(postgres: bool) -> Any:
    o = occasions_table
    return select(o.c.id, o.c.key, o.c.member_id, o.c.trigger, o.c.variables, o.c.occurred_at).where(
        o.c.tenant_id == bindparam("o_tenant"), bulk.one_of(o.c.key, "o_keys", postgres)
    )


@functools.cache
def _existing_messages(postgres: bool) -> Any:
    msg = messages_table
    return select(msg.c.occasion_id, msg.c.rule_id).where(
        msg.c.tenant_id == bindparam("e_tenant"), bulk.one_of(msg.c.occasion_id, "e_occasions", postgres)
    )


async def active_rules(
    session: AsyncSession, tenant_id: uuid.UUID, triggers: Sequence[str] | None = None
) -> list[RuleView]:
    query = (
        select(rules_table, templates_table.c.texts, templates_table.c.default_locale)
        .join(
            templates_table,
            and_(
                templates_table.c.tenant_id == rules_table.c.tenant_id,
                templates_table.c.id == rules_table.c.template_id,
            ),
        )
        .where(rules_table.c.tenant_id == tenant_id, rules_table.c.active.is_(True))
        .order_by(rules_table.c.created_at, rules_table.c.id)
    )
    if triggers is not None:
        query = query.where(rules_table.c.trigger.in_(list(triggers)))
    rows = (await session.execute(query)).all()
    return [
        RuleView(
            id=r.id,
            name=r.name,
            trigger=r.trigger,
            params=dict(r.params or {}),
            tiers=frozenset((r.audience or {}).get("tiers") or ()),
            segments=frozenset((r.audience or {}).get("segments") or ()),
            purpose=r.purpose,
            category=r.category,
            channels=tuple(r.channels or ()),
            valid_for_hours=r.valid_for_hours,
            points=r.points,
            texts=dict(r.texts or {}),
            default_locale=r.default_locale,
        )
        for r in rows
    ]


async def load_program(session: AsyncSession, tenant_id: uuid.UUID) -> ProgramSettings:
    from core.program.models import Program

    programs = table_of(Program)
    row = (await session.execute(select(programs).where(programs.c.tenant_id == tenant_id))).one()
    return ProgramSettings.from_mapping(row._mapping)


async def program_view(session: AsyncSession, tenant_id: uuid.UUID, program: ProgramSettings) -> ProgramView:
    name = (await session.execute(select(tenants_table.c.name).where(tenants_table.c.id == tenant_id))).scalar_one()
    return ProgramView(str(name), program.currency, program.timezone, program.points_name)


@dataclass(frozen=True)
class MemberRow:
    id: uuid.UUID
    external_id: str
    name: str | None
    email: str | None
    phone: str | None
    birthday: Any
    timezone: str | None
    locale: str | None
    status: str
    attributes: dict[str, Any]
    created_at: datetime
    last_activity_at: datetime | None
    tier: str | None
    tier_rank: int | None
    tier_id: uuid.UUID | None
    points: int

    def variables(self, zone: str) -> dict[str, Any]:
        first = (self.name or "").split(" ")[0] or None
        return {
            "id": str(self.id),
            "external_id": self.external_id,
            "name": self.name,
            "first_name": first,
            "email": self.email,
            "phone": self.phone,
            "birthday": self.birthday.isoformat() if self.birthday else None,
            "timezone": zone,
            "locale": self.locale,
            "tier": self.tier,
            "points": self.points,
            "enrolled_at": self.created_at.isoformat(),
            "attributes": dict(self.attributes or {}),
        }


@functools.cache
def _members_query(postgres: bool) -> Any:
    m, b, t = members_table, balances_table, tiers_table
    return (
        select(
            m.c.id,
            m.c.external_id,
            m.c.name,
            m.c.email,
            m.c.phone,
            m.c.birthday,
            m.c.timezone,
            m.c.locale,
            m.c.status,
            m.c.attributes,
            m.c.created_at,
            m.c.tier_id,
            b.c.available,
            b.c.last_activity_at,
            t.c.code,
            t.c.rank,
        )
        .outerjoin(b, and_(b.c.tenant_id == m.c.tenant_id, b.c.member_id == m.c.id))
        .outerjoin(t, and_(t.c.tenant_id == m.c.tenant_id, t.c.id == m.c.tier_id))
        .where(m.c.tenant_id == bindparam("m_tenant"), bulk.one_of(m.c.id, "m_ids", postgres))
    )


async def load_members(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MemberRow]:
    found: dict[uuid.UUID, MemberRow] = {}
    ids = list(dict.fromkeys(member_ids))
    query = _members_query(bulk.is_postgres(session))
    for start in range(0, len(ids), BATCH):
        parameters = {"m_tenant": tenant_id, "m_ids": ids[start : start + BATCH]}
        for r in (await session.execute(query, parameters)).all():
            found[r.id] = MemberRow(
                r.id,
                r.external_id,
                r.name,
                r.email,
                r.phone,
                r.birthday,
                r.timezone,
                r.locale,
                r.status,
                dict(r.attributes or {}),
                r.created_at,
                r.last_activity_at,
                r.code,
                r.rank,
                r.tier_id,
                int(r.available or 0),
            )
    return found


def mask(address: str | None, channel: str) -> str | None:
    """``a***@example.com``, ``+44*******123``: enough to recognise, not to use."""
    if not address or channel == "webhook":
        return address
    if channel == "email" and "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{address[:3]}{'*' * max(0, len(address) - 6)}{address[-3:]}" if len(address) > 6 else "***"


def address_for(member: MemberRow, channel: str) -> str | None:
    if channel == "email":
        return member.email
    if channel == "sms":
        return member.phone
    if channel == "webhook":
        return "webhook"
    return None


async def _segments_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    members: Sequence[MemberRow],
    wanted: set[str],
    program: ProgramSettings,
    now: datetime,
) -> dict[uuid.UUID, set[str]]:
    """The segments (among ``wanted``) each member is in now (core's segment rules, evaluated for the batch)."""
    from core.program.config import load_config
    from core.program.models import Program
    from core.qualification import service as metrics
    from core.segments.service import member_facts, metric_windows, segments_of

    version = (await session.execute(select(Program.config_version))).scalar_one()
    config = await load_config(session, version)
    specs = [s for s in config.segments if s.code in wanted]
    if not specs:
        return {}
    today = metrics.local_day(now, program.tz)
    sums = await metrics.sums(session, tenant_id, [m.id for m in members], metric_windows(specs), today)
    result: dict[uuid.UUID, set[str]] = {}
    for member in members:
        tier = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
        facts = member_facts(
            member,
            tier=tier,
            last_activity_at=member.last_activity_at,
            now=now,
            sums=sums.get(member.id, {}),
        )
        result[member.id] = segments_of(specs, facts)
    return result


async def raise_occasions(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    occasions: Sequence[OccasionIn],
    *,
    program: ProgramSettings | None = None,
    rules: Sequence[RuleView] | None = None,
    now: datetime | None = None,
    queuing: Queuing | None = None,
) -> Raised:
    """Record ``occasions`` (once per key) and queue their messages for the active ``rules`` (loaded when None).
    ``queuing``: the program's view, protections and holidays when the caller loaded them already (once for many
    calls)."""
    now = now or utcnow()
    raised = Raised()
    if not occasions:
        return raised
    if rules is None:
        rules = await active_rules(session, tenant_id, sorted({o.trigger for o in occasions}))
    if rules and program is None:
        program = await load_program(session, tenant_id)
    for start in range(0, len(occasions), BATCH):
        batch = list({o.key: o for o in occasions[start : start + BATCH]}.values())
        rows = [
            {
                "tenant_id": tenant_id,
                "id": new_id(),
                "trigger": o.trigger,
                "key": o.key,
                "member_id": o.member_id,
                "source": o.source,
                "variables": o.variables,
                "occurred_at": o.occurred_at,
                "created_at": now,
            }
            for o in batch
        ]
        statement = _insert_occasions(bulk.is_postgres(session))
        params = bulk.params(session, occasions_table, OCCASION_COLUMNS, rows)
        inserted = {r.key: r.id for r in (await session.execute(statement, params)).all()}
        raised.occasions += len(inserted)
        if rules and program is not None:
            if queuing is None:
                queuing = await load_queuing(session, tenant_id, program, now)
            raised.messages += await _queue_messages(session, tenant_id, batch, inserted, rules, queuing, now)
    return raised


class StoredOccasion(NamedTuple):
    """An occasion as :func:`_queue_messages` reads it (from the database, or as just recorded)."""

    id: uuid.UUID
    key: str
    member_id: uuid.UUID
    trigger: str
    variables: dict[str, Any]
    occurred_at: datetime


def _as_stored(variables: dict[str, Any]) -> dict[str, Any]:
    """``variables`` as the JSON column gives them back (dates as ISO text, tuples as lists, ...), so a message renders
    the same whether its occasion was just recorded or read back."""
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(variables or {}))
    return decoded


@dataclass(frozen=True)
class Queuing:
    """What queuing needs whatever the members: loaded once per :func:`raise_occasions`, not once per batch."""

    program: ProgramSettings
    view: ProgramView
    settings: ProtectionSettings
    holidays: tuple[date, ...]


#: Where a transaction keeps its :class:`Queuing` (a plugin telling 100,000 accounts calls in chunks, at one ``now``).
QUEUING_KEY = "fealty.care_queuing"


async def load_queuing(session: AsyncSession, tenant_id: uuid.UUID, program: ProgramSettings, now: datetime) -> Queuing:
    """The :class:`Queuing` of ``tenant_id`` at ``now`` (read once per transaction and ``now``)."""
    from core.care.calendar import holidays_in

    cached = session.info.get(QUEUING_KEY)
    if cached is not None and cached[0] == (tenant_id, now) and cached[1].program == program:
        found: Queuing = cached[1]
        return found
    years = {(now + timedelta(days=d)).year for d in (-1, 0, 45)}
    days = tuple(h.day for h in await holidays_in(session, tenant_id, years, program.country))
    settings = await load_protection_settings(session)
    queuing = Queuing(program, await program_view(session, tenant_id, program), settings, days)
    session.info[QUEUING_KEY] = ((tenant_id, now), queuing)
    return queuing


async def _queue_messages(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    batch: Sequence[OccasionIn],
    inserted: dict[str, uuid.UUID],
    rules: Sequence[RuleView],
    queuing: Queuing,
    now: datetime,
) -> int:
    """Queue the messages of ``batch``'s occasions; ``inserted``: the keys this transaction just recorded, with their
    ids. Those are known (what was given, as the database returns it) and can have no message yet; only occasions
    recorded before are read back and their messages looked for. (Reading back fresh rows by key cost PostgreSQL a
    scan per batch: right after a bulk load its statistics see an empty table and plan accordingly.)"""
    msg = messages_table
    program, view = queuing.program, queuing.view
    postgres = bulk.is_postgres(session)
    stored: list[Any] = [
        StoredOccasion(inserted[x.key], x.key, x.member_id, x.trigger, _as_stored(x.variables), x.occurred_at)
        for x in batch
        if x.key in inserted
    ]
    earlier = [x.key for x in batch if x.key not in inserted]
    if earlier:
        found = await session.execute(_stored_occasions(postgres), {"o_tenant": tenant_id, "o_keys": earlier})
        stored.extend(found.all())
    by_trigger: dict[str, list[RuleView]] = {}
    for rule in rules:
        by_trigger.setdefault(rule.trigger, []).append(rule)
    pairs = [(row, rule) for row in stored for rule in by_trigger.get(row.trigger, ())]
    if not pairs:
        return 0
    fresh = set(inserted.values())
    looked_for = [row.id for row in stored if row.id not in fresh]
    if looked_for:
        parameters = {"e_tenant": tenant_id, "e_occasions": looked_for}
        existing = set((await session.execute(_existing_messages(postgres), parameters)).all())
        pairs = [(row, rule) for row, rule in pairs if (row.id, rule.id) not in existing]
    if not pairs:
        return 0
    members = await load_members(session, tenant_id, [row.member_id for row, _ in pairs])
    wanted_segments = {s for _, rule in pairs for s in rule.segments}
    segments: dict[uuid.UUID, set[str]] = {}
    if wanted_segments:
        segments = await _segments_of(session, tenant_id, list(members.values()), wanted_segments, program, now)
    protection = await load_protection(
        session, tenant_id, list(members), {c for _, rule in pairs for c in rule.channels}, queuing, now
    )
    rows: list[dict[str, Any]] = []
    credits: list[tuple[uuid.UUID, uuid.UUID, RuleView]] = []
    for occasion, rule in pairs:
        member = members.get(occasion.member_id)
        if member is None or member.status != "active":
            continue
        if rule.tiers and member.tier not in rule.tiers:
            continue
        if rule.segments and not rule.segments & segments.get(member.id, set()):
            continue
        row = build_message(tenant_id, occasion, rule, member, view, now, protection)
        rows.append(row)
        if rule.points and row["state"] != "failed":
            credits.append((row["id"], member.id, rule))
    if not rows:
        return 0
    written = await session.execute(_insert_messages(postgres), bulk.params(session, msg, MESSAGE_COLUMNS, rows))
    created = {r.id for r in written.all()}
    count((row["state"], row["channel"]) for row in rows if row["id"] in created)
    for message_id, member_id, rule in credits:
        if message_id in created and rule.points:
            from core.ledger.plugin_points import credit_points

            await credit_points(
                session,
                tenant_id=tenant_id,
                member_id=member_id,
                points=rule.points,
                plugin="care",
                reason=f"Care: {rule.name}",
                reference=f"care:{message_id}",
                now=now,
            )
    if created:
        session.info.setdefault(QUEUED_KEY, set()).add(tenant_id)
    return len(created)


#: Reasons that concern one channel only: the next channel of the rule is tried.
CHANNEL_REASONS = frozenset({"no_address", "no_consent", "opted_out", "address_suppressed"})


@dataclass(frozen=True)
class Protection:
    """What the policy needs at queuing: the tenant's settings and each channel's facts for the batch."""

    settings: ProtectionSettings
    facts: dict[str, dict[uuid.UUID, MemberFacts]]

    def verdict(self, channel: str, member_id: uuid.UUID, facts: MessageFacts, now: datetime) -> Verdict:
        member = self.facts.get(channel, {}).get(member_id)
        if member is None:
            return Suppress("member_inactive")
        return decide(facts, member, self.settings, now)


async def load_protection(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
    channels: set[str],
    queuing: Queuing,
    now: datetime,
) -> Protection:
    facts = {
        channel: await load_member_facts(session, tenant_id, member_ids, channel, now, holidays=queuing.holidays)
        for channel in sorted(channels)
    }
    return Protection(queuing.settings, facts)


def choose_channel(
    rule: RuleView,
    member: MemberRow,
    trigger: str,
    valid_until: datetime | None,
    protection: Protection | None,
    now: datetime,
) -> tuple[str, str | None, Verdict]:
    """The rule's first channel the member can be reached on now or later; else the first, with why not."""
    first: tuple[str, str | None, Verdict] | None = None
    for channel in rule.channels:
        address = address_for(member, channel)
        verdict: Verdict
        if address is None:
            verdict = Suppress("no_address")
        elif protection is None:
            verdict = Send()
        else:
            facts = MessageFacts(channel, rule.purpose, rule.category, valid_until, trigger)
            verdict = protection.verdict(channel, member.id, facts, now)
        if not (isinstance(verdict, Suppress) and verdict.reason in CHANNEL_REASONS):
            return channel, address, verdict
        first = first or (channel, address, verdict)
    assert first is not None
    return first


def build_message(
    tenant_id: uuid.UUID,
    occasion: Any,
    rule: RuleView,
    member: MemberRow,
    program: ProgramView,
    now: datetime,
    protection: Protection | None = None,
) -> dict[str, Any]:
    """The message row for ``occasion`` under ``rule``: its channel chosen, protected, rendered."""
    zone = member.timezone or program.timezone
    valid_until = occasion.occurred_at + timedelta(hours=rule.valid_for_hours) if rule.valid_for_hours else None
    channel, address, verdict = choose_channel(rule, member, occasion.trigger, valid_until, protection, now)
    locale = pick_locale(rule.texts, member.locale, rule.default_locale)
    variables = {
        "member": member.variables(zone),
        "program": program.variables(),
        **dict(occasion.variables or {}),
    }
    message_id = new_id()
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "id": message_id,
        "occasion_id": occasion.id,
        "rule_id": rule.id,
        "member_id": member.id,
        "trigger": occasion.trigger,
        "channel": channel,
        "purpose": rule.purpose,
        "category": rule.category,
        "locale": locale,
        "address": address,
        "subject": None,
        "body": "",
        "html": None,
        "segments": None,
        "state": "queued",
        "reason": None,
        "attempts": 0,
        "provider_message_id": None,
        "reference": f"care-{message_id}",
        "due_at": now,
        "valid_until": valid_until,
        "claimed_until": None,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
    }
    try:
        rendered = render(
            rule.texts,
            locale,
            variables,
            currency=program.currency,
            zone=zone,
            marketing_sms=channel == "sms" and rule.purpose == "marketing",
        )
    except Exception as exc:  # a plugin's occasion without a variable its trigger declares
        log.warning("care_render_failed", rule_id=str(rule.id), trigger=occasion.trigger, error=type(exc).__name__)
        row.update(state="failed", reason="render_failed", body=str(exc)[:500])
        return row
    if channel == "sms":
        row.update(body=rendered.sms, segments=sms_segments(rendered.sms)[1])
    else:
        row.update(subject=(rendered.subject or "")[:500] or None, body=rendered.body, html=rendered.html)
    if isinstance(verdict, Suppress):
        row.update(state="suppressed", reason=verdict.reason)
    elif isinstance(verdict, Defer):
        row.update(state="deferred", reason=verdict.reason, due_at=verdict.until)
    return row


def queued_tenants(session: AsyncSession) -> set[uuid.UUID]:
    """Tenants that got new messages in ``session`` (pop), to wake their delivery after the commit."""
    found: set[uuid.UUID] = session.info.pop(QUEUED_KEY, set())
    return found
