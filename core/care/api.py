"""HTTP: the care requests recorded for members (``GET /v1/care/requests``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery
from sqlalchemy import select

from core.care.models import CareRequest
from core.http.deps import Db
from core.http.pagination import Page, check_limit, cursor_uuid, decode_cursor, encode_cursor, page_of


class CareRequestOut(msgspec.Struct):
    id: uuid.UUID
    member_id: uuid.UUID
    kind: str
    purpose: str
    source: str
    status: str
    payload: dict[str, Any]
    created_at: datetime


class CareRequestsController(Controller):
    path = "/v1/care/requests"
    tags = ["care"]

    @get(operation_id="listCareRequests", opt={"scope": "members:read"})
    async def list_requests(
        self,
        db: Db,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        member_id: FromQuery[uuid.UUID | None] = None,
        kind: FromQuery[str | None] = None,
    ) -> Page[CareRequestOut]:
        """Care requests, newest first: what plugins and jobs asked to say to which member, and why."""
        check_limit(limit)
        query = select(CareRequest).order_by(CareRequest.id.desc()).limit(limit + 1)
        if cursor:
            query = query.where(CareRequest.id < cursor_uuid(decode_cursor(cursor, 1)[0]))
        if member_id is not None:
            query = query.where(CareRequest.member_id == member_id)
        if kind is not None:
            query = query.where(CareRequest.kind == kind)
        rows = (await db.execute(query)).scalars().all()
        items, next_cursor = page_of(rows, limit, lambda r: encode_cursor(r.id))
        return Page(
            [
                CareRequestOut(r.id, r.member_id, r.kind, r.purpose, r.source, r.status, r.payload, r.created_at)
                for r in items
            ],
            next_cursor,
        )


def care_controllers() -> list[type[Controller]]:
    """Every care route, in one list: each part of the engine adds its controllers here."""
    from core.care.config_api import (
        CareCalendarController,
        CareRulesController,
        CareTemplatesController,
        CareTriggersController,
    )
    from core.care.protection_api import PROTECTION_ROUTES
    from core.care.record_api import MemberMessagesController, MessagesController

    return [
        *PROTECTION_ROUTES,
        CareRequestsController,
        CareTriggersController,
        CareTemplatesController,
        CareRulesController,
        CareCalendarController,
        MessagesController,
        MemberMessagesController,
    ]
