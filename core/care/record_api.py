"""HTTP: the record of care messages (``GET /v1/messages``, ``GET /v1/members/{member_id}/messages``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter
from sqlalchemy import select

from core.care.messages import mask
from core.care.models import CareMessage, CareOccasion, CareRule
from core.errors import NotFound
from core.http.deps import Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of
from core.members.models import Member
from core.validation import AwareDatetime

State = Literal["queued", "deferred", "sent", "delivered", "failed", "suppressed"]
Channel = Literal["email", "sms", "webhook"]


class MessageOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    rule_id: uuid.UUID
    rule: str | None
    occasion_id: uuid.UUID
    occasion_key: str | None
    trigger: str
    channel: str
    purpose: str
    category: str
    locale: str
    #: Masked (``a***@example.com``).
    address: str | None
    subject: str | None
    state: str
    #: Why it was suppressed, deferred, retried or failed (a stable code).
    reason: str | None
    attempts: int
    provider_message_id: str | None
    reference: str
    segments: int | None
    due_at: datetime
    valid_until: datetime | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


async def list_messages(
    db: Any,
    *,
    cursor: str | None,
    limit: int,
    member_id: uuid.UUID | None = None,
    state: str | None = None,
    channel: str | None = None,
    rule_id: uuid.UUID | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[MessageOut]:
    check_limit(limit)
    query = (
        select(CareMessage, CareRule.name, CareOccasion.key)
        .outerjoin(CareRule, CareRule.id == CareMessage.rule_id)
        .outerjoin(CareOccasion, CareOccasion.id == CareMessage.occasion_id)
        .order_by(CareMessage.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(CareMessage.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
    if member_id is not None:
        query = query.where(CareMessage.member_id == member_id)
    if state is not None:
        query = query.where(CareMessage.state == state)
    if channel is not None:
        query = query.where(CareMessage.channel == channel)
    if rule_id is not None:
        query = query.where(CareMessage.rule_id == rule_id)
    if trigger is not None:
        query = query.where(CareMessage.trigger == trigger)
    if since is not None:
        query = query.where(CareMessage.created_at >= since)
    if until is not None:
        query = query.where(CareMessage.created_at < until)
    rows = (await db.execute(query)).all()
    items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r[0].id))
    return Page(
        [
            MessageOut(
                m.id,
                m.member_id,
                m.rule_id,
                rule_name,
                m.occasion_id,
                key,
                m.trigger,
                m.channel,
                m.purpose,
                m.category,
                m.locale,
                mask(m.address, m.channel),
                m.subject,
                m.state,
                m.reason,
                m.attempts,
                m.provider_message_id,
                m.reference,
                m.segments,
                m.due_at,
                m.valid_until,
                m.created_at,
                m.updated_at,
                m.sent_at,
            )
            for m, rule_name, key in items
        ],
        next_cursor,
    )


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["care"]

    @get(operation_id="listMessages", opt={"scope": "members:read"})
    async def list_all(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        member_id: FromQuery[uuid.UUID | None] = None,
        message_state: Annotated[State | None, QueryParameter(name="state")] = None,
        channel: FromQuery[Channel | None] = None,
        rule_id: FromQuery[uuid.UUID | None] = None,
        trigger: FromQuery[str | None] = None,
        since: FromQuery[AwareDatetime | None] = None,
        until: FromQuery[AwareDatetime | None] = None,
    ) -> Page[MessageOut]:
        """Every care message, newest first: rule, occasion, channel, masked address, subject, state (queued,
        deferred, sent, delivered, failed, suppressed) with the reason, attempts, the provider's id and times."""
        return await list_messages(
            db,
            cursor=cursor,
            limit=limit,
            member_id=member_id,
            state=message_state,
            channel=channel,
            rule_id=rule_id,
            trigger=trigger,
            since=since,
            until=until,
        )


class MemberMessagesController(Controller):
    path = "/v1/members/{member_id:uuid}/messages"
    tags = ["care"]

    @get(operation_id="listMemberMessages", opt={"scope": "members:read"})
    async def list_member(
        self,
        db: Db,
        member_id: FromPath[uuid.UUID],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        message_state: Annotated[State | None, QueryParameter(name="state")] = None,
        channel: FromQuery[Channel | None] = None,
        since: FromQuery[AwareDatetime | None] = None,
        until: FromQuery[AwareDatetime | None] = None,
    ) -> Page[MessageOut]:
        """One member's care messages, newest first."""
        if (await db.execute(select(Member.id).where(Member.id == member_id))).first() is None:
            raise NotFound("No such member.", field="member_id")
        return await list_messages(
            db,
            cursor=cursor,
            limit=limit,
            member_id=member_id,
            state=message_state,
            channel=channel,
            since=since,
            until=until,
        )
