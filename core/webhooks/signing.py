"""Webhook signatures (pure functions): what Fealty sends and what a receiver checks. Two schemes:

``standard`` (every endpoint created or rotated since Standard Webhooks support): the `Standard Webhooks
<https://www.standardwebhooks.com/>`_ specification, signed with the ``standardwebhooks`` library. Headers
``webhook-id`` (the delivery id, the same on every retry), ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of f"{id}.{timestamp}.{body}">``, the key being the base64-decoded part
of the ``whsec_...`` secret after the prefix. A receiver verifies with ``standardwebhooks.Webhook(secret).verify``
(or the library of its language). While a rotated secret's grace period runs, the header carries one signature per
valid secret, space-separated.

``fealty-v1`` (endpoints created before, until their secret is rotated; ``PATCH {"signature_scheme": ...}`` switches
back and forth while the secret allows): ``Fealty-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
``HMAC-SHA256(key=secret, msg=f"{t}.".encode() + raw_body)`` and ``secret`` is the endpoint's whole ``whsec_...``
string (UTF-8); one ``v1`` per valid secret. The delivery id is not signed in this scheme.

In both, the timestamp is signed with the body, so a captured request cannot be replayed later than the tolerance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Fealty-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
Scheme = Literal["standard", "fealty-v1"]
SCHEMES: tuple[Scheme, ...] = ("standard", "fealty-v1")
STANDARD: Scheme = "standard"
LEGACY: Scheme = "fealty-v1"
#: Random bytes in a Standard Webhooks secret (the specification asks for 24 to 64).
STANDARD_SECRET_BYTES = 32


class InvalidSignature(ValueError):
    """The request was not signed with the secret, was altered, or is too old (the message says which)."""


def new_secret() -> str:
    """A new endpoint secret in the Standard Webhooks format: ``whsec_`` and 256 random bits in standard base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(STANDARD_SECRET_BYTES)).decode()


def new_legacy_secret() -> str:
    """A secret as endpoints were given before Standard Webhooks (URL-safe base64, no padding): tests only."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def is_standard_secret(secret: str) -> bool:
    """Whether ``secret`` is ``whsec_`` and strict standard base64 of 24 to 64 bytes, as the specification asks
    (secrets issued before Standard Webhooks support are URL-safe base64 without padding, so they are not)."""
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


def standard_headers(message_id: str, signing_secrets: Sequence[str], body: bytes, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers, one ``v1,<base64>`` signature per secret (current first)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, when, body) for secret in signing_secrets)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def signed_headers(
    scheme: Scheme,
    message_id: str,
    current: tuple[Scheme, str],
    previous: tuple[Scheme, str] | None,
    body: bytes,
    timestamp: int,
) -> dict[str, str]:
    """The signature headers of one request: the endpoint's scheme signed with its current secret and, during a
    rotation's grace period, the previous secret in the scheme it was issued for (so a receiver not yet switched to
    the new secret keeps verifying exactly as before)."""
    keys = [current, *([previous] if previous else [])]
    standard = [secret for kind, secret in keys if kind == STANDARD]
    legacy = [secret for kind, secret in keys if kind == LEGACY or scheme == LEGACY]
    headers: dict[str, str] = {}
    if scheme == STANDARD and standard:
        headers |= standard_headers(message_id, standard, body, timestamp)
    if legacy:
        headers[SIGNATURE_HEADER] = signature_header(legacy, body, timestamp)
    return headers


def secret_hint(secret: str) -> str:
    """What listings show: the prefix and the last four characters (never enough to sign)."""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Iterable[str], body: bytes, timestamp: int) -> str:
    """``t=<timestamp>,v1=<sig>[,v1=<sig>...]``: one signature per secret (the current one first)."""
    parts = [f"t={timestamp}"]
    parts += [f"{SCHEME}={compute_signature(s, timestamp, body)}" for s in signing_secrets]
    return ",".join(parts)


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a ``Fealty-Signature`` header (other schemes are ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not value.isdigit():
                raise InvalidSignature("The signature header's timestamp is not a number.")
            timestamp = int(value)
        elif name == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise InvalidSignature("The signature header has no timestamp (t=...).")
    if not signatures:
        raise InvalidSignature("The signature header has no v1 signature.")
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a request received from Fealty; returns its signed timestamp, raises :class:`InvalidSignature` if not.

    ``body`` must be the raw bytes as received (not re-serialised JSON). A timestamp more than ``tolerance_s``
    seconds away from ``now`` (default: the current time) is refused, so a captured request cannot be replayed.
    """
    if not header:
        raise InvalidSignature(f"The {SIGNATURE_HEADER} header is missing.")
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature(f"The signature's timestamp is more than {tolerance_s} s from now.")
    expected = compute_signature(secret, timestamp, body)
    # Compare with every v1 given (several during a secret rotation), each in constant time.
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("No signature matches: wrong secret, or the body was altered.")
    return timestamp
