"""Bounces and complaints (``POST /v1/care/feedback``): what the provider says about delivered messages.

Three shapes are read, all with the tenant's API key (a tenant relays SNS to Fealty, or subscribes an HTTPS
endpoint that adds its key):

* an SNS envelope (``{"Type": "Notification", "Message": "<SES notification as a JSON string>", ...}``); a
  ``SubscriptionConfirmation`` is acknowledged with its ``SubscribeURL`` for the tenant to visit (Fealty never
  fetches a URL it was given);
* an SES notification itself (``notificationType`` or, from event publishing, ``eventType``: ``Bounce``,
  ``Complaint``, ``Delivery``);
* the tenant's own short form: ``{"channel": "email"|"sms", "address": ..., "type": "hard_bounce"|"soft_bounce"|
  "complaint"|"delivery", "detail"?}`` (SMS failures reported by the tenant's own gateway, say).

A permanent (hard) bounce puts the address on the tenant's suppression list (``hard_bounce``); a complaint puts it
there too (``complaint``) and withdraws the email marketing consent of the members with that address, recorded in
their consent history with the source ``feedback:complaint``. Transient bounces change nothing. When the notification
names the provider's message id (SES's ``mail.messageId``; ``provider_message_id`` in the short form, e.g. SNS's id
of an SMS), the sent message with that id becomes ``delivered`` on a delivery, ``failed`` on a hard bounce.
Only addresses are read from the notification; the message's content is neither read nor stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core import validation
from core.care.models import CareMessage
from core.care.optouts import members_with_address, opt_out, suppress
from core.errors import FealtyError, JsonTooDeep, ValidationFailed

#: Recipients read from one notification, at most (SES sends at most 50 per message).
MAX_RECIPIENTS = 100


@dataclass(frozen=True, slots=True)
class Report:
    """One address the provider reported on."""

    channel: str
    address: str
    kind: str  # hard_bounce | soft_bounce | complaint | delivery
    detail: str | None = None


@dataclass(slots=True)
class Parsed:
    source: str
    reports: list[Report] = field(default_factory=list)
    #: For an SNS SubscriptionConfirmation: the URL the tenant must visit to confirm.
    subscribe_url: str | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    channel: str
    address: str
    kind: str
    action: str  # suppressed | already_suppressed | ignored | invalid_address


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where} must be a JSON object.", field=where or None)
    return value


def _text(value: Any, limit: int = 200, where: str | None = None) -> str | None:
    if not isinstance(value, str | int | float) or value == "":
        return None
    text = str(value)
    if "\x00" in text:
        raise ValidationFailed("Text must not contain the NUL character (\\u0000).", field=where)
    return text[:limit]


def _decode(raw: bytes | str, where: str | None) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ValidationFailed(f"{where or 'The body'} is not JSON.", field=where) from None
    except RecursionError:
        raise JsonTooDeep("The JSON nests too deeply.", field=where) from None


def _recipients(items: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise ValidationFailed(f"{where} must list at least one recipient.", field=where)
    if len(items) > MAX_RECIPIENTS:
        raise ValidationFailed(f"{where} lists more than {MAX_RECIPIENTS} recipients.", field=where)
    return [_object(item, f"{where}[{i}]") for i, item in enumerate(items)]


def parse_ses(notification: dict[str, Any], prefix: str = "") -> Parsed:
    """An SES notification (or event) as reports."""
    where = f"{prefix}." if prefix else ""
    kind = notification.get("notificationType", notification.get("eventType"))
    mail: dict[str, Any] = notification["mail"] if isinstance(notification.get("mail"), dict) else {}
    parsed = Parsed(
        source="feedback:ses", provider_message_id=_text(mail.get("messageId"), 200, f"{where}mail.messageId")
    )
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"), f"{where}bounce")
        bounce_type = bounce.get("bounceType")
        if bounce_type not in ("Permanent", "Transient", "Undetermined"):
            raise ValidationFailed(
                "bounceType must be Permanent, Transient or Undetermined.", field=f"{where}bounce.bounceType"
            )
        report_kind = "hard_bounce" if bounce_type == "Permanent" else "soft_bounce"
        sub_type = _text(bounce.get("bounceSubType"), 60, f"{where}bounce.bounceSubType")
        detail = f"{bounce_type}/{sub_type or 'General'}"
        for recipient in _recipients(bounce.get("bouncedRecipients"), f"{where}bounce.bouncedRecipients"):
            parsed.reports.append(Report("email", str(recipient.get("emailAddress", "")), report_kind, detail))
    elif kind == "Complaint":
        complaint = _object(notification.get("complaint"), f"{where}complaint")
        feedback_type = _text(complaint.get("complaintFeedbackType"), 60, f"{where}complaint.complaintFeedbackType")
        detail = feedback_type or "complaint"
        for recipient in _recipients(complaint.get("complainedRecipients"), f"{where}complaint.complainedRecipients"):
            parsed.reports.append(Report("email", str(recipient.get("emailAddress", "")), "complaint", detail))
    elif kind == "Delivery":
        delivery = _object(notification.get("delivery"), f"{where}delivery")
        recipients = delivery.get("recipients")
        if not isinstance(recipients, list) or len(recipients) > MAX_RECIPIENTS:
            raise ValidationFailed("delivery.recipients must list the recipients.", field=f"{where}delivery.recipients")
        parsed.reports.extend(Report("email", str(r), "delivery") for r in recipients)
    else:
        raise ValidationFailed(
            "notificationType must be Bounce, Complaint or Delivery.", field=f"{where}notificationType"
        )
    return parsed


_TENANT_KINDS = ("hard_bounce", "soft_bounce", "complaint", "delivery")


def parse(body: bytes) -> Parsed:
    """Any of the three shapes, or a 422 naming what is wrong."""
    document = _object(_decode(body, None), "")
    sns_type = document.get("Type")
    if sns_type is not None:
        if sns_type == "SubscriptionConfirmation":
            url = document.get("SubscribeURL")
            if not isinstance(url, str) or not url.startswith("https://"):
                raise ValidationFailed("SubscribeURL must be an https URL.", field="SubscribeURL")
            return Parsed(source="feedback:sns", subscribe_url=url)
        if sns_type == "UnsubscribeConfirmation":
            return Parsed(source="feedback:sns")
        if sns_type != "Notification":
            raise ValidationFailed(
                "Type must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation.", field="Type"
            )
        message = document.get("Message")
        if not isinstance(message, str):
            raise ValidationFailed("Message must be the SES notification as a JSON string.", field="Message")
        parsed = parse_ses(_object(_decode(message, "Message"), "Message"), prefix="Message")
        parsed.source = "feedback:sns"
        return parsed
    if "notificationType" in document or "eventType" in document:
        return parse_ses(document)
    kind = document.get("type")
    if kind not in _TENANT_KINDS:
        raise ValidationFailed(f"type must be one of {', '.join(_TENANT_KINDS)}.", field="type")
    channel = document.get("channel")
    if channel not in ("email", "sms"):
        raise ValidationFailed("channel must be email or sms.", field="channel")
    address = document.get("address")
    if not isinstance(address, str) or not address:
        raise ValidationFailed("address is required.", field="address")
    detail = _text(document.get("detail"), 200, "detail")
    provider_message_id = _text(document.get("provider_message_id"), 200, "provider_message_id")
    return Parsed(
        source="feedback:tenant",
        reports=[Report(channel, address, kind, detail)],
        provider_message_id=provider_message_id,
    )


def canonical(channel: str, address: str, country: str | None) -> str | None:
    """The suppression list's form of an address, or None when it is not one."""
    try:
        if channel == "email":
            from email.utils import parseaddr

            return validation.email(parseaddr(address)[1] or address)
        return validation.phone(address, country)
    except FealtyError:
        return None


