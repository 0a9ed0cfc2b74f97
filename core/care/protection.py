"""The I/O around the protection policy: the facts for a batch of members, the tenant's protection settings, and
reserving a send so that caps hold when several workers deliver at once.

* :func:`load_member_facts` -- :class:`~core.care.policy.MemberFacts` for a whole batch in four queries (members with
  the program's time zone, consents, suppressions, recent tallies), whatever the batch size: no query per member.
* :func:`reserve` / :func:`reserve_send` -- at delivery, under the member's lock row, decide again on fresh facts
  and, when the answer is send, count the send on the member's local day. Two workers delivering to one member
  take the lock in turn, so the second sees the first's send: never two sends where the cap allows one.
* :func:`release_send` -- give the slot back when the provider refused the message for good.
* :func:`load_protection_settings` -- the tenant's :class:`~core.care.policy.ProtectionSettings`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.policy import MemberFacts, MessageFacts, ProtectionSettings, Send, Suppress, Verdict, decide
from core.care.protection_models import CareSendLock, CareSendTally, CareSettings, CareSuppression
from core.db.base import table_of
from core.members.models import Member, MemberConsent
from core.plugin.manager import plugins_of
from core.plugin.types import CareProtectionContext
from core.program.models import Program
from core.program.settings import load_program_settings

tallies = table_of(CareSendTally)
locks = table_of(CareSendLock)

#: Channels whose consent and opt-outs live in the member's consent history (a webhook goes to the tenant).
CONSENT_CHANNELS = frozenset({"email", "sms"})
#: The protection keys a tenant may set (``PATCH /v1/care/settings``), with their defaults.
PROTECTION_KEYS = ("quiet_hours", "greeting_hours", "marketing_per_day", "marketing_per_7_days", "marketing_per_month")


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def address_of(channel: str, email: str | None, phone: str | None) -> str | None:
    """The member's address on ``channel``, in the suppression list's canonical form."""
    if channel == "email":
        return email.lower() if email else None
    if channel == "sms":
        return phone or None
    return None


def _first_day_needed(now: datetime) -> date:
    """The oldest local day any rule reads (month start, 7 days back), for any zone (UTC-12..+14)."""
    earliest_local = (now - timedelta(days=1)).date()
    return min(earliest_local.replace(day=1), earliest_local - timedelta(days=7))


async def load_member_facts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
    channel: str,
    now: datetime,
    *,
    holidays: Collection[date] = (),
) -> dict[uuid.UUID, MemberFacts]:
    """The facts :func:`~core.care.policy.decide` needs for each member in ``member_ids`` (unknown ids are left
    out), for messages on ``channel``. ``holidays``: the tenant's holiday dates around now (the care calendar)."""
    ids = list(dict.fromkeys(member_ids))
    if not ids:
        return {}
    members = (
        await session.execute(
            select(Member.id, Member.timezone, Member.status, Member.email, Member.phone, Program.timezone)
            .join(Program, Program.tenant_id == Member.tenant_id, isouter=True)
            .where(Member.tenant_id == tenant_id, Member.id.in_(ids))
        )
    ).all()
    if not members:
        return {}
    consents: dict[uuid.UUID, dict[tuple[str, str], bool]] = {m.id: {} for m in members}
    if channel in CONSENT_CHANNELS:
        rows = await session.execute(
            select(MemberConsent.member_id, MemberConsent.channel, MemberConsent.purpose, MemberConsent.granted).where(
                MemberConsent.tenant_id == tenant_id,
                MemberConsent.member_id.in_(ids),
                MemberConsent.channel == channel,
            )
        )
        for row in rows:
            consents[row.member_id][(row.channel, row.purpose)] = row.granted
    addresses = {m.id: address_of(channel, m.email, m.phone) for m in members}
    suppressed: set[str] = set()
    wanted = {a for a in addresses.values() if a}
    if wanted and channel in CONSENT_CHANNELS:
        suppressed = set(
            (
                await session.execute(
                    select(CareSuppression.address).where(
                        CareSuppression.tenant_id == tenant_id,
                        CareSuppression.channel == channel,
                        CareSuppression.address.in_(wanted),
                    )
                )
            ).scalars()
        )
    sent: dict[uuid.UUID, dict[tuple[date, str, str], int]] = {m.id: {} for m in members}
    rows = await session.execute(
        select(
            CareSendTally.member_id,
            CareSendTally.day,
            CareSendTally.purpose,
            CareSendTally.category,
            CareSendTally.sent,
        ).where(
            CareSendTally.tenant_id == tenant_id,
            CareSendTally.member_id.in_(ids),
            CareSendTally.day >= _first_day_needed(now),
        )
    )
    for row in rows:
        sent[row.member_id][(row.day, row.purpose, row.category)] = row.sent
    holiday_set = frozenset(holidays)
    facts = {}
    for m in members:
        member_consents = consents[m.id]
        address = addresses[m.id]
        facts[m.id] = MemberFacts(
            timezone=_zone_name(m[1], m[5]),
            consents=member_consents,
            opted_out_channels=frozenset(
                ch for (ch, purpose), granted in member_consents.items() if purpose == "service" and not granted
            ),
            suppressed=address is not None and address in suppressed,
            has_address=channel not in CONSENT_CHANNELS or address is not None,
            active=m.status == "active",
            sent=sent[m.id],
            holidays=holiday_set,
        )
    return facts


