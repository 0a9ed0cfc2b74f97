"""Care requests: recorded once per dedupe key, listed, announced in the outbox."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.care.service import request_care
from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.testing import TenantHandle


async def test_a_care_request_is_recorded_once_and_announced(tenant: TenantHandle, runtime) -> None:
    member = await tenant.enrol("c-1")
    member_id = uuid.UUID(member["id"])
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        first = await request_care(
            session,
            tenant_id=tenant.id,
            member_id=member_id,
            kind="fuel.win_back",
            purpose="marketing",
            source="fuel",
            dedupe_key="win-back:c-1:2031-01",
            payload={"offer": "10p off"},
        )
        again = await request_care(
            session,
            tenant_id=tenant.id,
            member_id=member_id,
            kind="fuel.win_back",
            purpose="marketing",
            source="fuel",
            dedupe_key="win-back:c-1:2031-01",
        )
        announced = await session.execute(select(OutboxEvent).where(OutboxEvent.type == "care.requested"))
        announced_rows = announced.scalars().all()
    assert (first, again) == (True, False)
    assert len(announced_rows) == 1 and announced_rows[0].payload["payload"] == {"offer": "10p off"}
    listed = (await tenant.get("/v1/care/requests", params={"member_id": member["id"]})).json()["items"]
    assert [(r["kind"], r["source"], r["purpose"]) for r in listed] == [("fuel.win_back", "fuel", "marketing")]