#: What a report says of the message it is about: delivered, or failed for good (a hard bounce).
_MESSAGE_STATE = {"delivery": ("delivered", None), "hard_bounce": ("failed", "hard_bounce")}


async def mark_message(session: AsyncSession, tenant_id: uuid.UUID, parsed: Parsed, *, now: datetime) -> str | None:
    """The state of the sent message the notification is about (by the provider's message id), after it:
    ``delivered`` on a delivery, ``failed`` (reason ``hard_bounce``) on a permanent bounce; None when no sent
    message of this tenant has that id. One atomic update: a repeated notification changes nothing more."""
    if parsed.provider_message_id is None:
        return None
    marks = [_MESSAGE_STATE[r.kind] for r in parsed.reports if r.kind in _MESSAGE_STATE]
    if not marks:
        return None
    state, reason = marks[-1]
    updated = await session.execute(
        update(CareMessage)
        .where(
            CareMessage.tenant_id == tenant_id,
            CareMessage.provider_message_id == parsed.provider_message_id,
            CareMessage.state.in_(("sent", "delivered")),
        )
        .values(state=state, reason=reason, updated_at=now)
        .returning(CareMessage.id)
        .execution_options(synchronize_session=False)
    )
    return state if updated.first() is not None else None


async def apply(
    session: AsyncSession, tenant_id: uuid.UUID, parsed: Parsed, *, country: str | None, now: datetime
) -> list[Outcome]:
    """Suppress hard-bounced and complaining addresses (and withdraw the complainers' marketing consent)."""
    outcomes = []
    for report in parsed.reports:
        address = canonical(report.channel, report.address, country)
        if address is None:
            outcomes.append(Outcome(report.channel, "", report.kind, "invalid_address"))
            continue
        if report.kind not in ("hard_bounce", "complaint"):
            outcomes.append(Outcome(report.channel, address, report.kind, "ignored"))
            continue
        added = await suppress(
            session,
            tenant_id,
            channel=report.channel,
            address=address,
            reason=report.kind,
            source=parsed.source,
            detail=report.detail,
            now=now,
        )
        if report.kind == "complaint":
            members = await members_with_address(session, report.channel, address)
            await opt_out(
                session, members, channel=report.channel, scope="marketing", source="feedback:complaint", now=now
            )
        outcomes.append(Outcome(report.channel, address, report.kind, "suppressed" if added else "already_suppressed"))
    return outcomes
