"""Members: enrolment, lookup, update, consents and anonymisation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.db.lookup import one_or_404
from core.errors import AlreadyExists, Conflict, ValidationFailed
from core.ids import new_id
from core.ledger.service import open_balance
from core.members.models import ConsentChange, Member, MemberConsent
from core.members.views import member_view
from core.outbox.service import emit
from core.plugin.manager import PluginManager
from core.program.config import TenantConfig
from core.program.settings import ProgramSettings
from core.tiers import rules as tier_rules
from core.tiers.service import PlannedMove, apply_moves


@dataclass(frozen=True, slots=True)
class ConsentUpdate:
    channel: str
    purpose: str
    granted: bool
    source: str = "api"


@dataclass(slots=True)
class MemberFields:
    """Personal fields as given by a client, before normalisation."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    card: str | None = None
    birthday: date | None = None
    timezone: str | None = None
    locale: str | None = None


def normalise(fields: dict[str, Any], program: ProgramSettings, today: date) -> dict[str, Any]:
    """Canonical forms of the personal fields present in ``fields`` (absent ones are left out)."""
    out = dict(fields)
    if out.get("email"):
        out["email"] = validation.email(out["email"])
    if out.get("phone"):
        out["phone"] = validation.phone(out["phone"], program.country)
    if out.get("timezone"):
        out["timezone"] = validation.time_zone(out["timezone"])
    if out.get("locale"):
        out["locale"] = validation.locale(out["locale"])
    birthday = out.get("birthday")
    if birthday is not None and not date(1900, 1, 1) <= birthday <= today:
        raise ValidationFailed("birthday must be a date between 1900-01-01 and today.", field="birthday")
    for name in ("email", "phone", "card", "name", "timezone", "locale"):
        if name in out and out[name] == "":
            out[name] = None
    return out


def _unique_field(exc: IntegrityError) -> str | None:
    text = str(exc.orig)
    for name in ("external_id", "card"):
        if name in text:
            return name
    return None


async def _check_unique(
    session: AsyncSession, *, external_id: str | None, card: str | None, exclude: uuid.UUID | None = None
) -> None:
    for field, value in (("external_id", external_id), ("card", card)):
        if value is None:
            continue
        query = select(Member.id).where(getattr(Member, field) == value)
        if exclude is not None:
            query = query.where(Member.id != exclude)
        if (await session.execute(query)).first() is not None:
            raise AlreadyExists(f"Another member already has this {field}.", field=field)


async def flush_unique(session: AsyncSession) -> None:
    """Flush, turning a lost race on a unique key into a clear 409 naming the field."""
    try:
        await session.flush()
    except IntegrityError as exc:
        field = _unique_field(exc)
        raise AlreadyExists(f"Another member already has this {field or 'identifier'}.", field=field) from None


