"""``request_care_many``: many members' care requests at once, with ``request_care``'s semantics (one occasion and
message per key, rules, protection, the record and the ``care.requested`` events), a few statements per batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from core.care.models import CareRequest
from core.care.service import CareAsk, request_care, request_care_many
from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import TenantHandle
from tests.care.conftest import messages, rule, template


async def test_many_requests_as_one_by_one(care_tenant: TenantHandle, care_runtime: Runtime) -> None:
    t = care_tenant
    created = await template(t, None, en={"subject": "Notice {{ member.first_name }}", "body": "Hello"})
    await rule(t, "lapsing", created["id"], purpose="service", category="notice")
    members = [await t.enrol(name=f"M{i}", email=f"m{i}-{uuid.uuid4().hex[:6]}@example.com") for i in range(5)]
    # 23:00 in London: a service message is deferred by quiet hours, as request_care's would be
    with time_machine.travel(datetime(2031, 6, 10, 22, tzinfo=UTC), tick=False):
        async with tenant_session(care_runtime.sessionmaker, t.id) as session:
            await request_care(
                session,
                tenant_id=t.id,
                member_id=uuid.UUID(members[0]["id"]),
                kind="lapsing",
                purpose="service",
                source="test",
                dedupe_key=f"k:{members[0]['id']}",
            )
        asks = [CareAsk(uuid.UUID(m["id"]), f"k:{m['id']}", {"n": i}) for i, m in enumerate(members)]
        for expected in (4, 0):  # the first was recorded already; then everything was
            async with tenant_session(care_runtime.sessionmaker, t.id) as session:
                new = await request_care_many(
                    session, tenant_id=t.id, kind="lapsing", purpose="service", source="test", asks=asks + asks[:2]
                )
            assert len(new) == expected
    queued = await messages(t, trigger="lapsing")
    assert len(queued) == 5 and {m["occasion_key"] for m in queued} == {a.dedupe_key for a in asks}
    assert {(m["state"], m["reason"]) for m in queued} == {("deferred", "quiet_hours")}
    async with tenant_session(care_runtime.sessionmaker, t.id) as session:
        recorded = (
            await session.execute(select(func.count()).select_from(CareRequest).where(CareRequest.tenant_id == t.id))
        ).scalar_one()
        announced = (
            await session.execute(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.tenant_id == t.id, OutboxEvent.type == "care.requested")
            )
        ).scalar_one()
    assert recorded == 5 and announced == 5
