"""API key format, hashing and scopes (pure functions).

A tenant key reads ``fty_<tenant id>_<key id>_<secret>``: the tenant id lets authentication set the tenant context
(and so PostgreSQL row-level security) before it looks the key up, the key id finds the row, and only the SHA-256 of
the whole key is stored. Keys carry 256 random bits, so a fast hash is safe; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

TENANT_KEY_PREFIX = "fty_"
PLATFORM_KEY_PREFIX = "ftp_"

SCOPES = ("admin", "events:write", "members:read", "members:write", "rewards:write", "reports:read")


@dataclass(frozen=True, slots=True)
class ParsedTenantKey:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    raw: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def keys_match(raw: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(raw), stored_hash)


def new_tenant_key(tenant_id: uuid.UUID, key_id: uuid.UUID) -> str:
    return f"{TENANT_KEY_PREFIX}{tenant_id.hex}_{key_id.hex}_{secrets.token_urlsafe(32)}"


def new_platform_key() -> str:
    return PLATFORM_KEY_PREFIX + secrets.token_urlsafe(32)


def key_hint(raw: str) -> str:
    """What a key list shows: the prefix and the last four characters of the secret."""
    return f"{raw[:4]}…{raw[-4:]}"


def parse_tenant_key(raw: str) -> ParsedTenantKey | None:
    if not raw.startswith(TENANT_KEY_PREFIX) or len(raw) > 200:
        return None
    parts = raw[len(TENANT_KEY_PREFIX) :].split("_", 2)
    if len(parts) != 3 or not parts[2]:
        return None
    try:
        return ParsedTenantKey(uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1]), raw)
    except ValueError:
        return None


def scope_allows(granted: frozenset[str] | set[str], required: str | None) -> bool:
    """``admin`` grants everything; ``x:write`` also grants ``x:read``."""
    if required is None or "admin" in granted or required in granted:
        return True
    area, _, action = required.partition(":")
    return action == "read" and f"{area}:write" in granted