async def enrol(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    external_id: str,
    fields: dict[str, Any],
    attributes: dict[str, Any],
    consents: Sequence[ConsentUpdate],
    now: datetime,
    active_since: datetime | None = None,
) -> Member:
    """A new member and its balance. ``active_since``: the time of the activity that enrols the member (an event),
    where its inactivity clock starts; by default the enrolment itself."""
    await _check_unique(session, external_id=external_id, card=fields.get("card"))
    member = Member(
        tenant_id=tenant_id,
        id=new_id(),
        external_id=external_id,
        status="active",
        attributes=attributes,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(member)
    await flush_unique(session)
    await open_balance(session, tenant_id, member.id, now, active_since=active_since)
    await set_consents(session, member, consents, now)
    return member


async def enrol_member(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    program: ProgramSettings,
    config: TenantConfig,
    plugins: PluginManager,
    external_id: str,
    fields: dict[str, Any],
    attributes: dict[str, Any],
    consents: Sequence[ConsentUpdate],
    now: datetime,
    entry_tier: bool = True,
    active_since: datetime | None = None,
) -> Member:
    """The enrolment use case, whoever enrols (``POST /v1/members``, or auto-enrolment on a first event): the member
    (:func:`enrol`), then :func:`welcome`. ``entry_tier=False``: the caller places the member in a tier itself (the
    event pipeline does, with the first event, and answers that move in the event's outcome). ``active_since``: see
    :func:`enrol`."""
    member = await enrol(
        session,
        tenant_id=tenant_id,
        external_id=external_id,
        fields=fields,
        attributes=attributes,
        consents=consents,
        now=now,
        active_since=active_since,
    )
    await welcome(
        session,
        tenant_id=tenant_id,
        program=program,
        config=config,
        plugins=plugins,
        member=member,
        now=now,
        entry_tier=entry_tier,
    )
    return member


async def welcome(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    program: ProgramSettings,
    config: TenantConfig,
    plugins: PluginManager,
    member: Member,
    now: datetime,
    entry_tier: bool = True,
) -> None:
    """What follows every enrolment: the entry tier (if the program has tiers, unless ``entry_tier`` is false), the
    ``member.enrolled`` outbox event (webhooks), then the enabled plugins' ``fealty_member_enrolled``."""
    tiers = config.tiers if entry_tier else ()
    move = tier_rules.on_activity(tiers, None, None, {}, now, program.tz) if tiers else None
    if move is not None:
        await apply_moves(session, tenant_id, [PlannedMove(member.id, member.external_id, None, move)], now)
        await session.refresh(member)
    data = {"member_id": str(member.id), "external_id": member.external_id}
    await emit(session, tenant_id, "member.enrolled", data, member.id)
    tier = config.tiers_by_id.get(member.tier_id) if member.tier_id else None
    hooks, tenant = program.hooks(plugins), program.tenant_view(tenant_id, plugins)
    await hooks.member_enrolled(tenant, member_view(member, tier), session, now)


async def get_member(session: AsyncSession, member_id: uuid.UUID, *, for_update: bool = False) -> Member:
    query = select(Member).where(Member.id == member_id)
    if for_update:
        query = query.with_for_update()
    member = await one_or_404(session, query, "No such member.", field="member_id")
    return member


def ensure_active(member: Member) -> None:
    if member.status == "anonymized":
        raise Conflict("This member has been anonymized; it can no longer change.", field="member_id")


async def update_member(
    session: AsyncSession,
    member: Member,
    *,
    fields: dict[str, Any],
    attributes: dict[str, Any] | None,
    consents: Sequence[ConsentUpdate],
    now: datetime,
) -> Member:
    ensure_active(member)
    if "external_id" in fields or "card" in fields:
        await _check_unique(session, external_id=fields.get("external_id"), card=fields.get("card"), exclude=member.id)
    for name, value in fields.items():
        setattr(member, name, value)
    if attributes is not None:
        member.attributes = attributes
    member.updated_at = now
    await flush_unique(session)
    await set_consents(session, member, consents, now)
    return member


async def consents_of(session: AsyncSession, member_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[MemberConsent]]:
    if not member_ids:
        return {}
    rows = (
        await session.execute(
            select(MemberConsent)
            .where(MemberConsent.member_id.in_(list(member_ids)))
            .order_by(MemberConsent.channel, MemberConsent.purpose)
        )
    ).scalars()
    out: dict[uuid.UUID, list[MemberConsent]] = {m: [] for m in member_ids}
    for consent in rows:
        out[consent.member_id].append(consent)
    return out


async def set_consents(session: AsyncSession, member: Member, updates: Sequence[ConsentUpdate], now: datetime) -> None:
    """Record each change (history row) and the current state; unchanged values write nothing."""
    if not updates:
        return
    current = {(c.channel, c.purpose): c for c in (await consents_of(session, [member.id]))[member.id]}
    seen: set[tuple[str, str]] = set()
    for update in updates:
        key = (update.channel, update.purpose)
        if key in seen:
            raise ValidationFailed(f"Consent for {update.channel}/{update.purpose} given twice.", field="consents")
        seen.add(key)
        existing = current.get(key)
        if existing is not None and existing.granted == update.granted:
            continue
        if existing is None:
            session.add(
                MemberConsent(
                    tenant_id=member.tenant_id,
                    member_id=member.id,
                    channel=update.channel,
                    purpose=update.purpose,
                    granted=update.granted,
                    source=update.source,
                    updated_at=now,
                )
            )
        else:
            existing.granted, existing.source, existing.updated_at = update.granted, update.source, now
        session.add(
            ConsentChange(
                tenant_id=member.tenant_id,
                id=new_id(),
                member_id=member.id,
                channel=update.channel,
                purpose=update.purpose,
                granted=update.granted,
                source=update.source,
                occurred_at=now,
            )
        )
    await session.flush()


async def consent_history(session: AsyncSession, member_id: uuid.UUID) -> list[ConsentChange]:
    rows = await session.execute(
        select(ConsentChange).where(ConsentChange.member_id == member_id).order_by(ConsentChange.occurred_at.desc())
    )
    return list(rows.scalars())


async def anonymize(session: AsyncSession, member: Member, now: datetime) -> Member:
    """Erase personal data; keep the member's id, ledger and totals. Every consent is withdrawn. Idempotent."""
    if member.status == "anonymized":
        return member
    withdrawals = [
        ConsentUpdate(c.channel, c.purpose, False, "anonymization")
        for c in (await consents_of(session, [member.id]))[member.id]
        if c.granted
    ]
    await set_consents(session, member, withdrawals, now)
    member.external_id = f"anonymized:{member.id}"
    for name in ("name", "email", "phone", "card", "birthday", "timezone", "locale"):
        setattr(member, name, None)
    member.attributes = {}
    member.status = "anonymized"
    member.anonymized_at = now
    member.updated_at = now
    await session.flush()
    return member
