"""HTTP: the care engine's protections -- settings (sender and protections), opt-outs, the suppression list,
provider feedback, and the signed unsubscribe link (no API key)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime
from email.utils import parseaddr
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import select

from core import validation
from core.care import feedback, optouts
from core.care.protection import PROTECTION_KEYS, load_care_settings, protection_as_dict, protection_from
from core.care.protection_models import CareSettings, CareSuppression
from core.clock import utcnow
from core.db.lookup import one_or_404
from core.errors import FealtyError, NotFound, ValidationFailed
from core.http.auth import Principal
from core.http.deps import CurrentPrincipal, CurrentProgram, CurrentRuntime, Db
from core.http.pagination import Page, check_limit, decode_cursor, encode_cursor, page_of
from core.members.service import get_member
from core.program.settings import ProgramSettings

AnyRequest = Request[Any, Any, Any]
HHMM = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Cap = Annotated[int, Meta(ge=0, le=1000)]
#: SNS alphanumeric sender ids: 1-11 letters and digits, at least one letter.
SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")


def _tenant_id(principal: Principal) -> uuid.UUID:
    assert principal.tenant_id is not None
    return principal.tenant_id


# --- settings ---------------------------------------------------------------------------------------------------------


class CareSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    #: ``Café Nord <hello@cafe.example>`` or a bare address; SES must have the address (or its domain) verified.
    email_from: Annotated[str, Meta(max_length=320)] | UnsetType | None = UNSET
    email_reply_to: Annotated[str, Meta(max_length=320)] | UnsetType | None = UNSET
    sms_sender_id: str | UnsetType | None = UNSET
    #: ``["21:00", "08:00"]`` in the member's local time; null: none.
    quiet_hours: Annotated[list[HHMM], Meta(min_length=2, max_length=2)] | UnsetType | None = UNSET
    greeting_hours: Annotated[list[HHMM], Meta(min_length=2, max_length=2)] | UnsetType | None = UNSET
    marketing_per_day: Cap | UnsetType | None = UNSET
    marketing_per_7_days: Cap | UnsetType | None = UNSET
    marketing_per_month: Cap | UnsetType | None = UNSET


class CareSettingsOut(msgspec.Struct):
    email_from: str | None
    email_reply_to: str | None
    sms_sender_id: str | None
    quiet_hours: list[str] | None
    greeting_hours: list[str] | None
    marketing_per_day: int | None
    marketing_per_7_days: int | None
    marketing_per_month: int | None


def _sender_address(value: str, field: str) -> str:
    name, address = parseaddr(value)
    if not address or "\n" in value or "\r" in value:
        raise ValidationFailed(f"{field} must be an address, optionally with a name: Name <address>.", field=field)
    canonical = validation.email(address, field=field)
    return f"{name} <{canonical}>" if name else canonical


async def _settings_out(db: Db) -> CareSettingsOut:
    sender, protection = await load_care_settings(db)
    effective = protection_as_dict(protection)
    return CareSettingsOut(sender.email_from, sender.email_reply_to, sender.sms_sender_id, **effective)


class CareSettingsController(Controller):
    path = "/v1/care/settings"
    tags = ["care"]
    opt = {"scope": "admin"}

    @get(operation_id="getCareSettings")
    async def get_settings(self, db: Db) -> CareSettingsOut:
        """Who the tenant's messages come from, and the protections in force (docs/domain.md's defaults unless
        changed)."""
        return await _settings_out(db)

    @patch(operation_id="updateCareSettings")
    async def update_settings(
        self, db: Db, principal: CurrentPrincipal, data: JSONBody[CareSettingsUpdate]
    ) -> CareSettingsOut:
        """Change the sender or protections; a field left out keeps its value, ``null`` clears it (a protection set
        to null is off). Effective for every message decided from now on, including queued ones at delivery."""
        tenant_id = _tenant_id(principal)
        row = (await db.execute(select(CareSettings))).scalar_one_or_none()
        if row is None:
            row = CareSettings(tenant_id=tenant_id, protection={}, updated_at=utcnow())
            db.add(row)
        if not isinstance(data.email_from, UnsetType):
            row.email_from = None if data.email_from is None else _sender_address(data.email_from, "email_from")
        if not isinstance(data.email_reply_to, UnsetType):
            row.email_reply_to = (
                None if data.email_reply_to is None else _sender_address(data.email_reply_to, "email_reply_to")
            )
        if not isinstance(data.sms_sender_id, UnsetType):
            if data.sms_sender_id is not None and not SENDER_ID.match(data.sms_sender_id):
                raise ValidationFailed(
                    "sms_sender_id must be 1 to 11 letters and digits, with at least one letter.", field="sms_sender_id"
                )
            row.sms_sender_id = data.sms_sender_id
        protection = dict(row.protection or {})
        for key in PROTECTION_KEYS:
            value = getattr(data, key)
            if not isinstance(value, UnsetType):
                protection[key] = value
        protection_from(protection)  # the stored form must load
        row.protection = protection
        row.updated_at = utcnow()
        await db.flush()
        return await _settings_out(db)


# --- opt-outs ---------------------------------------------------------------------------------------------------------


class OptOutIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: Literal["email", "sms"]
    #: The address the STOP or unsubscribe came from (phone for sms, email for email) -- or give member_id.
    address: Annotated[str, Meta(min_length=1, max_length=320)] | None = None
    member_id: uuid.UUID | None = None
    #: ``marketing`` (default): marketing on this channel; ``all``: service messages too (safety still goes).
    scope: Literal["marketing", "all"] = "marketing"
    #: Where it came from, recorded in the consent history as ``opt-out:<source>``.
    source: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")] = "stop-reply"


class OptOutOut(msgspec.Struct):
    channel: str
    scope: str
    source: str
    member_ids: list[uuid.UUID]
    effective_at: datetime


class OptOutsController(Controller):
    path = "/v1/care/opt-outs"
    tags = ["care"]

    @post(operation_id="createOptOut", status_code=200, opt={"scope": "members:write"})
    async def opt_out(self, db: Db, program: CurrentProgram, data: JSONBody[OptOutIn]) -> OptOutOut:
        """A member's STOP or unsubscribe, relayed by the tenant: by address (every member with it) or member id.
        Recorded in each member's consent history; effective at once. Repeating it changes nothing."""
        now = utcnow()
        if (data.address is None) == (data.member_id is None):
            raise ValidationFailed("Give either address or member_id.", field="address")
        if data.member_id is not None:
            members = [await get_member(db, data.member_id)]
            if members[0].status != "active":
                members = []
        else:
            assert data.address is not None
            address = feedback.canonical(data.channel, data.address, program.country)
            if address is None:
                kind = "email address" if data.channel == "email" else "phone number"
                raise ValidationFailed(f"address is not a valid {kind}.", field="address")
            members = await optouts.members_with_address(db, data.channel, address)
            if not members:
                raise NotFound("No member has this address.", field="address")
        source = f"opt-out:{data.source}"
        await optouts.opt_out(db, members, channel=data.channel, scope=data.scope, source=source, now=now)
        return OptOutOut(data.channel, data.scope, source, [m.id for m in members], now)