def _zone_name(member_zone: str | None, program_zone: str | None) -> str:
    for name in (member_zone, program_zone):
        if name:
            try:
                ZoneInfo(name)
            except (KeyError, ValueError):
                continue
            return name
    return "UTC"


async def _count(
    session: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID, key: tuple[date, str, str], by: int
) -> None:
    day, purpose, category = key
    insert = _insert(session)
    statement = insert(tallies).values(
        tenant_id=tenant_id, member_id=member_id, day=day, purpose=purpose, category=category, sent=max(by, 0)
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "member_id", "day", "purpose", "category"],
            set_={"sent": tallies.c.sent + by},
            where=(tallies.c.sent + by) >= 0,
        )
    )


_PROGRAM_KEY = "fealty.care.program"


async def plugin_verdicts(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    message: MessageFacts,
    facts: MemberFacts,
    now: datetime,
) -> tuple[Verdict, ...]:
    """What the tenant's enabled plugins answer through ``fealty_care_protection`` (nothing when none implements
    it; the program is read once per session)."""
    manager = plugins_of(session)
    if manager is None or not manager.for_tenant(frozenset(manager.available())).implements("fealty_care_protection"):
        return ()
    program = session.info.get(_PROGRAM_KEY)
    if program is None:
        program = session.info[_PROGRAM_KEY] = await load_program_settings(session, tenant_id)
    hooks = program.hooks(manager)
    if not hooks.implements("fealty_care_protection"):
        return ()
    tenant = program.tenant_view(tenant_id, manager)
    ctx = CareProtectionContext(
        tenant=tenant,
        session=session,
        now=now,
        services=manager.services(session, tenant, now),
        member_id=member_id,
        message=message,
        facts=facts,
    )
    verdicts: tuple[Verdict, ...] = await hooks.care_protection(ctx)
    return verdicts


