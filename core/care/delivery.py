"""The worker's delivery of care messages: claim, protect, send, record.

One round for a tenant:

1. **Claim** (one short transaction): the due messages (queued or deferred, ``due_at`` passed, not held by a live
   worker) are taken with ``FOR UPDATE SKIP LOCKED`` and held for a lease (``claimed_until``), so two workers never
   take the same message.
2. **Protect** (one transaction, members locked in id order so two workers cannot deadlock): the policy decides
   again on fresh facts and, for a send, counts it (:func:`core.care.protection.reserve`): caps hold under
   concurrency. A deferred message gets its new ``due_at`` and reason, a suppressed one its reason. A webhook
   message is written to the outbox here, in the same transaction that records it sent (the existing signed
   webhooks deliver it as ``care.message``).
3. **Send** (no transaction open): email through SES, SMS through SNS (:mod:`core.adapters.aws`), each with the
   message's reference (``X-Fealty-Reference`` on email), paced to the tenant's send rate.
4. **Record** (one transaction): sent with the provider's id; throttled or transient errors retried with backoff
   (and the reason); permanent errors recorded ``failed`` (the counted send given back).

At least once: a worker that dies between the provider's answer and the record leaves the message claimed; when
the lease ends another worker sends it again, with the same reference, and records it once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.adapters.aws import AwsMessaging, ProviderPermanentError, ProviderThrottled, ProviderTransientError
from core.care import optouts
from core.care.calendar import holidays_in
from core.care.messages import load_program, messages_table
from core.care.metrics import count
from core.care.policy import Defer, MessageFacts, Send, Suppress
from core.care.protection import Sender, load_care_settings, release_send, reserve_many
from core.clock import utcnow
from core.db.engine import tenant_session
from core.jobs.queue import backoff
from core.outbox.service import emit_many
from core.runtime import Runtime

log = structlog.get_logger("fealty.care")

MESSAGING_KEY = "care.messaging"
#: Margin on top of what a round of sends may take, before a claimed message counts as abandoned.
LEASE_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    member_id: uuid.UUID
    trigger: str
    channel: str
    purpose: str
    category: str
    address: str | None
    subject: str | None
    body: str
    html: str | None
    reference: str
    attempts: int
    valid_until: datetime | None
    occasion_id: uuid.UUID
    rule_id: uuid.UUID
    locale: str

    def facts(self) -> MessageFacts:
        return MessageFacts(self.channel, self.purpose, self.category, self.valid_until, self.trigger)


@dataclass(frozen=True)
class Outcome:
    message: Claimed
    provider_id: str | None = None
    error: Exception | None = None


def messaging(runtime: Runtime) -> AwsMessaging:
    """The process's SES/SNS client (built from the settings on first use, closed with the runtime)."""
    found = runtime.extras.get(MESSAGING_KEY)
    if found is None:
        found = AwsMessaging.from_settings(runtime.settings)
        runtime.extras[MESSAGING_KEY] = found
        runtime.closers.append(found.close)
    assert isinstance(found, AwsMessaging)
    return found


def _lease(runtime: Runtime) -> timedelta:
    settings = runtime.settings
    return timedelta(seconds=settings.aws_timeout_seconds * 2) + LEASE_MARGIN


