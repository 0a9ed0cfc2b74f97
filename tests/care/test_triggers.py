"""Every core trigger: the occasion is found on its day in the member's zone, once (a stable key), and becomes a
message with the trigger's variables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from core.testing import TenantHandle
from tests.care.conftest import Occasions, messages, rule, template

T0 = datetime(2031, 6, 10, 10, tzinfo=UTC)


def _addr(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


async def _rule_for(tenant: TenantHandle, trigger: str, body: str, **fields: Any) -> dict[str, Any]:
    created = await template(tenant, trigger, en={"subject": trigger, "body": body})
    return await rule(tenant, trigger, created["id"], **fields)


async def _bodies(tenant: TenantHandle, trigger: str) -> dict[str, str]:
    """member id -> rendered subject of each message of the trigger (the record keeps the subject; the body is
    checked through the subject by putting the variables there)."""
    return {m["member_id"]: m["subject"] for m in await messages(tenant, trigger=trigger)}


async def test_anniversary_on_the_local_day_with_the_years(
    care_tenant: TenantHandle, find_occasions: Occasions
) -> None:
    created = await template(care_tenant, "anniversary", en={"subject": "{{ years }} years", "body": "Thanks"})
    await rule(care_tenant, "anniversary", created["id"])
    with time_machine.travel(datetime(2029, 6, 10, 9, tzinfo=UTC), tick=False):
        member = await care_tenant.enrol(email=_addr("anni"))
    assert (await find_occasions(care_tenant, datetime(2031, 6, 9, 12, tzinfo=UTC))).messages == 0
    assert (await find_occasions(care_tenant, datetime(2031, 6, 10, 12, tzinfo=UTC))).messages == 1
    assert (await find_occasions(care_tenant, datetime(2031, 6, 10, 18, tzinfo=UTC))).messages == 0
    assert await _bodies(care_tenant, "anniversary") == {member["id"]: "2 years"}


async def test_holiday_greetings_from_the_tenants_calendar(
    care_tenant: TenantHandle, find_occasions: Occasions
) -> None:
    await care_tenant.post("/v1/care/calendar", json={"day": "2031-06-12", "name": "Founders' Day"})
    created = await template(care_tenant, "holiday", en={"subject": "Happy {{ holiday_name }}", "body": "x"})
    await rule(care_tenant, "holiday", created["id"])
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        tokyo = await care_tenant.enrol(email=_addr("tokyo"), timezone="Asia/Tokyo")
        london = await care_tenant.enrol(email=_addr("london"))
    # 11 June 16:00 UTC: already 12 June in Tokyo, still 11 June in London.
    assert (await find_occasions(care_tenant, datetime(2031, 6, 11, 16, tzinfo=UTC))).messages == 1
    assert (await find_occasions(care_tenant, datetime(2031, 6, 12, 9, tzinfo=UTC))).messages == 1
    assert await _bodies(care_tenant, "holiday") == {
        tokyo["id"]: "Happy Founders' Day",
        london["id"]: "Happy Founders' Day",
    }


async def test_tier_changes_up_and_down(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    await care_tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await care_tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    up = await template(care_tenant, "tier_changed", en={"subject": "Up to {{ new_tier }}", "body": "x"})
    down = await template(care_tenant, "tier_changed", en={"subject": "Now {{ new_tier }}", "body": "x"})
    await rule(care_tenant, "tier_changed", up["id"], params={"direction": "up"})
    await rule(care_tenant, "tier_changed", down["id"], params={"direction": "down"})
    member = await care_tenant.enrol(email=_addr("tier"))
    assert (
        await care_tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "vip"})
    ).status_code == 200
    await find_occasions(care_tenant)
    assert (
        await care_tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "base", "reason": "end"})
    ).status_code == 200
    await find_occasions(care_tenant)
    await find_occasions(care_tenant)
    subjects = sorted(m["subject"] for m in await messages(care_tenant, trigger="tier_changed"))
    assert "Up to gold" in subjects and "Now base" in subjects
    assert "Now gold" not in subjects and "Up to base" not in subjects


async def test_tier_at_risk_before_its_status_ends(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    await care_tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    await _rule_for(care_tenant, "tier_at_risk", "x", params={"days": 30})
    created = await template(
        care_tenant, "tier_at_risk", en={"subject": "{{ tier }} ends in {{ days_left }} days", "body": "x"}
    )
    await rule(care_tenant, "tier_at_risk", created["id"], params={"days": 30})
    member = await care_tenant.enrol(email=_addr("risk"))
    until = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    await care_tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "vip", "until": until})
    assert (await find_occasions(care_tenant)).messages == 0
    later = datetime.now(UTC) + timedelta(days=40)
    assert (await find_occasions(care_tenant, later)).messages == 2  # both rules
    assert (await find_occasions(care_tenant, later + timedelta(days=1))).messages == 0
    assert "gold ends in 19 days" in {m["subject"] for m in await messages(care_tenant, trigger="tier_at_risk")}


async def test_points_and_vouchers_expiring(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    await care_tenant.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 60}})
    created = await template(care_tenant, "points_expiring", en={"subject": "{{ points }} points expire", "body": "x"})
    await rule(care_tenant, "points_expiring", created["id"], params={"days": 30})
    voucher = await template(
        care_tenant, "voucher_expiring", en={"subject": "{{ reward_name }} {{ voucher_code }}", "body": "x"}
    )
    await rule(care_tenant, "voucher_expiring", voucher["id"], params={"days": 7})
    member = await care_tenant.enrol(email=_addr("exp"))
    await care_tenant.credit(member["id"], 500)
    reward = (
        await care_tenant.post(
            "/v1/rewards", json={"code": "COFFEE", "name": "Free coffee", "points_cost": 100, "voucher_valid_days": 10}
        )
    ).json()
    redemption = (
        await care_tenant.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": reward["id"]})
    ).json()
    now = datetime.now(UTC)
    assert (await find_occasions(care_tenant, now)).messages == 0
    assert (await find_occasions(care_tenant, now + timedelta(days=5))).messages == 1  # the voucher: 5 days left
    assert (await find_occasions(care_tenant, now + timedelta(days=35))).messages == 1  # the points: 25 days left
    assert (await find_occasions(care_tenant, now + timedelta(days=36))).messages == 0
    subjects = {m["subject"] for m in await messages(care_tenant, member_id=member["id"])}
    assert subjects == {f"Free coffee {redemption['voucher_code']}", "400 points expire"}


async def test_lapsing_members_once_per_lapse(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    created = await template(care_tenant, "lapsing", en={"subject": "{{ days_inactive }} days", "body": "x"})
    await rule(care_tenant, "lapsing", created["id"], params={"days": 60}, purpose="service")
    with time_machine.travel(T0, tick=False):
        member = await care_tenant.enrol("lap-1", email=_addr("lap"))
        event = {
            "type": "purchase",
            "event_id": "lap-e1",
            "member": {"external_id": "lap-1"},
            "occurred_at": T0.isoformat(),
            "amount": "10",
        }
        assert (await care_tenant.post("/v1/events", json=event)).status_code in (200, 201)
    assert (await find_occasions(care_tenant, T0 + timedelta(days=59))).messages == 0
    assert (await find_occasions(care_tenant, T0 + timedelta(days=61))).messages == 1
    assert (await find_occasions(care_tenant, T0 + timedelta(days=62))).messages == 0
    assert await _bodies(care_tenant, "lapsing") == {member["id"]: "61 days"}


async def test_follow_up_n_days_after_an_event_of_a_type(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    created = await template(care_tenant, "event_follow_up", en={"subject": "How was {{ event_id }}?", "body": "x"})
    await rule(care_tenant, "event_follow_up", created["id"], params={"event_type": "purchase", "days": 2})
    with time_machine.travel(T0, tick=False):
        member = await care_tenant.enrol("fu-1", email=_addr("fu"))
        event = {
            "type": "purchase",
            "event_id": "fu-e1",
            "member": {"external_id": "fu-1"},
            "occurred_at": T0.isoformat(),
            "amount": "10",
        }
        assert (await care_tenant.post("/v1/events", json=event)).status_code in (200, 201)
    assert (await find_occasions(care_tenant, T0 + timedelta(days=1))).messages == 0
    assert (await find_occasions(care_tenant, T0 + timedelta(days=2, hours=1))).messages == 1
    assert (await find_occasions(care_tenant, T0 + timedelta(days=2, hours=5))).messages == 0
    assert await _bodies(care_tenant, "event_follow_up") == {member["id"]: "How was fu-e1?"}


async def test_audience_by_tier_and_points_attached_once(care_tenant: TenantHandle, find_occasions: Occasions) -> None:
    await care_tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await care_tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    created = await template(care_tenant, "welcome", en={"subject": "Welcome gold", "body": "x"})
    await rule(care_tenant, "welcome", created["id"], audience={"tiers": ["gold"]}, points=50)
    gold = await care_tenant.enrol(email=_addr("gold"))
    await care_tenant.put(f"/v1/members/{gold['id']}/tier", json={"tier": "gold", "reason": "vip"})
    plain = await care_tenant.enrol(email=_addr("plain"))
    await find_occasions(care_tenant)
    await find_occasions(care_tenant)
    assert [m["member_id"] for m in await messages(care_tenant, trigger="welcome")] == [gold["id"]]
    assert (await care_tenant.balance(gold["id"]))["available"] == 50
    assert (await care_tenant.balance(plain["id"]))["available"] == 0
