"""HTTP: members — enrol, read, list, update, consents, anonymize."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select

from core import validation
from core.billing.limits import check_member_limit
from core.clock import utcnow
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.ledger.queries import balances_of
from core.members import service
from core.members.models import Member, MemberConsent
from core.outbox.service import emit
from core.segments.service import scan_segment, segment_spec
from core.tiers.models import Tier
from core.validation import AwareDatetime

ExternalId = Annotated[str, Meta(min_length=1, max_length=128)]
Card = Annotated[str, Meta(min_length=1, max_length=64)]
Text200 = Annotated[str, Meta(max_length=200)]
Channel = Literal["email", "sms", "push"]
Purpose = Literal["service", "marketing"]


class ConsentIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: Channel
    purpose: Purpose
    granted: bool
    #: Where the member said so: app, web, store, call-centre, import ...
    source: Annotated[str, Meta(min_length=1, max_length=64)] = "api"


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    card: Card | None = None
    name: Text200 | None = None
    email: Annotated[str, Meta(max_length=320)] | None = None
    phone: Annotated[str, Meta(max_length=40)] | None = None
    birthday: date | None = None
    timezone: Annotated[str, Meta(max_length=64)] | None = None
    locale: Annotated[str, Meta(max_length=35)] | None = None
    consents: list[ConsentIn] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True):
    external_id: ExternalId | UnsetType = UNSET
    card: Card | UnsetType | None = UNSET
    name: Text200 | UnsetType | None = UNSET
    email: Annotated[str, Meta(max_length=320)] | UnsetType | None = UNSET
    phone: Annotated[str, Meta(max_length=40)] | UnsetType | None = UNSET
    birthday: date | UnsetType | None = UNSET
    timezone: Annotated[str, Meta(max_length=64)] | UnsetType | None = UNSET
    locale: Annotated[str, Meta(max_length=35)] | UnsetType | None = UNSET
    consents: list[ConsentIn] = msgspec.field(default_factory=list)
    #: Replaces the attributes object as a whole.
    attributes: dict[str, Any] | UnsetType = UNSET


class ConsentOut(msgspec.Struct):
    channel: str
    purpose: str
    granted: bool
    source: str
    updated_at: datetime


class ConsentChangeOut(msgspec.Struct):
    channel: str
    purpose: str
    granted: bool
    source: str
    occurred_at: datetime


class BalanceSummary(msgspec.Struct):
    available: int
    pending: int


class MemberOut(msgspec.Struct):
    id: uuid.UUID
    external_id: str
    card: str | None
    name: str | None
    email: str | None
    phone: str | None
    birthday: date | None
    timezone: str | None
    locale: str | None
    status: str
    attributes: dict[str, Any]
    consents: list[ConsentOut]
    balance: BalanceSummary
    created_at: datetime
    updated_at: datetime
    anonymized_at: datetime | None = None
    #: The member's tier (its code), if the program has tiers.
    tier: str | None = None


class ConsentHistoryOut(msgspec.Struct):
    current: list[ConsentOut]
    history: list[ConsentChangeOut]


PERSONAL_FIELDS = ("external_id", "card", "name", "email", "phone", "birthday", "timezone", "locale")


def _consent_updates(items: list[ConsentIn]) -> list[service.ConsentUpdate]:
    return [service.ConsentUpdate(c.channel, c.purpose, c.granted, c.source) for c in items]


def _consent_out(c: MemberConsent) -> ConsentOut:
    return ConsentOut(c.channel, c.purpose, c.granted, c.source, c.updated_at)


async def members_out(db: Db, tenant_id: FromPath[uuid.UUID], members: list[Member]) -> list[MemberOut]:
    """Members with their consents and balances: three queries for the whole list, never one per member."""
    ids = [m.id for m in members]
    consents = await service.consents_of(db, ids)
    balances = await balances_of(db, tenant_id, ids)
    tier_ids = {m.tier_id for m in members if m.tier_id}
    codes = dict((await db.execute(select(Tier.id, Tier.code).where(Tier.id.in_(tier_ids)))).all()) if tier_ids else {}
    out = []
    for m in members:
        b = balances.get(m.id)
        out.append(
            MemberOut(
                id=m.id,
                external_id=m.external_id,
                card=m.card,
                name=m.name,
                email=m.email,
                phone=m.phone,
                birthday=m.birthday,
                timezone=m.timezone,
                locale=m.locale,
                status=m.status,
                attributes=m.attributes,
                consents=[_consent_out(c) for c in consents.get(m.id, [])],
                balance=BalanceSummary(b.available if b else 0, b.pending if b else 0),
                created_at=m.created_at,
                updated_at=m.updated_at,
                anonymized_at=m.anonymized_at,
                tier=codes.get(m.tier_id) if m.tier_id else None,
            )
        )
    return out


class MembersController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @post(operation_id="enrolMember", opt={"scope": "members:write"})
    async def enrol(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        data: JSONBody[MemberCreate],
    ) -> MemberOut:
        """Enrol a member. ``external_id`` (and ``card``) are unique within the tenant; the plan may cap the number
        of members (403 ``plan-limit-reached``)."""
        assert principal.tenant_id is not None
        await check_member_limit(
            db, principal.tenant_id, limit=principal.plan_max_members, plan_code=principal.plan_code
        )
        now = utcnow()
        fields = service.normalise(
            {name: getattr(data, name) for name in PERSONAL_FIELDS if name != "external_id"}, program, now.date()
        )
        member = await service.enrol_member(
            db,
            tenant_id=principal.tenant_id,
            program=program,
            config=await runtime.configs.get(db, principal.tenant_id, program.config_version),
            plugins=runtime.plugins,
            external_id=data.external_id,
            fields=fields,
            attributes=data.attributes,
            consents=_consent_updates(data.consents),
            now=now,
        )
        return (await members_out(db, principal.tenant_id, [member]))[0]

    @get(operation_id="listMembers", opt={"scope": "members:read"})
    async def list_members(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        runtime: CurrentRuntime,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        external_id: FromQuery[str | None] = None,
        email: FromQuery[str | None] = None,
        phone: FromQuery[str | None] = None,
        card: FromQuery[str | None] = None,
        status: FromQuery[Literal["active", "anonymized"] | None] = None,
        created_after: FromQuery[AwareDatetime | None] = None,
        created_before: FromQuery[AwareDatetime | None] = None,
        tier: FromQuery[str | None] = None,
        segment: FromQuery[str | None] = None,
    ) -> Page[MemberOut]:
        """Members, oldest first, filtered by identity, enrolment time, tier (its code) or segment (its code: evaluated
        on the spot, at most 5,000 members examined per page — follow ``next_cursor``)."""
        assert principal.tenant_id is not None
        check_limit(limit)
        filters: list[Any] = []
        if external_id is not None:
            filters.append(Member.external_id == external_id)
        if email is not None:
            filters.append(Member.email == validation.email(email))
        if phone is not None:
            filters.append(Member.phone == validation.phone(phone, program.country))
        if card is not None:
            filters.append(Member.card == card)
        if status is not None:
            filters.append(Member.status == status)
        if created_after is not None:
            filters.append(Member.created_at >= created_after)
        if created_before is not None:
            filters.append(Member.created_at < created_before)
        if tier is not None:
            filters.append(Member.tier_id.in_(select(Tier.id).where(Tier.code == tier)))
        after = cursor_uuid(decode_cursor(cursor, 1)[0]) if cursor else None
        if segment is not None:
            config = await runtime.configs.get(db, principal.tenant_id, program.config_version)
            spec = await segment_spec(db, code=segment)
            found, next_cursor = await scan_segment(
                db, principal.tenant_id, program, config, spec, after=after, limit=limit, where=filters
            )
            return Page(await members_out(db, principal.tenant_id, found), next_cursor)
        query = select(Member).where(*filters).order_by(Member.id).limit(limit + 1)
        if after is not None:
            query = query.where(Member.id > after)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda m: encode_cursor(m.id))
        return Page(await members_out(db, principal.tenant_id, items), next_cursor)

    @get("/{member_id:uuid}", operation_id="getMember", opt={"scope": "members:read"})
    async def get_member(self, db: Db, principal: CurrentPrincipal, member_id: FromPath[uuid.UUID]) -> MemberOut:
        assert principal.tenant_id is not None
        member = await service.get_member(db, member_id)
        return (await members_out(db, principal.tenant_id, [member]))[0]

    @patch("/{member_id:uuid}", operation_id="updateMember", opt={"scope": "members:write"})
    async def update_member(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[MemberUpdate],
    ) -> MemberOut:
        """Change any field; absent fields stay as they are, ``null`` clears one. Consent changes are recorded."""
        assert principal.tenant_id is not None
        now = utcnow()
        given = {name: getattr(data, name) for name in PERSONAL_FIELDS if getattr(data, name) is not UNSET}
        fields = service.normalise(given, program, now.date())
        member = await service.get_member(db, member_id, for_update=True)
        await service.update_member(
            db,
            member,
            fields=fields,
            attributes=None if data.attributes is UNSET else data.attributes,
            consents=_consent_updates(data.consents),
            now=now,
        )
        await emit(
            db,
            principal.tenant_id,
            "member.updated",
            {"member_id": str(member.id), "fields": sorted(given) + (["consents"] if data.consents else [])},
            member.id,
        )
        return (await members_out(db, principal.tenant_id, [member]))[0]

    @get("/{member_id:uuid}/consents", operation_id="getMemberConsents", opt={"scope": "members:read"})
    async def consents(self, db: Db, member_id: FromPath[uuid.UUID]) -> ConsentHistoryOut:
        """Current consents and every change, newest first, with its time and source."""
        await service.get_member(db, member_id)
        current = (await service.consents_of(db, [member_id]))[member_id]
        history = await service.consent_history(db, member_id)
        return ConsentHistoryOut(
            [_consent_out(c) for c in current],
            [ConsentChangeOut(h.channel, h.purpose, h.granted, h.source, h.occurred_at) for h in history],
        )

    @post(
        "/{member_id:uuid}/anonymize",
        operation_id="anonymizeMember",
        # Erasure is the member's right: it is never held back by the tenant's billing standing.
        opt={"scope": "members:write", "allowed_when_suspended": True},
        status_code=200,
    )
    async def anonymize(self, db: Db, principal: CurrentPrincipal, member_id: FromPath[uuid.UUID]) -> MemberOut:
        """Erase the member's personal data for good; the ledger and its totals stay. Repeating it is harmless."""
        assert principal.tenant_id is not None
        member = await service.get_member(db, member_id, for_update=True)
        if member.status != "anonymized":
            await emit(db, principal.tenant_id, "member.anonymized", {"member_id": str(member.id)}, member.id)
        await service.anonymize(db, member, utcnow())
        return (await members_out(db, principal.tenant_id, [member]))[0]
