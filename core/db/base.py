"""Declarative base, column types and the tenant-scoped mixin shared by every model (core's and plugins')."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import JSON, DateTime, MetaData, Numeric, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from core.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC: TIMESTAMPTZ on PostgreSQL, naive UTC text on SQLite; always aware in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
Money = Numeric(18, 4, asdecimal=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        Decimal: Money,
    }


class TenantScoped:
    """Mixin for every tenant-owned table: ``tenant_id`` leads the primary key.

    Queries through the ORM get ``tenant_id = :current`` added automatically and fail loudly with no tenant in
    context (see :mod:`core.db.tenancy`); inserts get ``tenant_id`` filled in. On PostgreSQL row-level security is the
    second lock on the same door.
    """

    __tenant_scoped__ = True

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid(), primary_key=True, sort_order=-100)


def id_column() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid(), primary_key=True, default=new_id, sort_order=-99)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as a Table, for the Core statements of the hot paths."""
    return cast(Table, model.__table__)


def tenant_tables() -> list[str]:
    """Names of every table owned by a tenant (has a ``tenant_id`` column)."""
    return sorted(
        t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c and t.info.get("tenant_owned", True)
    )