# --- the suppression list ---------------------------------------------------------------------------------------------


class SuppressionIn(msgspec.Struct, forbid_unknown_fields=True):
    channel: Literal["email", "sms"]
    address: Annotated[str, Meta(min_length=1, max_length=320)]
    reason: Literal["manual", "hard_bounce", "complaint", "invalid"] = "manual"
    detail: Annotated[str, Meta(max_length=200)] | None = None


class SuppressionOut(msgspec.Struct):
    channel: str
    address: str
    reason: str
    source: str
    detail: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: CareSuppression) -> SuppressionOut:
        return cls(row.channel, row.address, row.reason, row.source, row.detail, row.created_at)


async def _one_suppression(db: Db, channel: str, address: str) -> CareSuppression:
    row = await one_or_404(
        db,
        select(CareSuppression).where(CareSuppression.channel == channel, CareSuppression.address == address),
        "This address is not on the suppression list.",
        field="address",
    )
    return row


def _canonical_or_422(channel: str, address: str, program: ProgramSettings) -> str:
    canonical = feedback.canonical(channel, address, program.country)
    if canonical is None:
        kind = "email address" if channel == "email" else "phone number"
        raise ValidationFailed(f"address is not a valid {kind}.", field="address")
    return canonical


class SuppressionsController(Controller):
    path = "/v1/care/suppressions"
    tags = ["care"]

    @get(operation_id="listCareSuppressions", opt={"scope": "members:read"})
    async def list_suppressions(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        channel: FromQuery[Literal["email", "sms"] | None] = None,
    ) -> Page[SuppressionOut]:
        """The addresses the tenant never sends to, newest first."""
        check_limit(limit)
        query = (
            select(CareSuppression)
            .order_by(CareSuppression.created_at.desc(), CareSuppression.channel, CareSuppression.address)
            .limit(limit + 1)
        )
        if channel is not None:
            query = query.where(CareSuppression.channel == channel)
        if cursor:
            created, ch, address = decode_cursor(cursor, 3)
            try:
                at = datetime.fromisoformat(str(created))
            except ValueError:
                raise ValidationFailed("The cursor is not one this API returned.", field="cursor") from None
            query = query.where(
                (CareSuppression.created_at < at)
                | ((CareSuppression.created_at == at) & (CareSuppression.channel > str(ch)))
                | (
                    (CareSuppression.created_at == at)
                    & (CareSuppression.channel == str(ch))
                    & (CareSuppression.address > str(address))
                )
            )
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.created_at, r.channel, r.address))
        return Page([SuppressionOut.of(r) for r in items], next_cursor)

    @post(operation_id="createCareSuppression", opt={"scope": "members:write"})
    async def add(
        self, db: Db, principal: CurrentPrincipal, program: CurrentProgram, data: JSONBody[SuppressionIn]
    ) -> Response[SuppressionOut]:
        """Never send to this address again (201), or the entry already there (200)."""
        address = _canonical_or_422(data.channel, data.address, program)
        added = await optouts.suppress(
            db,
            _tenant_id(principal),
            channel=data.channel,
            address=address,
            reason=data.reason,
            source="api",
            detail=data.detail,
            now=utcnow(),
        )
        row = await _one_suppression(db, data.channel, address)
        return Response(SuppressionOut.of(row), status_code=201 if added else 200)

    @get("/{channel:str}/{address:str}", operation_id="getCareSuppression", opt={"scope": "members:read"})
    async def get_one(
        self, db: Db, program: CurrentProgram, channel: FromPath[str], address: FromPath[str]
    ) -> SuppressionOut:
        if channel not in ("email", "sms"):
            raise NotFound("No such suppression.", field="channel")
        return SuppressionOut.of(await _one_suppression(db, channel, _canonical_or_422(channel, address, program)))

    @delete("/{channel:str}/{address:str}", operation_id="deleteCareSuppression", opt={"scope": "members:write"})
    async def remove(
        self,
        db: Db,
        principal: CurrentPrincipal,
        program: CurrentProgram,
        channel: FromPath[str],
        address: FromPath[str],
    ) -> None:
        """Take an address off the list (e.g. the mailbox works again). Consents withdrawn stay withdrawn."""
        if channel not in ("email", "sms"):
            raise NotFound("No such suppression.", field="channel")
        canonical = _canonical_or_422(channel, address, program)
        if not await optouts.unsuppress(db, _tenant_id(principal), channel=channel, address=canonical):
            raise NotFound("This address is not on the suppression list.", field="address")


