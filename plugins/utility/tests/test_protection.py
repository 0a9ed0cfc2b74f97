"""Quiet hours are bypassed for safety only: at 23:00 in London an unplanned outage's alert is queued to go at once,
a planned outage's notice (service) waits for 08:00; bad outage input is refused with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from core.testing import MakeTenant, TenantHandle
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages, outage, planned


async def test_quiet_hours_bypassed_for_safety_only(make_tenant: MakeTenant) -> None:
    night = datetime(2031, 1, 14, 23, 0, tzinfo=UTC)  # 23:00 GMT in London
    with time_machine.travel(night, tick=True):
        t = await enable_utility(await make_tenant(timezone="Europe/London"))
        await care_rules(t, "utility.outage_alert", "utility.planned_notice", channels=["sms"])
        await account(t, feeder="F1")
        await account(t, feeder="F2")
        await outage(t, feeders=["F1"], starts_at=(night - timedelta(minutes=20)).isoformat())
        await planned(t, night + timedelta(days=3), feeders=["F2"])
    [alert] = await messages(t, trigger="utility.outage_alert")
    [notice] = await messages(t, trigger="utility.planned_notice")
    assert (alert["purpose"], alert["state"], alert["reason"]) == ("safety", "queued", None)
    assert (notice["purpose"], notice["state"], notice["reason"]) == ("service", "deferred", "quiet_hours")
    assert datetime.fromisoformat(notice["due_at"]) == datetime(2031, 1, 15, 8, tzinfo=UTC)


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"feeders": []}, "feeders"),
        ({"category": "volcano"}, "category"),
        ({"starts_at": (NOW + timedelta(hours=2)).isoformat()}, "starts_at"),
        ({"etr": (NOW - timedelta(hours=3)).isoformat()}, "etr"),
        ({"ends_at": (NOW + timedelta(hours=3)).isoformat()}, "ends_at"),
        ({"kind": "planned", "ends_at": None, "etr": None}, "ends_at"),
        (
            {
                "kind": "planned",
                "starts_at": (NOW - timedelta(hours=1)).isoformat(),
                "ends_at": NOW.isoformat(),
                "etr": None,
            },
            "starts_at",
        ),
        ({"starts_at": "2031-01-01T10:00:00"}, "starts_at"),
        ({"feeders": ["F1"] * 501}, "feeders"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_outages_refused_with_nothing_written(
    utility_tenant: TenantHandle, fields: dict[str, Any], field: str
) -> None:
    t = utility_tenant
    await care_rules(t, "utility.outage_alert")
    await account(t)
    problem = await outage(t, status=422, **fields)
    assert problem["field"] == field, problem
    assert (await t.get("/v1/utility/outages")).json()["items"] == []
    assert await messages(t) == []


async def test_bad_restorations_and_claims(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    acct = await account(t)
    made = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=13)).isoformat(), etr=None)
    early = (datetime.now(UTC) - timedelta(hours=14)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for restored_at in (early, future):
        refused = await t.post(f"/v1/utility/outages/{made['id']}/restore", json={"restored_at": restored_at})
        assert refused.status_code == 422 and refused.json()["field"] == "restored_at"
    not_yet = await t.post(f"/v1/utility/outages/{made['id']}/claims", json={"account_id": acct["id"]})
    assert not_yet.status_code == 409
    assert (await t.get(f"/v1/utility/outages/{made['id']}")).json()["status"] == "confirmed"
    assert (await t.post(f"/v1/utility/outages/{made['id']}/restore", json={})).status_code == 200
    twice = await t.post(f"/v1/utility/outages/{made['id']}/claims", json={"account_id": acct["id"]})
    assert twice.status_code == 409 and twice.json()["field"] == "account_id"
    missed = await account(t, feeder="F9")
    claimed = await t.post(f"/v1/utility/outages/{made['id']}/claims", json={"account_id": missed["id"]})
    assert claimed.status_code == 201, claimed.text
    assert (claimed.json()["amount"], claimed.json()["source"], claimed.json()["status"]) == ("95.00", "claim", "paid")
    report = (await t.get(f"/v1/utility/outages/{made['id']}/compensation")).json()
    assert report["accounts"] == 2 and report["amount"] == "190.00"
