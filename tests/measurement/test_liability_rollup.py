"""The liability roll-up gives the full computation's figures to the point, on both databases: a history in a zone
with a DST month boundary, pending credits released after the roll-up's cut-off, reversals, redemptions (one
cancelled), expiries; as_of now, at a month's end, on a release day and before the cut-off; changes after the build;
the build twice and at once; a zone change; another tenant."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from core.db.engine import tenant_session
from core.measurement import liability as full
from core.measurement import liability_rollup
from core.measurement.jobs import build_liability_rollup
from core.measurement.models import LiabilityRollup
from core.runtime import Runtime
from core.testing import TenantHandle
from core.worker import tick
from tests.measurement.test_reports import _event

BERLIN = ZoneInfo("Europe/Berlin")


async def _both(
    runtime: Runtime, tenant_id: uuid.UUID, as_of: datetime, months: int, tz: ZoneInfo = BERLIN
) -> tuple[Any, Any]:
    """The full computation's figures and the roll-up's (None when it does not apply)."""
    async with tenant_session(runtime.sessionmaker, tenant_id) as db:
        bounds = full.month_starts(as_of, months, tz)
        scanned = (
            await full._scan(db, tenant_id, as_of, months, bounds),
            await full._cohorts(db, tenant_id, as_of, tz),
        )
        rolled = await full._from_rollup(db, tenant_id, as_of, months, bounds, tz)
    return scanned, rolled


async def _same(runtime: Runtime, tenant_id: uuid.UUID, instants: list[datetime]) -> None:
    for as_of in instants:
        for months in (1, 3, 13):
            scanned, rolled = await _both(runtime, tenant_id, as_of, months)
            assert rolled is not None, as_of
            assert rolled == scanned, (as_of, months)


async def _rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[Any]:
    async with tenant_session(runtime.sessionmaker, tenant_id) as db:
        rollup = liability_rollup.rollup
        return list(
            (
                await db.execute(
                    select(rollup.c.measure, rollup.c.kind, rollup.c.day_a, rollup.c.day_b, rollup.c.points)
                    .where(rollup.c.tenant_id == tenant_id)
                    .order_by(rollup.c.measure, rollup.c.kind, rollup.c.day_a, rollup.c.day_b)
                )
            ).all()
        )


async def test_the_rollup_gives_the_full_computation_figures(
    tenant: TenantHandle, runtime: Runtime, make_tenant: Any
) -> None:
    assert (await tenant.patch("/v1/program", json={"timezone": "Europe/Berlin"})).status_code == 200
    assert (
        await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 30}})
    ).status_code == 200
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "1"})
    bonus = await tenant.post(
        "/v1/earning-rules",
        json={
            "name": "stay bonus, after checkout",
            "kind": "fixed",
            "points": "50",
            "pending_days": 20,
            "conditions": [{"field": "event.attributes.stay", "op": "eq", "value": True}],
        },
    )
    assert bonus.status_code == 201, bonus.text
    reward = (await tenant.post("/v1/rewards", json={"code": "MUG", "name": "Mug", "points_cost": 30})).json()
    a, b = (await tenant.enrol("roll-a"))["id"], (await tenant.enrol("roll-b"))["id"]

    with time_machine.travel(datetime(2026, 3, 10, 12, tzinfo=UTC), tick=True):
        await _event(tenant, a, "100", "a-1", stay=True)  # 100 posted, 50 pending until 30 March (after DST)
        await tenant.post("/v1/redemptions", json={"member_id": a, "reward_id": reward["id"]})
        second = (await tenant.post("/v1/redemptions", json={"member_id": a, "reward_id": reward["id"]})).json()
        cancel = await tenant.post(f"/v1/redemptions/{second['id']}/cancel", json={"reason": "changed mind"})
        assert cancel.status_code == 200
        await tenant.credit(b, 200)
        await tenant.credit(b, -20, reason="correction")
        refunded = await _event(tenant, b, "40", "b-1")
        assert (await tenant.post(f"/v1/events/{refunded['id']}/reverse", json={"reason": "refund"})).status_code == 200
        await _event(tenant, b, "10", "b-2", stay=True)  # a pending bonus that will be reversed while pending
    with time_machine.travel(datetime(2026, 3, 12, 9, tzinfo=UTC), tick=True):
        pending_bonus = await _event(tenant, b, "5", "b-3", stay=True)
        reverse = await tenant.post(f"/v1/events/{pending_bonus['id']}/reverse", json={"reason": "cancelled stay"})
        assert reverse.status_code == 200
    # Either side of the Berlin month boundary (31 March 22:00 UTC, in summer time since 29 March)
    with time_machine.travel(datetime(2026, 3, 31, 21, 30, tzinfo=UTC), tick=True):
        await _event(tenant, a, "7", "a-2")
    with time_machine.travel(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), tick=True):
        late_march = await _event(tenant, a, "9", "a-3")
    with time_machine.travel(datetime(2026, 4, 15, 8, tzinfo=UTC), tick=True):
        await tick(runtime, tenant.id)  # releases March's pending credits, expires March's lots, builds the roll-up
        await _event(tenant, b, "30", "b-4", stay=True)  # pending until 5 May
        await _event(tenant, a, "11", "a-4")
    with time_machine.travel(datetime(2026, 4, 20, 12, tzinfo=UTC), tick=True):
        built = await build_liability_rollup(runtime, tenant.id)
        # Held back to the day of the credit still pending (15 April, local)
        assert built["cutoff"] == "2026-04-14T22:00:00+00:00", built
        now = datetime.now(UTC)
        instants = [
            now,
            datetime(2026, 3, 31, 22, tzinfo=UTC),  # the end of March, local
            datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC),
            datetime(2026, 3, 30, 20, tzinfo=UTC),  # the day the first bonus was released
            datetime(2026, 3, 12, 9, tzinfo=UTC),
            datetime(2026, 4, 15, 8, tzinfo=UTC),
        ]
        await _same(runtime, tenant.id, instants)
        # What the roll-up cannot know yet: a reversal of an old credit, new entries, later the release
        old = await tenant.post(f"/v1/events/{late_march['id']}/reverse", json={"reason": "refund"})
        assert old.status_code == 200, old.text
        await _event(tenant, a, "13", "a-5")
        fresh = await _event(tenant, b, "17", "b-5")
        assert (await tenant.post(f"/v1/events/{fresh['id']}/reverse", json={"reason": "refund"})).status_code == 200
        await _same(runtime, tenant.id, [datetime.now(UTC), *instants[1:]])
    with time_machine.travel(datetime(2026, 5, 6, 12, tzinfo=UTC), tick=True):
        await tick(runtime, tenant.id)  # releases b's bonus, rebuilds
        await _same(runtime, tenant.id, [datetime.now(UTC), datetime(2026, 4, 30, 22, tzinfo=UTC), *instants])
        report = (await tenant.get("/v1/reports/liability", params={"months": 3})).json()
        # Built twice, and twice at once: the same rows (the tick's build may have run before the release)
        await build_liability_rollup(runtime, tenant.id)
        first = await _rows(runtime, tenant.id)
        await asyncio.gather(build_liability_rollup(runtime, tenant.id), build_liability_rollup(runtime, tenant.id))
        assert await _rows(runtime, tenant.id) == first
        again = (await tenant.get("/v1/reports/liability", params={"months": 3})).json()
        assert again["items"] == report["items"]
        assert {**again["summary"], "as_of": None} == {**report["summary"], "as_of": None}
        _, rolled = await _both(runtime, tenant.id, datetime.now(UTC), 3)
        assert rolled is not None and rolled[0][0] + sum(sum(m.values()) for m in rolled[0][2].values()) == int(
            report["summary"]["posted_points"]
        )

        # Another zone: the roll-up does not apply (the ledger is read) until the next build
        assert (await tenant.patch("/v1/program", json={"timezone": "America/New_York"})).status_code == 200
        scanned, rolled = await _both(runtime, tenant.id, datetime.now(UTC), 3, ZoneInfo("America/New_York"))
        assert rolled is None
        moved = (await tenant.get("/v1/reports/liability", params={"months": 3})).json()
        assert moved["summary"]["posted_points"] == report["summary"]["posted_points"]
        await build_liability_rollup(runtime, tenant.id)
        again, rolled = await _both(runtime, tenant.id, datetime.now(UTC), 3, ZoneInfo("America/New_York"))
        assert rolled == again == scanned

        # Another tenant sees none of it
        other = await make_tenant()
        async with tenant_session(runtime.sessionmaker, other.id) as db:
            # through the ORM: scoped to the tenant in context (and by row-level security on PostgreSQL)
            assert (await db.execute(select(LiabilityRollup))).all() == []
        empty = (await other.get("/v1/reports/liability")).json()["summary"]
        assert (empty["outstanding_points"], empty["cohorts"]) == (0, [])
        await build_liability_rollup(runtime, other.id)
        assert (await other.get("/v1/reports/liability")).json()["summary"]["outstanding_points"] == 0
        assert await _rows(runtime, tenant.id) != []
        assert timedelta(0) < liability_rollup.HOLD_BACK