# --- feedback ---------------------------------------------------------------------------------------------------------


class FeedbackOutcomeOut(msgspec.Struct):
    channel: str
    address: str
    kind: str
    action: str


class FeedbackOut(msgspec.Struct):
    source: str
    outcomes: list[FeedbackOutcomeOut]
    provider_message_id: str | None = None
    #: The state of the message with that provider id after this notice (delivered, failed), when one was found.
    message_state: str | None = None
    #: For an SNS SubscriptionConfirmation: visit it to confirm (Fealty never fetches given URLs).
    subscribe_url: str | None = None


class FeedbackController(Controller):
    path = "/v1/care/feedback"
    tags = ["care"]

    @post(operation_id="receiveCareFeedback", status_code=200, opt={"scope": "members:write"})
    async def receive(
        self, request: AnyRequest, db: Db, principal: CurrentPrincipal, program: CurrentProgram
    ) -> FeedbackOut:
        """A bounce, complaint or delivery notice: SNS's envelope, SES's notification, or the tenant's short form
        (any JSON content type, including SNS's text/plain). Hard bounces and complaints suppress the address."""
        parsed = feedback.parse(await request.body())
        now = utcnow()
        outcomes = await feedback.apply(db, _tenant_id(principal), parsed, country=program.country, now=now)
        return FeedbackOut(
            parsed.source,
            [FeedbackOutcomeOut(o.channel, o.address, o.kind, o.action) for o in outcomes],
            parsed.provider_message_id,
            await feedback.mark_message(db, _tenant_id(principal), parsed, now=now),
            parsed.subscribe_url,
        )


