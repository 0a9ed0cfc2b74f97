"""Members' replies to messages, relayed by the tenant (``POST /v1/care/replies``).

STOP and its usual variants opt the member out at once, through the care engine's opt-out (a consent withdrawal with
its source, effective for queued messages too). Anything else is offered to the plugins (``fealty_claim_reply``);
unclaimed, it joins the open case of its thread (replies to one message are one thread; without a message, one
member's or one address's replies are) or opens a case of category ``reply`` linked to the message.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncSession

from core.care import optouts
from core.care.models import CareMessage, CareOccasion
from core.cases import service, workflow
from core.cases.models import CareReply, Case
from core.errors import NotFound, ValidationFailed
from core.ids import new_id
from core.members.models import Member
from core.members.service import get_member
from core.members.views import load_member_view
from core.outbox.service import emit
from core.plugin.manager import plugins_of
from core.plugin.types import MemberView, ReplyView, TenantView

#: Whole replies that mean "stop" (after trimming, NFKC and case folding, trailing punctuation dropped): the
#: carriers' English keywords and the Chinese operators' 退订 / TD.
STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "optout",
        "opt out",
        "opt-out",
        "td",
        "t d",
        "退订",
        "退定",
        "取消订阅",
        "退订td",
    }
)
_TRAILING = " \t\r\n.!。！,，;；:：\"'“”‘’"
REPLY_CATEGORY = "reply"


def is_stop(text: str) -> bool:
    """Whether a reply is STOP or one of its variants (``Stop``, `` STOP! ``, ``ＳＴＯＰ``, ``退订``, ``td``)."""
    normal = unicodedata.normalize("NFKC", text).strip(_TRAILING).casefold()
    return " ".join(normal.split()) in STOP_WORDS


@dataclass
class ReplyOutcome:
    id: uuid.UUID
    outcome: str
    member_ids: list[uuid.UUID] = field(default_factory=list)
    case_id: uuid.UUID | None = None
    claimed_by: str | None = None
    claim: dict[str, Any] | None = None


async def _members(
    session: AsyncSession, member_id: uuid.UUID | None, message: CareMessage | None, channel: str, address: str | None
) -> list[Member]:
    if member_id is not None:
        member = await get_member(session, member_id)
        if message is not None and message.member_id != member.id:
            raise ValidationFailed("This message was not sent to this member.", field="message_id")
        return [member]
    if message is not None:
        return [await get_member(session, message.member_id)]
    if address is not None:
        return await optouts.members_with_address(session, channel, address)
    return []


async def receive(
    session: AsyncSession,
    tenant: TenantView,
    now: datetime,
    *,
    channel: str,
    text: str,
    address: str | None,
    member_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    received_at: datetime | None,
    actor: str,
) -> ReplyOutcome:
    text = text.strip()
    if not text:
        raise ValidationFailed("text is empty.", field="text")
    message = None
    if message_id is not None:
        message = (await session.execute(select(CareMessage).where(CareMessage.id == message_id))).scalar_one_or_none()
        if message is None:
            raise NotFound("No message with this id.", field="message_id")
    members = await _members(session, member_id, message, channel, address)
    reply_id = new_id()
    at = received_at or now
    record = CareReply(
        tenant_id=tenant.id,
        id=reply_id,
        channel=channel,
        address=address,
        member_id=members[0].id if len(members) == 1 else None,
        message_id=message_id,
        text=text,
        outcome="case_opened",
        received_at=at,
    )

    async def done(outcome: ReplyOutcome) -> ReplyOutcome:
        record.outcome = outcome.outcome
        record.case_id = outcome.case_id
        record.claimed_by = outcome.claimed_by
        record.claim = outcome.claim
        session.add(record)
        await session.flush()
        await emit(
            session,
            tenant.id,
            "care.reply_received",
            {
                "id": str(reply_id),
                "channel": channel,
                "outcome": outcome.outcome,
                "member_ids": [str(m) for m in outcome.member_ids],
                "message_id": str(message_id) if message_id else None,
                "case_id": str(outcome.case_id) if outcome.case_id else None,
                "claimed_by": outcome.claimed_by,
            },
            record.member_id,
        )
        return outcome

    if is_stop(text):
        active = [m for m in members if m.status == "active"]
        if not active:
            raise NotFound("No member has this address: there is no one to opt out.", field="address")
        await optouts.opt_out(session, active, channel=channel, scope="marketing", source="opt-out:reply", now=now)
        return await done(ReplyOutcome(reply_id, "opted_out", [m.id for m in active]))

    member = members[0] if len(members) == 1 else None
    view: MemberView | None = await load_member_view(session, member.id) if member is not None else None
    occasion = None
    if message is not None:
        occasion = (
            await session.execute(select(CareOccasion).where(CareOccasion.id == message.occasion_id))
        ).scalar_one_or_none()
    manager = plugins_of(session)
    if manager is not None:
        hooks = manager.for_tenant(tenant.plugin_settings.keys())
        if hooks.implements("fealty_claim_reply"):
            reply = ReplyView(
                id=reply_id,
                channel=channel,
                address=address,
                text=text,
                received_at=at,
                member=view,
                message_id=message_id,
                message_trigger=message.trigger if message else None,
                message_occasion=occasion.key if occasion else None,
                message_variables=dict(occasion.variables or {}) if occasion else {},
            )
            claimed = await hooks.claim_reply(tenant, reply, session, now)
            if claimed is not None:
                plugin, claim = claimed
                return await done(
                    ReplyOutcome(
                        reply_id,
                        "claimed",
                        [m.id for m in members[:1]] if member else [],
                        claim.case_id,
                        plugin,
                        {"reason": claim.reason, "reference": claim.reference, "detail": claim.detail},
                    )
                )

    thread = (
        f"message:{message_id}"
        if message_id
        else f"member:{member.id}"
        if member is not None
        else f"{channel}:{address}"
        if address
        else None
    )
    if thread is not None:
        if session.get_bind().dialect.name == "postgresql":
            # One reply at a time per thread (until this transaction ends): of replies racing on a new thread, the
            # first opens the case and the others, waiting here, find it. SQLite runs one writer at a time anyway.
            key = f"case-thread:{tenant.id}:{thread}"
            await session.execute(sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
        open_case = (
            await session.execute(
                select(Case)
                .where(Case.thread == thread, Case.status.in_(sorted(workflow.OPEN_STATUSES)))
                .order_by(Case.opened_at.desc())
                .limit(1)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if open_case is not None:
            service.add_history(
                session,
                tenant.id,
                open_case,
                action="reply_received",
                from_status=open_case.status,
                actor=actor,
                note=text,
                at=at,
                details={"reply_id": str(reply_id), "channel": channel},
            )
            open_case.updated_at = now
            return await done(ReplyOutcome(reply_id, "case_threaded", [member.id] if member else [], open_case.id))
    await service.ensure_category(
        session,
        tenant.id,
        now,
        REPLY_CATEGORY,
        names={"en": "Reply to a message", "zh-CN": "短信/邮件回复"},
        first_reply_hours=24,
        resolution_hours=72,
        default_priority="normal",
        business_hours=False,
    )
    case, _ = await service.open_case(
        session,
        tenant,
        now,
        member_id=member.id if member else None,
        subject=" ".join(text.split())[:80],
        description=text,
        source="reply",
        kind="question",
        category=REPLY_CATEGORY,
        channel="reply",
        related={"message_id": str(message_id)} if message_id else {},
        contact=None if member else address,
        thread=thread,
        actor=actor,
        opened_at=at,
    )
    return await done(ReplyOutcome(reply_id, "case_opened", [member.id] if member else [], case.id))
