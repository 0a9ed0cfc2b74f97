"""Running an import: the CSV read row by row, each row validated and applied on its own (a savepoint), batches of
rows per transaction, progress after each batch.

* ``members``: columns ``external_id`` (required), ``name``, ``email``, ``phone``, ``card``, ``birthday``
  (YYYY-MM-DD), ``timezone``, ``locale`` and ``attr.<name>`` for attributes. A member already enrolled with the
  external id is skipped (a re-run enrols nobody twice).
* ``opening_balances``: ``external_id``, ``points`` (a positive whole number), ``reason`` (optional). Each member's
  opening balance is posted once ever (the row key ``opening:<external_id>`` is kept in ``imported_rows`` in the
  same transaction as the credit), through the ledger as a credit whose cause is the import.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import msgspec
import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.adapters.s3 import ObjectStore, StorageError
from core.clock import utcnow
from core.db import bulk
from core.db.base import table_of
from core.db.engine import tenant_session
from core.errors import AlreadyExists, FealtyError
from core.imports.models import MAX_ERRORS, DataImport, ImportedRow
from core.jobs import queue
from core.jobs.queue import ClaimedJob
from core.jobs.registry import JobRegistry
from core.ledger import service as ledger
from core.ledger.policy import policy_of
from core.members import service as members
from core.members.models import Member
from core.program.settings import ProgramSettings, load_program_settings
from core.runtime import Runtime

log = structlog.get_logger("fealty.imports")
KIND = "imports.run"
BATCH = 200
#: An import read from S3 is at most this large (an upload is limited by the request body limit).
MAX_S3_BYTES = 200 * 1024 * 1024
imports = table_of(DataImport)
imported = table_of(ImportedRow)
MEMBER_FIELDS = ("card", "name", "email", "phone", "birthday", "timezone", "locale")
REQUIRED = {"members": ("external_id",), "opening_balances": ("external_id", "points")}


class RowError(Exception):
    def __init__(self, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class _MemberRow(msgspec.Struct):
    external_id: str
    card: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    timezone: str | None = None
    locale: str | None = None


def rows_of(text: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and the rows (numbered as a spreadsheet shows them: the header is row 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header

    def numbered() -> Iterator[tuple[int, dict[str, str]]]:
        for i, row in enumerate(reader, start=2):
            yield i, {k: (v or "").strip() for k, v in row.items() if k}

    return header, numbered()


def check_header(kind: str, header: list[str]) -> str | None:
    """What is wrong with the header, if anything."""
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        return f"the CSV needs the column(s) {', '.join(missing)}"
    allowed = set(REQUIRED[kind]) | ({"reason"} if kind == "opening_balances" else set(MEMBER_FIELDS))
    unknown = [c for c in header if c not in allowed and not (kind == "members" and c.startswith("attr."))]
    if unknown:
        return f"unknown column(s) {', '.join(unknown)}"
    return None


async def _member_row(db: AsyncSession, tenant_id: uuid.UUID, program: ProgramSettings, row: dict[str, str]) -> str:
    external_id = row.get("external_id", "")
    if not external_id or len(external_id) > 128:
        raise RowError("external_id", "external_id is required (at most 128 characters)")
    given = {k: row[k] for k in MEMBER_FIELDS if row.get(k)}
    try:
        data = msgspec.convert({"external_id": external_id, **given}, _MemberRow, strict=False)
    except msgspec.ValidationError as exc:
        raise RowError(str(exc).rpartition("$.")[2].rstrip("`") or None, str(exc)) from None
    now = utcnow()
    fields = members.normalise({k: getattr(data, k) for k in MEMBER_FIELDS}, program, now.date())
    attributes = {k.removeprefix("attr."): v for k, v in row.items() if k.startswith("attr.") and v != ""}
    if (await db.execute(select(Member.id).where(Member.external_id == external_id))).first():
        return "skipped"
    await members.enrol(
        db, tenant_id=tenant_id, external_id=external_id, fields=fields, attributes=attributes, consents=[], now=now
    )
    return "created"


async def _opening_row(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    program: ProgramSettings,
    import_id: uuid.UUID,
    line: int,
    row: dict[str, str],
) -> str:
    external_id = row.get("external_id", "")
    member = (
        (await db.execute(select(Member.id, Member.status).where(Member.external_id == external_id))).first()
        if external_id
        else None
    )
    if member is None:
        raise RowError("external_id", f"no member with external_id '{external_id}'")
    if member.status != "active":
        raise RowError("external_id", "the member is anonymized")
    text = row.get("points", "")
    if not text.isdigit() or int(text) <= 0 or int(text) > 1_000_000_000:
        raise RowError("points", "points must be a positive whole number")
    dialect = postgresql if bulk.is_postgres(db) else sqlite
    claimed = await db.execute(
        dialect.insert(imported)
        .values(tenant_id=tenant_id, key=f"opening:{external_id}", import_id=import_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(imported.c.key)
    )
    if claimed.first() is None:
        return "skipped"  # this member's opening balance was imported before
    reason = row.get("reason") or "opening balance"
    await ledger.credit(
        db,
        tenant_id=tenant_id,
        member_id=member.id,
        points=int(text),
        kind="adjust",
        cause=ledger.Cause("system", id=f"import:{import_id}:{line}", reason=reason[:500], actor="import"),
        policy=policy_of(program),
        now=utcnow(),
    )
    return "created"


async def _text_of(runtime: Runtime, row: Any) -> str:
    if row.source_text is not None:
        return str(row.source_text)
    store = ObjectStore.from_settings(runtime.settings)
    try:
        return (await store.read(row.source_bucket, row.source_key, limit=MAX_S3_BYTES)).decode("utf-8-sig")
    finally:
        store.close()


async def _finish(runtime: Runtime, tenant_id: uuid.UUID, import_id: uuid.UUID, **values: Any) -> None:
    async with tenant_session(runtime.sessionmaker, tenant_id) as db:
        await db.execute(
            update(imports).where(imports.c.tenant_id == tenant_id, imports.c.id == import_id).values(**values)
        )


async def run_import(runtime: Runtime, job: ClaimedJob) -> bool:
    assert job.tenant_id is not None
    tenant_id, import_id = job.tenant_id, uuid.UUID(job.payload["import_id"])
    async with tenant_session(runtime.sessionmaker, tenant_id, writes=False) as db:
        row = (
            await db.execute(select(imports).where(imports.c.tenant_id == tenant_id, imports.c.id == import_id))
        ).one_or_none()
        program = await load_program_settings(db, tenant_id)
    if row is None or row.state in ("done", "failed"):
        return True
    try:
        text = await _text_of(runtime, row)
    except (StorageError, UnicodeDecodeError) as exc:
        await _finish(runtime, tenant_id, import_id, state="failed", error=str(exc)[:500], finished_at=utcnow())
        return True
    header, rows = rows_of(text)
    problem = check_header(row.kind, header)
    if problem:
        await _finish(runtime, tenant_id, import_id, state="failed", error=problem, finished_at=utcnow())
        return True
    total = max(0, sum(1 for line in io.StringIO(text) if line.strip()) - 1)
    counts = {"created": 0, "skipped": 0, "failed": 0}
    errors: list[dict[str, Any]] = []
    done = 0
    await _finish(runtime, tenant_id, import_id, state="running", rows_total=total)
    batch: list[tuple[int, dict[str, str]]] = []

    async def apply(batch: list[tuple[int, dict[str, str]]]) -> None:
        nonlocal done
        async with tenant_session(runtime.sessionmaker, tenant_id) as db:
            for line, values in batch:
                try:
                    async with db.begin_nested():
                        if row.kind == "members":
                            outcome = await _member_row(db, tenant_id, program, values)
                        else:
                            outcome = await _opening_row(db, tenant_id, program, import_id, line, values)
                    counts[outcome] += 1
                except AlreadyExists:
                    counts["skipped"] += 1
                except (RowError, FealtyError) as exc:
                    counts["failed"] += 1
                    if len(errors) < MAX_ERRORS:
                        errors.append({"row": line, "field": getattr(exc, "field", None), "detail": exc.detail})
            done += len(batch)
            await db.execute(
                update(imports)
                .where(imports.c.tenant_id == tenant_id, imports.c.id == import_id)
                .values(rows_done=done, errors=list(errors), **counts)
            )

    for item in rows:
        batch.append(item)
        if len(batch) >= BATCH:
            await apply(batch)
            batch = []
            await runtime.between_batches(job)
    if batch:
        await apply(batch)
    await _finish(runtime, tenant_id, import_id, state="done", rows_total=done, finished_at=utcnow())
    log.info("import_done", import_id=str(import_id), **counts)
    return True


async def enqueue(db: AsyncSession, tenant_id: uuid.UUID, import_id: uuid.UUID) -> None:
    await queue.enqueue(
        db, KIND, tenant_id=tenant_id, payload={"import_id": str(import_id)}, dedupe_key=f"{KIND}:{import_id}"
    )


def register(registry: JobRegistry, runtime: Runtime) -> None:
    registry.register(KIND, run_import)
