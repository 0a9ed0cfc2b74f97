"""HTTP: imports of members and opening balances (``/v1/imports``), with progress and per-row errors."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, JSONBody
from msgspec import Meta
from sqlalchemy import select

from core.errors import NotFound, ValidationFailed
from core.exports.service import _csv
from core.http.deps import CurrentPrincipal, Db
from core.ids import new_id
from core.imports import service
from core.imports.models import DataImport


class S3Source(msgspec.Struct, forbid_unknown_fields=True):
    bucket: Annotated[str, Meta(min_length=3, max_length=63)]
    key: Annotated[str, Meta(min_length=1, max_length=1024)]


class ImportIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["members", "opening_balances"]
    #: The CSV itself (within the request size limit), or where it is in S3.
    csv: str | None = None
    s3: S3Source | None = None


class ImportOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    state: str
    rows_total: int | None
    rows_done: int
    percent: float | None
    created: int
    skipped: int
    failed: int
    #: The first per-row errors (all of them in ``GET /v1/imports/{id}/errors.csv``).
    errors: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: DataImport) -> ImportOut:
        total = row.rows_total
        percent = 100.0 if row.state == "done" else round(100 * row.rows_done / total, 1) if total else None
        return cls(
            row.id,
            row.kind,
            row.state,
            total,
            row.rows_done,
            percent,
            row.created,
            row.skipped,
            row.failed,
            list(row.errors or [])[:20],
            row.error,
            row.created_at,
            row.finished_at,
        )


async def _import(db: Any, import_id: uuid.UUID) -> DataImport:
    row = (await db.execute(select(DataImport).where(DataImport.id == import_id))).scalar_one_or_none()
    if row is None:
        raise NotFound("No such import.", field="import_id")
    return row  # type: ignore[no-any-return]


class ImportsController(Controller):
    path = "/v1/imports"
    tags = ["imports"]

    @post(operation_id="createImport", status_code=202)
    async def create(self, db: Db, principal: CurrentPrincipal, data: JSONBody[ImportIn]) -> ImportOut:
        """Import members (``external_id``, ``name``, ``email``, ``phone``, ``card``, ``birthday``, ``timezone``,
        ``locale``, ``attr.<name>``) or opening balances (``external_id``, ``points``, ``reason``) from a CSV, in
        the background: each row validated and applied on its own, none applied twice however often the file is
        imported, errors reported per row. ``fealty import`` sends a file and shows a progress bar."""
        assert principal.tenant_id is not None
        if (data.csv is None) == (data.s3 is None):
            raise ValidationFailed("Send the CSV itself (csv) or where it is in S3 (s3), one of the two.", field="csv")
        if data.csv is not None:
            header, _ = service.rows_of(data.csv)
            problem = service.check_header(data.kind, header)
            if problem:
                raise ValidationFailed(f"{problem}.", field="csv")
        row = DataImport(
            id=new_id(),
            kind=data.kind,
            state="queued",
            source_text=data.csv,
            source_bucket=data.s3.bucket if data.s3 else None,
            source_key=data.s3.key if data.s3 else None,
            rows_done=0,
            created=0,
            skipped=0,
            failed=0,
            errors=[],
        )
        db.add(row)
        await db.flush()
        await service.enqueue(db, principal.tenant_id, row.id)
        return ImportOut.of(row)

    @get("/{import_id:uuid}", operation_id="getImport")
    async def get_import(self, db: Db, import_id: FromPath[uuid.UUID]) -> ImportOut:
        """The import's progress (rows done, total, percent), what it created, skipped and refused."""
        return ImportOut.of(await _import(db, import_id))

    @get("/{import_id:uuid}/errors.csv", operation_id="getImportErrors", media_type="text/csv")
    async def errors(self, db: Db, import_id: FromPath[uuid.UUID]) -> Response[bytes]:
        """Every row refused, with the column at fault and why (row 1 is the header)."""
        row = await _import(db, import_id)
        body = _csv([("row", "field", "detail"), *((e["row"], e["field"], e["detail"]) for e in row.errors or [])])
        return Response(body, media_type="text/csv")