async def claim_due(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, *, limit: int, lease: timedelta
) -> list[Claimed]:
    m = messages_table
    due = (
        select(m.c.id)
        .where(
            m.c.tenant_id == tenant_id,
            m.c.state.in_(("queued", "deferred")),
            m.c.due_at <= now,
            or_(m.c.claimed_until.is_(None), m.c.claimed_until < now),
        )
        .order_by(m.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (
        await session.execute(
            update(m)
            .where(m.c.tenant_id == tenant_id, m.c.id.in_(due.scalar_subquery()))
            .values(claimed_until=now + lease)
            .returning(
                m.c.id,
                m.c.member_id,
                m.c.trigger,
                m.c.channel,
                m.c.purpose,
                m.c.category,
                m.c.address,
                m.c.subject,
                m.c.body,
                m.c.html,
                m.c.reference,
                m.c.attempts,
                m.c.valid_until,
                m.c.occasion_id,
                m.c.rule_id,
                m.c.locale,
            )
        )
    ).all()
    return [Claimed(*r) for r in rows]


async def has_due(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> bool:
    m = messages_table
    query = select(m.c.id).where(
        m.c.tenant_id == tenant_id,
        m.c.state.in_(("queued", "deferred")),
        m.c.due_at <= now,
        or_(m.c.claimed_until.is_(None), m.c.claimed_until < now),
    )
    return (await session.execute(query.limit(1))).first() is not None


async def _set_many(
    session: AsyncSession, tenant_id: uuid.UUID, rows: Sequence[dict[str, Any]], *, only_pending: bool = False
) -> None:
    """Set each message's new values (one statement per shape of values, executed for many rows at once);
    ``only_pending``: only while it is still queued or deferred."""
    m = messages_table
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    # No expanding IN in an executemany.
    pending = [or_(m.c.state == "queued", m.c.state == "deferred")] if only_pending else []
    for keys, same in shapes.items():
        await session.execute(
            update(m)
            .where(m.c.tenant_id == tenant_id, m.c.id == bindparam("message_id"), *pending)
            .values({key: bindparam(f"v_{key}") for key in keys}),
            [{"message_id": row["id"]} | {f"v_{key}": row[key] for key in keys} for row in same],
        )


def _webhook_payload(message: Claimed) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "member_id": str(message.member_id),
        "trigger": message.trigger,
        "purpose": message.purpose,
        "category": message.category,
        "locale": message.locale,
        "subject": message.subject,
        "body": message.body,
        "reference": message.reference,
        "occasion_id": str(message.occasion_id),
        "rule_id": str(message.rule_id),
    }


async def protect(
    session: AsyncSession, tenant_id: uuid.UUID, claimed: Sequence[Claimed], now: datetime
) -> tuple[list[Claimed], Sender]:
    """Decide again for the claimed messages and count the sends, the round at once (:func:`reserve_many`: the
    members' locks in one statement, the facts set-based, the tally in one upsert); returns those to send now, and the
    sender."""
    sender, settings = await load_care_settings(session)
    program = await load_program(session, tenant_id)
    years = {(now + timedelta(days=d)).year for d in (-1, 0, 45)}
    holidays = [h.day for h in await holidays_in(session, tenant_id, years, program.country)]
    ordered = sorted(claimed, key=lambda c: (c.member_id, c.id))
    verdicts = await reserve_many(
        session,
        tenant_id=tenant_id,
        messages=[(message.member_id, message.facts()) for message in ordered],
        settings=settings,
        now=now,
        holidays=holidays,
    )
    to_send: list[Claimed] = []
    changes: list[dict[str, Any]] = []
    webhooks: list[tuple[str, dict[str, Any], uuid.UUID | None]] = []
    updated = utcnow()
    for message, verdict in zip(ordered, verdicts, strict=True):
        change: dict[str, Any] = {"id": message.id, "claimed_until": None, "updated_at": updated}
        if isinstance(verdict, Suppress):
            changes.append(change | {"state": "suppressed", "reason": verdict.reason})
            count([("suppressed", message.channel)])
        elif isinstance(verdict, Defer):
            changes.append(change | {"state": "deferred", "reason": verdict.reason, "due_at": verdict.until})
            count([("deferred", message.channel)])
        elif isinstance(verdict, Send):
            if message.channel == "webhook":
                webhooks.append(("care.message", _webhook_payload(message), message.member_id))
                sent = {"state": "sent", "reason": None, "attempts": message.attempts + 1, "sent_at": now}
                changes.append(change | sent | {"provider_message_id": "outbox"})
                count([("sent", "webhook")])
            elif message.channel in ("email", "sms") and message.address:
                to_send.append(message)
            else:
                changes.append(change | {"state": "suppressed", "reason": "no_address"})
    if webhooks:
        await emit_many(session, tenant_id, webhooks)
    await _set_many(session, tenant_id, changes)
    return to_send, sender


class Pace:
    """At most ``rate`` starts per second (0: no limit), for one tenant's round."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            if self.next > now:
                await asyncio.sleep(self.next - now)
            self.next = max(now, self.next) + self.interval


async def send_all(
    client: AwsMessaging,
    tenant_id: uuid.UUID,
    to_send: Sequence[Claimed],
    sender: Sender,
    *,
    rate: float,
    headers_for: Any = None,
) -> list[Outcome]:
    """Send each message through its provider (bounded by the client's pool), paced to ``rate`` a second."""
    pace = Pace(rate)

    async def one(message: Claimed) -> Outcome:
        await pace.wait()
        try:
            if message.channel == "email":
                if not sender.email_from:
                    raise ProviderPermanentError("the tenant has no sender address", code="NoSender")
                headers = headers_for(message) if headers_for is not None else None
                provider_id = await client.send_email(
                    source=sender.email_from,
                    to=str(message.address),
                    reply_to=sender.email_reply_to,
                    subject=message.subject or "",
                    text=message.body,
                    html=message.html,
                    headers=headers,
                    reference=message.reference,
                )
            else:
                provider_id = await client.send_sms(
                    to=str(message.address),
                    body=message.body,
                    sender_id=sender.sms_sender_id,
                    reference=message.reference,
                    transactional=message.purpose != "marketing",
                )
            return Outcome(message, provider_id=provider_id)
        except (ProviderThrottled, ProviderTransientError, ProviderPermanentError) as exc:
            return Outcome(message, error=exc)

    return list(await asyncio.gather(*(one(m) for m in to_send)))


async def record(
    session: AsyncSession, tenant_id: uuid.UUID, outcomes: Sequence[Outcome], now: datetime, runtime: Runtime
) -> dict[str, int]:
    """What became of a round's sends, set at once for all of them; a send that failed gives its count back."""
    settings = runtime.settings
    counts: dict[str, int] = {}
    changes: list[dict[str, Any]] = []
    updated = utcnow()
    for outcome in outcomes:
        message = outcome.message
        attempts = message.attempts + 1
        change: dict[str, Any] = {"id": message.id, "attempts": attempts, "claimed_until": None, "updated_at": updated}
        if outcome.error is None:
            change |= {"state": "sent", "reason": None, "provider_message_id": outcome.provider_id, "sent_at": now}
        elif isinstance(outcome.error, ProviderPermanentError) or attempts >= settings.care_max_attempts:
            code = getattr(outcome.error, "code", type(outcome.error).__name__)
            change |= {"state": "failed", "reason": str(code)[:64]}
            await release_send(
                session, tenant_id=tenant_id, member_id=message.member_id, message=message.facts(), reserved_at=now
            )
        else:
            code = getattr(outcome.error, "code", type(outcome.error).__name__)
            delay = backoff(attempts, base=settings.care_backoff_base_seconds, cap=settings.care_backoff_cap_seconds)
            if isinstance(outcome.error, ProviderThrottled):
                delay = max(delay, timedelta(seconds=settings.care_backoff_base_seconds))
            change |= {"state": "queued", "reason": str(code)[:64], "due_at": now + delay}
            await release_send(
                session, tenant_id=tenant_id, member_id=message.member_id, message=message.facts(), reserved_at=now
            )
        changes.append(change)
        counts[change["state"]] = counts.get(change["state"], 0) + 1
        count([(change["state"], message.channel)])
    await _set_many(session, tenant_id, changes, only_pending=True)
    return counts


async def deliver_round(runtime: Runtime, tenant_id: uuid.UUID, now: datetime | None = None) -> dict[str, int]:
    """One round for the tenant: claim, protect, send, record. Returns what became of the sent ones."""
    now = now or utcnow()
    batch = max(1, runtime.settings.care_deliver_batch)
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        claimed = await claim_due(session, tenant_id, now, limit=batch, lease=_lease(runtime))
    if not claimed:
        return {}
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        to_send, sender = await protect(session, tenant_id, claimed, now)
    if not to_send:
        return {"protected": len(claimed)}
    headers_for = await unsubscribe_headers_for(runtime, tenant_id, to_send)
    outcomes = await send_all(
        messaging(runtime),
        tenant_id,
        to_send,
        sender,
        rate=runtime.settings.care_send_rate_per_second,
        headers_for=headers_for,
    )
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        counts = await record(session, tenant_id, outcomes, utcnow(), runtime)
    log.info("care_delivered", **counts)
    return counts


async def unsubscribe_headers_for(runtime: Runtime, tenant_id: uuid.UUID, messages: Sequence[Claimed]) -> Any:
    """The RFC 8058 one-click unsubscribe headers for each marketing email (None when there is none to send)."""
    if not any(m.channel == "email" and m.purpose == "marketing" for m in messages):
        return None
    secret = await optouts.link_secret(runtime.sessionmaker, runtime.settings)

    def headers(message: Claimed) -> dict[str, str] | None:
        if message.purpose != "marketing":
            return None
        url = optouts.unsubscribe_url(
            runtime.settings, secret, tenant_id=tenant_id, member_id=message.member_id, channel="email"
        )
        found: dict[str, str] = optouts.unsubscribe_headers(url)
        return found

    return headers
