"""Opt-outs, the signed unsubscribe link, and the tenant's suppression list.

Every opt-out is a consent withdrawal written through :func:`core.members.service.set_consents`, so it lands in the
member's consent history with its source (``opt-out:<source>``, ``unsubscribe-link``, ``feedback:complaint``) and
takes effect at once: the policy reads consents when a message is queued and again, under a lock, when it is sent.

The unsubscribe link (``GET``/``POST /v1/care/unsubscribe?token=...``) needs no API key: its token is signed with
HMAC-SHA256 (itsdangerous) under a server secret and a salt of its own (so a token made for anything else never
verifies here), names the tenant, the member, the channel and the purpose, and expires
(``FEALTY_CARE_UNSUBSCRIBE_LINK_DAYS``). :func:`unsubscribe_headers` gives the RFC 8058 ``List-Unsubscribe`` and
``List-Unsubscribe-Post`` headers for a marketing email.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.care.protection_models import CareSuppression, PlatformSecret
from core.clock import utcnow
from core.db.base import table_of
from core.db.engine import tenant_session
from core.db.lookup import one_or_404
from core.errors import InvalidLink, LinkExpired, NotFound
from core.members.models import Member
from core.members.service import ConsentUpdate, set_consents
from core.settings import Settings

UNSUBSCRIBE_SALT = "fealty.care.unsubscribe.v1"
_SECRET_NAME = "care_link_secret"
_secrets_cache: dict[str, str] = {}

suppressions = table_of(CareSuppression)


# --- the signing secret -----------------------------------------------------------------------------------------------


async def link_secret(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> str:
    """``FEALTY_CARE_LINK_SECRET``, or the key generated once and kept in ``platform_secrets`` (shared by every
    process; cached in this one)."""
    if settings.care_link_secret:
        return settings.care_link_secret
    cache_key = settings.database_url
    if cache_key in _secrets_cache:
        return _secrets_cache[cache_key]
    async with tenant_session(sessionmaker, None) as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        await session.execute(
            dialect.insert(table_of(PlatformSecret))
            .values(name=_SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = (
            await session.execute(select(PlatformSecret.value).where(PlatformSecret.name == _SECRET_NAME))
        ).scalar_one()
    _secrets_cache[cache_key] = value
    return value


async def link_secret_in(session: AsyncSession, settings: Settings) -> str:
    """:func:`link_secret` within a transaction already open (a use case that signs a link as it writes: a survey
    invitation), on the same generated key."""
    if settings.care_link_secret:
        return settings.care_link_secret
    cache_key = settings.database_url
    if cache_key in _secrets_cache:
        return _secrets_cache[cache_key]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(table_of(PlatformSecret))
        .values(name=_SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    value = (
        await session.execute(select(PlatformSecret.value).where(PlatformSecret.name == _SECRET_NAME))
    ).scalar_one()
    _secrets_cache[cache_key] = value
    return value


# --- the link ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    tenant_id: uuid.UUID
    member_id: uuid.UUID
    channel: str
    purpose: str


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE_SALT)


def make_unsubscribe_token(
    secret: str, *, tenant_id: uuid.UUID, member_id: uuid.UUID, channel: str = "email", purpose: str = "marketing"
) -> str:
    return str(_serializer(secret).dumps({"t": tenant_id.hex, "m": member_id.hex, "c": channel, "p": purpose}))


def read_unsubscribe_token(secret: str, token: str, *, max_age_seconds: int) -> UnsubscribeToken:
    """The token's claims; :class:`InvalidLink` when altered or not ours, :class:`LinkExpired` when too old."""
    if not token or len(token) > 1000:
        raise InvalidLink("This unsubscribe link is not valid.", field="token")
    try:
        claims: Any = _serializer(secret).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise LinkExpired(
            "This unsubscribe link has expired; use the one in a newer message, or ask the sender.", field="token"
        ) from None
    except BadSignature:
        raise InvalidLink("This unsubscribe link is not valid.", field="token") from None
    try:
        return UnsubscribeToken(
            uuid.UUID(hex=claims["t"]), uuid.UUID(hex=claims["m"]), str(claims["c"]), str(claims["p"])
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidLink("This unsubscribe link is not valid.", field="token") from None


def public_url(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def unsubscribe_url(
    settings: Settings,
    secret: str,
    *,
    tenant_id: uuid.UUID,
    member_id: uuid.UUID,
    channel: str = "email",
    purpose: str = "marketing",
) -> str:
    """The member's one-click unsubscribe link (``secret``: from :func:`link_secret`)."""
    token = make_unsubscribe_token(secret, tenant_id=tenant_id, member_id=member_id, channel=channel, purpose=purpose)
    return f"{public_url(settings)}/v1/care/unsubscribe?{urlencode({'token': token})}"


def unsubscribe_headers(url: str, *, mailto: str | None = None) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a marketing email (RFC 2369 ``List-Unsubscribe``; a ``mailto:``
    alternative first when given)."""
    targets = ([f"<mailto:{mailto}?subject=unsubscribe>"] if mailto else []) + [f"<{url}>"]
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


# --- opting out -------------------------------------------------------------------------------------------------------


def withdrawals(channel: str, scope: str, source: str) -> list[ConsentUpdate]:
    purposes = ("marketing", "service") if scope == "all" else ("marketing",)
    return [ConsentUpdate(channel, purpose, False, source) for purpose in purposes]


async def members_with_address(session: AsyncSession, channel: str, address: str) -> list[Member]:
    """The tenant's members with this address (canonical form) on ``channel``; several may share one."""
    column = Member.email if channel == "email" else Member.phone
    rows = await session.execute(select(Member).where(column == address, Member.status == "active").order_by(Member.id))
    return list(rows.scalars())


async def opt_out(
    session: AsyncSession, members: list[Member], *, channel: str, scope: str, source: str, now: datetime
) -> None:
    """Withdraw marketing (``scope="marketing"``) or every purpose but safety (``"all"``) on ``channel``."""
    for member in members:
        await set_consents(session, member, withdrawals(channel, scope, source), now)


async def unsubscribe(
    sessionmaker: async_sessionmaker[AsyncSession], token: UnsubscribeToken, *, now: datetime
) -> Member:
    """Apply a verified unsubscribe token in the token's tenant (never another's): withdraw the purpose on the
    channel, source ``unsubscribe-link``. Applying it twice changes nothing the second time."""
    async with tenant_session(sessionmaker, token.tenant_id) as session:
        member = await one_or_404(
            session,
            select(Member).where(Member.tenant_id == token.tenant_id, Member.id == token.member_id),
            "This member no longer exists.",
            field="token",
        )
        if member.status == "active":
            await set_consents(
                session, member, [ConsentUpdate(token.channel, token.purpose, False, "unsubscribe-link")], now
            )
        return member


async def describe_token(sessionmaker: async_sessionmaker[AsyncSession], token: UnsubscribeToken) -> str:
    """The tenant's display name for the confirmation page (nothing about the member)."""
    from core.tenancy.models import Tenant

    async with tenant_session(sessionmaker, None, writes=False) as session:
        name = (await session.execute(select(Tenant.name).where(Tenant.id == token.tenant_id))).scalar_one_or_none()
    if name is None:
        raise NotFound("This member no longer exists.", field="token")
    return str(name)


# --- the suppression list ---------------------------------------------------------------------------------------------


async def suppress(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    channel: str,
    address: str,
    reason: str,
    source: str,
    detail: str | None,
    now: datetime,
) -> bool:
    """Put an address (canonical form) on the list; True if it was not there. A stronger reason (a complaint over
    a bounce) does not replace the first one: the first is the cause."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = await session.execute(
        dialect.insert(suppressions)
        .values(
            tenant_id=tenant_id,
            channel=channel,
            address=address,
            reason=reason,
            source=source,
            detail=(detail or None) and detail[:200],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "address"])
        .returning(suppressions.c.address)
    )
    return inserted.first() is not None


async def unsuppress(session: AsyncSession, tenant_id: uuid.UUID, *, channel: str, address: str) -> bool:
    result = await session.execute(
        delete(suppressions).where(
            suppressions.c.tenant_id == tenant_id, suppressions.c.channel == channel, suppressions.c.address == address
        )
    )
    return bool(getattr(result, "rowcount", 0))
