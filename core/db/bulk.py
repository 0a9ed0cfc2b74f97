"""Many rows in one statement: on PostgreSQL as one array per column (``unnest``), elsewhere as an executemany.

An executemany of N rows costs N bind-parameter sets in SQLAlchemy and N statement executions in PostgreSQL; the
array form is one execution with one parameter per column, whatever N (measured in bench/README.md: a batch of 1,000
events writes about 6,000 rows). Values are passed to the driver as they are, so they must already be what the
column stores: aware datetimes, UUIDs, Decimals; JSON columns are encoded here.

Usage (statements are built once per dialect and cached: building one costs more than running it)::

    @functools.cache
    def _insert_lots(postgres: bool) -> Any:
        return bulk.insert(postgres, lots_table, COLUMNS).on_conflict_do_nothing(...)  # ON CONFLICT optional

    await session.execute(_insert_lots(bulk.is_postgres(session)), bulk.params(session, lots_table, COLUMNS, rows))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import msgspec
from sqlalchemy import Enum, String, Table, Text, any_, bindparam, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_JSON_TYPES = frozenset({"JSON", "JSONB"})


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@cache
def _column_types(table: Table, columns: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """Each column's PostgreSQL type and whether it is JSON (sent as text and cast, one codec for every driver)."""
    compiled = [table.c[name].type.compile(dialect=_PG) for name in columns]
    return tuple(("TEXT" if kind in _JSON_TYPES else kind, kind in _JSON_TYPES) for kind in compiled)


def array_source(table: Table, columns: Sequence[str], alias: str = "u") -> Any:
    """``unnest(CAST(:u_a AS type[]), ...) AS u(a, ...)``: the rows as a FROM item, one bind parameter per column."""
    types = _column_types(table, tuple(columns))
    arrays = ", ".join(f"CAST(:{alias}_{name} AS {kind}[])" for name, (kind, _) in zip(columns, types, strict=True))
    return text(f"unnest({arrays}) AS {alias}({', '.join(columns)})")


def array_columns(table: Table, columns: Sequence[str], alias: str = "u") -> list[Any]:
    """The columns of :func:`array_source`, JSON ones cast back from text."""
    types = _column_types(table, tuple(columns))
    return [
        literal_column(f"CAST({alias}.{name} AS JSONB)" if is_json else f"{alias}.{name}")
        for name, (_, is_json) in zip(columns, types, strict=True)
    ]


def one_of(column: Any, name: str, postgres: bool) -> Any:
    """``column`` is one of the list bound as ``name``: ``= ANY(:name)`` on PostgreSQL (one statement text, so one
    prepared statement and plan, whatever the list's length), ``IN (...)`` expanded elsewhere.

    A string column's list is bound as ``text[]``, never as the column's own ``varchar(n)[]``: casting a parameter to
    ``varchar(n)[]`` checks each element's length, a function PostgreSQL does not know to be leakproof, so under
    row-level security the comparison cannot be an index condition in a generic plan (a prepared statement's plan
    after its fifth execution) and every call scanned the whole table (measured in bench/README.md, "Open-loop
    latency": events by ``event_id``, members by ``external_id``)."""
    if postgres:
        string = isinstance(column.type, String) and not isinstance(column.type, Enum)
        element = Text() if string else column.type
        return column == any_(bindparam(name, type_=postgresql.ARRAY(element)))
    return column.in_(bindparam(name, expanding=True))


@cache
def insert(postgres: bool, table: Table, columns: tuple[str, ...]) -> Any:
    """The dialect's INSERT of ``columns``: from arrays on PostgreSQL, of values elsewhere (execute with
    :func:`params`); cached. ON CONFLICT and RETURNING are added by the caller, the same on both dialects."""
    if postgres:
        return postgresql.insert(table).from_select(
            list(columns), select(*array_columns(table, columns)).select_from(array_source(table, columns))
        )
    return sqlite.insert(table)


def params(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], alias: str = "u"
) -> Any:
    """The parameters for :func:`insert` (or a statement using :func:`array_source`): one list per column on
    PostgreSQL, the rows themselves elsewhere."""
    if not is_postgres(session):
        return list(rows)
    types = _column_types(table, tuple(columns))
    out: dict[str, list[Any]] = {}
    for name, (_, is_json) in zip(columns, types, strict=True):
        values = [row[name] for row in rows]
        if is_json:
            values = [None if v is None else msgspec.json.encode(v).decode() for v in values]
        out[f"{alias}_{name}"] = values
    return out


def params_of_tuples(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], alias: str = "u"
) -> Any:
    """:func:`params` from rows given as tuples in the order of ``columns``: no dictionary per row on PostgreSQL,
    where the tuples are turned into column arrays at once (a batch of 1,000 events writes 1,000 ledger entries and
    1,000 lots)."""
    if not is_postgres(session):
        return [dict(zip(columns, row, strict=True)) for row in rows]
    types = _column_types(table, tuple(columns))
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    out: dict[str, list[Any]] = {}
    for name, (_, is_json), values in zip(columns, types, by_column, strict=True):
        if is_json:
            out[f"{alias}_{name}"] = [None if v is None else msgspec.json.encode(v).decode() for v in values]
        else:
            out[f"{alias}_{name}"] = list(values)
    return out
