"""Cursor pagination: an opaque, URL-safe cursor holding the sort key of the last item returned."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import Meta

from core.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

#: A page size, as every list takes it (``?limit=``): enforced by the input gate and declared in the OpenAPI schema
#: for any query parameter named ``limit`` (core.http.inputs.WELL_KNOWN_QUERY), whatever its route declares.
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
#: The ``next_cursor`` a previous page returned: URL-safe base64 without padding. Only cursors this API returned
#: are accepted (another well-formed string is a 422 naming ``cursor``).
Cursor = Annotated[
    str,
    Meta(
        pattern="^[A-Za-z0-9_-]+$",
        max_length=512,
        description="The next_cursor of the previous page (opaque; only cursors this API returned are accepted).",
    ),
]


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    #: Pass as ``cursor`` to get the next page; null on the last page.
    next_cursor: str | None = None


def encode_cursor(*values: uuid.UUID | datetime | str | int) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return base64.urlsafe_b64encode(msgspec.json.encode(plain)).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str | int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValidationFailed("The cursor is not one this API returned.", field="cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise ValidationFailed("The cursor is not one this API returned.", field="cursor")
    return values


def cursor_uuid(value: str | int) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed("The cursor is not one this API returned.", field="cursor") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    return limit


def page_of(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> tuple[list[T], str | None]:
    """Split a query result fetched with ``limit + 1`` rows into the page and the next cursor."""
    items = list(rows[:limit])
    return items, cursor_of(items[-1]) if len(rows) > limit else None
