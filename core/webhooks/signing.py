"""Webhook signatures (pure functions): what Fealty sends and what a receiver checks.

Every request carries ``Fealty-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
``HMAC-SHA256(key=secret, msg=f"{t}.".encode() + raw_body)`` and ``secret`` is the endpoint's whole ``whsec_...``
string (UTF-8). While a rotated secret's grace period runs, the header carries one ``v1`` per valid secret. The
timestamp is signed with the body, so a captured request cannot be replayed later than ``tolerance_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Fealty-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """The request was not signed with the secret, was altered, or is too old (the message says which)."""


def new_secret() -> str:
    """A new endpoint secret: ``whsec_`` and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


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