async def _lock_members(
    session: AsyncSession, tenant_id: uuid.UUID, member_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Take the members' reservation locks, in id order so that two workers never wait on each other in a cycle (a
    row lock on PostgreSQL; SQLite has one writer at a time, and the first write takes it)."""
    insert = _insert(session)
    await session.execute(
        insert(locks)
        .values([{"tenant_id": tenant_id, "member_id": m, "updated_at": now} for m in member_ids])
        .on_conflict_do_nothing(index_elements=["tenant_id", "member_id"])
    )
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(locks.c.member_id)
            .where(locks.c.tenant_id == tenant_id, locks.c.member_id.in_(member_ids))
            .order_by(locks.c.member_id)
            .with_for_update()
        )
    else:
        await session.execute(
            update(locks)
            .where(locks.c.tenant_id == tenant_id, locks.c.member_id.in_(member_ids))
            .values(updated_at=now)
        )


async def reserve_many(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    messages: Sequence[tuple[uuid.UUID, MessageFacts]],
    settings: ProtectionSettings,
    now: datetime,
    holidays: Collection[date] = (),
) -> list[Verdict]:
    """:func:`reserve` for a batch of ``(member_id, message)`` at once, answers in the same order: the members'
    locks in one statement, the facts set-based (per channel), the sends counted in one statement. Messages to one
    member are decided in the given order, each seeing the sends granted before it in the batch."""
    if not messages:
        return []
    member_ids = sorted({member_id for member_id, _ in messages})
    await _lock_members(session, tenant_id, member_ids, now)
    facts_by_channel: dict[str, dict[uuid.UUID, MemberFacts]] = {}
    for channel in sorted({message.channel for _, message in messages}):
        wanted = sorted({m for m, message in messages if message.channel == channel})
        facts_by_channel[channel] = await load_member_facts(session, tenant_id, wanted, channel, now, holidays=holidays)
    granted: dict[tuple[uuid.UUID, date, str, str], int] = {}
    verdicts: list[Verdict] = []
    for member_id, message in messages:
        facts = facts_by_channel[message.channel].get(member_id)
        if facts is None:
            verdicts.append(Suppress("member_inactive", detail="no such member"))
            continue
        mine = {(d, p, c): n for (m, d, p, c), n in granted.items() if m == member_id}
        if mine:
            sent = dict(facts.sent)
            for day_key, n in mine.items():
                sent[day_key] = sent.get(day_key, 0) + n
            facts = replace(facts, sent=sent)
        from_plugins = await plugin_verdicts(
            session, tenant_id=tenant_id, member_id=member_id, message=message, facts=facts, now=now
        )
        if from_plugins:
            message = replace(message, plugin_verdicts=(*message.plugin_verdicts, *from_plugins))
        verdict = decide(message, facts, settings, now)
        if isinstance(verdict, Send):
            key = (member_id, now.astimezone(facts.zone).date(), message.purpose, message.category)
            granted[key] = granted.get(key, 0) + 1
        verdicts.append(verdict)
    if granted:
        insert = _insert(session)
        statement = insert(tallies).values(
            [
                {"tenant_id": tenant_id, "member_id": m, "day": d, "purpose": p, "category": c, "sent": n}
                for (m, d, p, c), n in sorted(granted.items())
            ]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "member_id", "day", "purpose", "category"],
                set_={"sent": tallies.c.sent + statement.excluded.sent},
            )
        )
    return verdicts


async def reserve(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    message: MessageFacts,
    settings: ProtectionSettings,
    now: datetime,
    holidays: Collection[date] = (),
) -> Verdict:
    """Decide again for one message at delivery, under the member's lock and on fresh facts (plugins'
    ``fealty_care_protection`` answers included); when the answer is :class:`~core.care.policy.Send`, the send is
    counted on the member's local day in the same transaction (so it holds only if that transaction commits). Other
    answers reserve nothing. :func:`reserve_many` does the same for a batch."""
    [verdict] = await reserve_many(
        session, tenant_id=tenant_id, messages=[(member_id, message)], settings=settings, now=now, holidays=holidays
    )
    return verdict


async def reserve_send(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    message: MessageFacts,
    settings: ProtectionSettings,
    now: datetime,
    holidays: Collection[date] = (),
) -> bool:
    """True when this message may go now and its send was counted (see :func:`reserve`)."""
    verdict = await reserve(
        session,
        tenant_id=tenant_id,
        member_id=member_id,
        message=message,
        settings=settings,
        now=now,
        holidays=holidays,
    )
    return isinstance(verdict, Send)


async def release_send(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    message: MessageFacts,
    reserved_at: datetime,
) -> None:
    """Give back a send counted by :func:`reserve` at ``reserved_at`` (the provider refused it for good)."""
    await _lock_members(session, tenant_id, [member_id], reserved_at)
    row = (
        await session.execute(
            select(Member.timezone, Program.timezone)
            .join(Program, Program.tenant_id == Member.tenant_id, isouter=True)
            .where(Member.tenant_id == tenant_id, Member.id == member_id)
        )
    ).first()
    zone = ZoneInfo(_zone_name(row[0], row[1]) if row is not None else "UTC")
    day = reserved_at.astimezone(zone).date()
    await _count(session, tenant_id, member_id, (day, message.purpose, message.category), -1)


# --- the tenant's settings --------------------------------------------------------------------------------------------


def _hhmm(value: Any) -> time:
    return time.fromisoformat(str(value))


def protection_from(overrides: Mapping[str, Any]) -> ProtectionSettings:
    """The tenant's protections: the defaults with the stored overrides applied (``None``: that protection off)."""
    settings = ProtectionSettings()
    changes: dict[str, Any] = {}
    for key in ("quiet_hours", "greeting_hours"):
        if key in overrides:
            window = overrides[key]
            changes[key] = None if window is None else (_hhmm(window[0]), _hhmm(window[1]))
    for key in ("marketing_per_day", "marketing_per_7_days", "marketing_per_month"):
        if key in overrides:
            changes[key] = None if overrides[key] is None else int(overrides[key])
    return replace(settings, **changes)


def protection_as_dict(settings: ProtectionSettings) -> dict[str, Any]:
    """The effective protections, as the API shows them."""

    def window(value: tuple[time, time] | None) -> list[str] | None:
        return None if value is None else [value[0].strftime("%H:%M"), value[1].strftime("%H:%M")]

    return {
        "quiet_hours": window(settings.quiet_hours),
        "greeting_hours": window(settings.greeting_hours),
        "marketing_per_day": settings.marketing_per_day,
        "marketing_per_7_days": settings.marketing_per_7_days,
        "marketing_per_month": settings.marketing_per_month,
    }


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a tenant's care messages come from."""

    email_from: str | None = None
    email_reply_to: str | None = None
    sms_sender_id: str | None = None


async def load_care_settings(session: AsyncSession) -> tuple[Sender, ProtectionSettings]:
    """The current tenant's sender and protections (defaults when the tenant never set them)."""
    row = (await session.execute(select(CareSettings))).scalar_one_or_none()
    if row is None:
        return Sender(), ProtectionSettings()
    return Sender(row.email_from, row.email_reply_to, row.sms_sender_id), protection_from(row.protection)


async def load_protection_settings(session: AsyncSession) -> ProtectionSettings:
    return (await load_care_settings(session))[1]


async def load_sender(session: AsyncSession) -> Sender:
    return (await load_care_settings(session))[0]
