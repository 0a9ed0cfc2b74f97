"""Tolerance of service incidents (issue 13's member metric): of a member's complaints in the window, the share after
which the member was active again; unknown (null) for a member without a complaint. Read by the nightly run into
``GET /v1/members/{id}/loyalty`` and by the loyalty types' trust rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.clock import utcnow
from core.measurement import nightly
from core.runtime import Runtime
from core.testing import TenantHandle


async def purchase(t: TenantHandle, member_id: str, at: datetime, n: int) -> None:
    made = await t.post(
        "/v1/events",
        json={
            "type": "purchase",
            "event_id": f"pos-{member_id[:8]}-{n}",
            "member": {"member_id": member_id},
            "occurred_at": at.isoformat(),
            "amount": "10",
            "currency": "GBP",
        },
    )
    assert made.status_code in (200, 201), made.text


async def complaint(t: TenantHandle, member_id: str, at: datetime, kind: str = "complaint") -> None:
    made = await t.post(
        "/v1/cases",
        json={"member_id": member_id, "subject": "Slow service", "kind": kind, "received_at": at.isoformat()},
    )
    assert made.status_code == 201, made.text


async def test_active_again_after_a_complaint(tenant: TenantHandle, runtime: Runtime) -> None:
    now = utcnow()
    with time_machine.travel(now - timedelta(days=30), tick=False):  # members since before it all
        back, gone, calm, mixed = [await tenant.enrol() for _ in range(4)]
    ten_days_ago = now - timedelta(days=10)
    for i, m in enumerate((back, gone, calm, mixed)):
        await purchase(tenant, m["id"], now - timedelta(days=20), i)
    await complaint(tenant, back["id"], ten_days_ago)
    await purchase(tenant, back["id"], now - timedelta(days=2), 10)  # came back after the complaint
    await complaint(tenant, gone["id"], ten_days_ago)  # never seen again
    await complaint(tenant, calm["id"], ten_days_ago, kind="question")  # a question is no incident
    await complaint(tenant, mixed["id"], now - timedelta(days=15))
    await purchase(tenant, mixed["id"], now - timedelta(days=12), 11)
    await complaint(tenant, mixed["id"], now - timedelta(days=5))  # after its last activity
    await nightly.run(runtime.sessionmaker, tenant.id, now)

    async def tolerance(member: dict) -> float | None:
        answer = await tenant.get(f"/v1/members/{member['id']}/loyalty")
        assert answer.status_code == 200, answer.text
        value = answer.json()["metrics"]["incident_tolerance"]
        return None if value is None else float(value)

    assert await tolerance(back) == 1.0
    assert await tolerance(gone) == 0.0
    assert await tolerance(calm) is None
    assert await tolerance(mixed) == 0.5
    assert datetime.now(UTC) > ten_days_ago
