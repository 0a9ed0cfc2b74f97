"""Get-or-404: the one way a use case finds the row a request names (a 404 problem naming the field when the tenant
has no such row; row-level security and the tenant's session see only its own rows)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound

T = TypeVar("T")


async def one_or_404(session: AsyncSession, query: Select[T], missing: str, *, field: str | None) -> T:
    """The one object ``query`` selects (a model), or a 404 problem saying ``missing`` about ``field``."""
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound(missing, field=field)
    return found


async def row_or_404(session: AsyncSession, query: Select[Any], missing: str, *, field: str | None) -> Row[Any]:
    """The first row ``query`` selects (a Core table's row), or a 404 problem saying ``missing`` about ``field``."""
    row: Row[Any] | None = (await session.execute(query)).first()
    if row is None:
        raise NotFound(missing, field=field)
    return row
