"""The signed single-use response link of a survey invitation (``/v1/surveys/respond?token=...``), signed as the care
engine signs its unsubscribe links (HMAC-SHA256 with itsdangerous, the same platform secret) under a salt of its
own, so an unsubscribe token never opens a survey nor the reverse. The token names the tenant and the invitation;
single use and the invitation's own expiry are checked against the database when it is used."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from core.care.optouts import link_secret_in, public_url
from core.errors import InvalidLink, LinkExpired
from core.settings import settings_of

SURVEY_SALT = "fealty.surveys.respond.v1"


@dataclass(frozen=True, slots=True)
class SurveyToken:
    tenant_id: uuid.UUID
    invitation_id: uuid.UUID


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SURVEY_SALT)


def make_token(secret: str, tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> str:
    return str(_serializer(secret).dumps({"t": tenant_id.hex, "i": invitation_id.hex}))


def read_token(secret: str, token: str, *, max_age_seconds: int) -> SurveyToken:
    """The token's claims; :class:`InvalidLink` when altered or not a survey link, :class:`LinkExpired` when too old."""
    if not token or len(token) > 1000:
        raise InvalidLink("This survey link is not valid.", field="token")
    try:
        claims: Any = _serializer(secret).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise LinkExpired("This survey link has expired.", field="token") from None
    except BadSignature:
        raise InvalidLink("This survey link is not valid.", field="token") from None
    try:
        return SurveyToken(uuid.UUID(hex=claims["t"]), uuid.UUID(hex=claims["i"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidLink("This survey link is not valid.", field="token") from None


async def response_url(session: AsyncSession, tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> str:
    settings = settings_of(session)
    token = make_token(await link_secret_in(session, settings), tenant_id, invitation_id)
    return f"{public_url(settings)}/v1/surveys/respond?{urlencode({'token': token})}"