# --- the unsubscribe link ---------------------------------------------------------------------------------------------


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">
<h1 style="font-size:1.3rem">{title}</h1><p>{text}</p>{form}</body></html>"""


def _page(title: str, text: str, form: str = "", status: int = 200) -> Response[str]:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text), form=form)
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"},
    )


def _wants_html(request: AnyRequest) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


class UnsubscribeOut(msgspec.Struct):
    unsubscribed: bool
    channel: str
    purpose: str


class UnsubscribeController(Controller):
    path = "/v1/care/unsubscribe"
    tags = ["care"]

    async def _token(self, runtime: CurrentRuntime, token: str) -> optouts.UnsubscribeToken:
        secret = await optouts.link_secret(runtime.sessionmaker, runtime.settings)
        max_age = max(1, runtime.settings.care_unsubscribe_link_days) * 86400
        return optouts.read_unsubscribe_token(secret, token, max_age_seconds=max_age)

    @get(operation_id="showUnsubscribe", opt={"auth": "none", "problems": (400,)}, media_type="text/html")
    async def show(self, request: AnyRequest, runtime: CurrentRuntime, token: FromQuery[str] = "") -> Response[Any]:
        """The link in a message: a page that confirms with one button (a GET never unsubscribes, since mail
        scanners follow links; RFC 8058). ``Accept: application/json`` gets what the link would do."""
        try:
            claims = await self._token(runtime, token)
            sender = await optouts.describe_token(runtime.sessionmaker, claims)
        except FealtyError as error:
            if not _wants_html(request):
                raise
            return _page("This link does not work", error.detail, status=error.status)
        if not _wants_html(request):
            return Response(UnsubscribeOut(False, claims.channel, claims.purpose), media_type="application/json")
        what = f"{claims.purpose} {'emails' if claims.channel == 'email' else 'text messages'}"
        form = (
            f'<form method="post" action="?token={html.escape(token, quote=True)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit" style="font-size:1rem;padding:.5rem 1rem">Unsubscribe</button></form>'
        )
        return _page(f"Unsubscribe from {sender}", f"Stop receiving {what} from {sender}?", form)

    @post(operation_id="unsubscribe", status_code=200, opt={"auth": "none", "problems": (400,)})
    async def unsubscribe(
        self, request: AnyRequest, runtime: CurrentRuntime, token: FromQuery[str] = ""
    ) -> Response[Any]:
        """RFC 8058 one-click unsubscribe (the mail client POSTs ``List-Unsubscribe=One-Click``), and the page's
        button. Withdraws the consent in the token's tenant, source ``unsubscribe-link``; idempotent."""
        try:
            claims = await self._token(runtime, token)
            await optouts.unsubscribe(runtime.sessionmaker, claims, now=utcnow())
        except FealtyError as error:
            if not _wants_html(request):
                raise
            return _page("This link does not work", error.detail, status=error.status)
        if _wants_html(request):
            return _page("You are unsubscribed", "You will not receive these messages any more.")
        return Response(UnsubscribeOut(True, claims.channel, claims.purpose), media_type="application/json")


PROTECTION_ROUTES = [
    CareSettingsController,
    OptOutsController,
    SuppressionsController,
    FeedbackController,
    UnsubscribeController,
]

__all__ = ["PROTECTION_ROUTES"]
