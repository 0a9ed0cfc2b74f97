"""Idempotency keys: claim a key in the request's own transaction, or find the response it already produced.

The key row is inserted (``INSERT ... ON CONFLICT``) before the work and completed with the response in the same
transaction, so it is committed exactly when the work is. A concurrent request with the same key waits on the unique
index until the first one commits (then replays its response) or rolls back (then does the work itself). A failed
request (4xx/5xx) rolls back and leaves no key behind: nothing was applied, so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import table_of
from core.errors import IdempotencyKeyReused, ValidationFailed
from core.idempotency.models import IdempotencyRecord, PlatformIdempotencyRecord

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
REDACTED = "[shown only once: not stored, so not replayed]"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.", field="Idempotency-Key"
        )
    return key


def request_fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """SHA-256 of the request. JSON bodies are canonicalised first, so key order and spacing do not matter."""
    canonical = body
    if body:
        try:
            canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
        except msgspec.DecodeError:
            canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _table(tenant_id: uuid.UUID | None) -> Table:
    return table_of(IdempotencyRecord) if tenant_id else table_of(PlatformIdempotencyRecord)


def _where(table: Table, tenant_id: uuid.UUID | None, key: str) -> list[Any]:
    clauses = [table.c.key == key]
    if tenant_id:
        clauses.append(table.c.tenant_id == tenant_id)
    return clauses


async def claim(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> StoredResponse | None:
    """Claim ``key`` for this request (returns None) or return the response a first request already committed."""
    table = _table(tenant_id)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values: dict[str, Any] = {
        "key": key,
        "request_hash": fingerprint,
        "created_at": now,
        "expires_at": now + ttl,
        "response_headers": {},
    }
    conflict_cols = ["key"]
    if tenant_id:
        values["tenant_id"] = tenant_id
        conflict_cols = ["tenant_id", "key"]
    insert = dialect.insert(table).values(values)
    # An expired key is taken over by the new request; a live one is left alone (no row comes back).
    statement = insert.on_conflict_do_update(
        index_elements=conflict_cols,
        set_={
            "request_hash": fingerprint,
            "created_at": now,
            "expires_at": now + ttl,
            "response_status": None,
            "response_headers": {},
            "response_body": None,
        },
        where=table.c.expires_at <= now,
    ).returning(table.c.key)
    if (await session.execute(statement)).first() is not None:
        return None
    row = (
        await session.execute(
            select(
                table.c.request_hash, table.c.response_status, table.c.response_headers, table.c.response_body
            ).where(*_where(table, tenant_id, key))
        )
    ).one()
    if row.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request; use a new key for a new request.",
            field="Idempotency-Key",
        )
    return StoredResponse(row.response_status, dict(row.response_headers or {}), row.response_body or b"")


async def complete(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    key: str,
    response: StoredResponse,
    redact: tuple[str, ...] = (),
) -> None:
    body = _redact(response.body, redact) if redact else response.body
    table = _table(tenant_id)
    await session.execute(
        update(table)
        .where(*_where(table, tenant_id, key))
        .values(response_status=response.status, response_headers=response.headers, response_body=body)
    )


def _redact(body: bytes, paths: tuple[str, ...]) -> bytes:
    """Secrets shown once (a new API key) are never stored: the replay carries a note in their place."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    for path in paths:
        node = document
        *parents, leaf = path.split(".")
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = REDACTED
    return msgspec.json.encode(document)


async def purge_expired(session: AsyncSession, *, tenant_id: uuid.UUID | None, now: datetime) -> int:
    from sqlalchemy import delete

    table = _table(tenant_id)
    clauses = [table.c.expires_at <= now]
    if tenant_id:
        clauses.append(table.c.tenant_id == tenant_id)
    result = await session.execute(delete(table).where(*clauses))
    return int(getattr(result, "rowcount", 0) or 0)
