"""HTTP: the tenant's data as CSV, streamed (``/v1/exports/...``), with a ``reports:read`` key.

Exports are reads: they keep working while the tenant is suspended for billing. Each is sent as it is produced,
page by page, inside the request's read transaction (the route's ``streams`` option tells the API middleware not to
buffer the response).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from msgspec import Meta
from sqlalchemy import select

from core.adapters.s3 import ObjectStore
from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from core.exports import background, service
from core.exports.models import DataExport
from core.http.deps import CurrentPrincipal, CurrentRuntime, Db
from core.ids import new_id
from core.members.models import Member
from core.runtime import Runtime
from core.validation import AwareDatetime

CSV = "text/csv"  # Litestar adds "; charset=utf-8"


def _csv_response(chunks: AsyncIterator[bytes], name: str) -> Stream:
    filename = f"{name}-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return Stream(chunks, media_type=CSV, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class ExportsController(Controller):
    path = "/v1/exports"
    tags = ["exports"]
    opt = {"scope": "reports:read", "streams": True}

    @get("/members", operation_id="exportMembers", media_type=CSV)
    async def members(self, db: Db, principal: CurrentPrincipal) -> Stream:
        """Every member as one CSV row: ids, status, tier, balance (available, pending, lifetime totals), last
        activity and enrolment time. No personal data beyond the tenant's own external id."""
        assert principal.tenant_id is not None
        return _csv_response(service.members_csv(db, principal.tenant_id), "members")

    @get("/ledger", operation_id="exportLedger", media_type=CSV)
    async def ledger(
        self,
        db: Db,
        principal: CurrentPrincipal,
        member_id: FromQuery[uuid.UUID | None] = None,
        created_after: FromQuery[AwareDatetime | None] = None,
        created_before: FromQuery[AwareDatetime | None] = None,
    ) -> Stream:
        """Ledger entries as CSV, in the order they were written: all of them, or one member's (``member_id``),
        in a time window (``created_after`` inclusive, ``created_before`` exclusive; RFC 3339 with an offset)."""
        assert principal.tenant_id is not None
        if created_after is not None and created_before is not None and created_after >= created_before:
            raise ValidationFailed("created_after must be earlier than created_before.", field="created_after")
        if (
            member_id is not None
            and (await db.execute(select(Member.id).where(Member.id == member_id))).first() is None
        ):
            raise NotFound("No such member.", field="member_id")
        chunks = service.ledger_csv(
            db, principal.tenant_id, member_id=member_id, created_after=created_after, created_before=created_before
        )
        return _csv_response(chunks, "ledger")


# --- background exports to S3 ---------------------------------------------------------------------------------------

EXPORT_KINDS = ("members", "ledger", "events")


class ExportIn(msgspec.Struct, forbid_unknown_fields=True):
    #: ``members``, ``ledger``, ``events``, or a report: ``report:rfm``, ``report:liability``...
    kind: Annotated[str, Meta(min_length=1, max_length=60)]
    format: Literal["csv", "parquet"] = "csv"
    #: The tenant's own bucket (it must exist and let the platform write); default: the platform's.
    bucket: Annotated[str, Meta(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = (
        None
    )


class ExportOut(msgspec.Struct):
    id: uuid.UUID
    kind: str
    format: str
    state: str
    rows_done: int
    rows_total: int | None
    percent: float | None
    bucket: str
    key: str
    bytes_written: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    #: A presigned link to download the file (when done), valid for ``FEALTY_EXPORTS_LINK_MINUTES``.
    download_url: str | None = None


def _export_out(export: DataExport, runtime: Runtime) -> ExportOut:
    total = export.rows_total
    percent = (
        100.0
        if export.state == "done"
        else round(100 * export.rows_done / total, 1)
        if total
        else (0.0 if export.state in ("queued", "running") else None)
    )
    url = None
    if export.state == "done":
        store = ObjectStore.from_settings(runtime.settings)
        try:
            url = store.presigned_get(export.bucket, export.key, runtime.settings.exports_link_minutes * 60)
        finally:
            store.close()
    return ExportOut(
        export.id,
        export.kind,
        export.format,
        export.state,
        export.rows_done,
        total,
        percent,
        export.bucket,
        export.key,
        export.bytes_written,
        export.error,
        export.created_at,
        export.finished_at,
        url,
    )


class BackgroundExportsController(Controller):
    path = "/v1/exports"
    tags = ["exports"]
    opt = {"scope": "reports:read", "allowed_when_suspended": True}

    @post(operation_id="createExport", status_code=202)
    async def create(
        self, db: Db, principal: CurrentPrincipal, runtime: CurrentRuntime, data: JSONBody[ExportIn]
    ) -> ExportOut:
        """Export in the background to S3 (the platform's bucket, or the tenant's): members, the ledger, events or
        any report, as CSV or Parquet. Follow ``GET /v1/exports/{id}`` for progress and the download link."""
        assert principal.tenant_id is not None
        from core.measurement.reports import REPORTS

        if data.kind not in EXPORT_KINDS and not (
            data.kind.startswith("report:") and data.kind.removeprefix("report:") in REPORTS
        ):
            raise ValidationFailed(f"kind: {', '.join(EXPORT_KINDS)} or report:<{'|'.join(REPORTS)}>.", field="kind")
        export_id = new_id()
        name = data.kind.replace(":", "-")
        export = DataExport(
            id=export_id,
            kind=data.kind,
            format=data.format,
            filters={},
            bucket=data.bucket or runtime.settings.exports_bucket,
            key=f"tenants/{principal.tenant_id}/exports/{name}-{utcnow():%Y%m%dT%H%M%SZ}-{export_id}.{data.format}",
            state="queued",
            rows_done=0,
        )
        db.add(export)
        await db.flush()
        await background.enqueue(db, principal.tenant_id, export_id)
        return _export_out(export, runtime)

    @get("/{export_id:uuid}", operation_id="getExport")
    async def get_export(self, db: Db, runtime: CurrentRuntime, export_id: FromPath[uuid.UUID]) -> ExportOut:
        """An export's state and progress (rows done, total, percent) and, once done, a presigned download link."""
        export = (await db.execute(select(DataExport).where(DataExport.id == export_id))).scalar_one_or_none()
        if export is None:
            raise NotFound("No such export.", field="export_id")
        return _export_out(export, runtime)
