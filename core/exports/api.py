"""HTTP: the tenant's data as CSV, streamed (``/v1/exports/...``), with a ``reports:read`` key.

Exports are reads: they keep working while the tenant is suspended for billing. Each is sent as it is produced,
page by page, inside the request's read transaction (the route's ``streams`` option tells the API middleware not to
buffer the response).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from litestar import Controller, get
from litestar.params import FromQuery
from litestar.response import Stream
from sqlalchemy import select

from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from core.exports import service
from core.http.deps import CurrentPrincipal, Db
from core.members.models import Member
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
