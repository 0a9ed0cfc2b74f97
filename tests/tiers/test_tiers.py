"""Tiers: upgrade at once, windows in the program's time zone, downgrade at expiry, manual floors, recalculation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from core.worker import tick


def purchase(event_id: str, member: str, amount: str, at: datetime) -> dict:
    return {
        "type": "purchase",
        "event_id": event_id,
        "member": {"external_id": member},
        "occurred_at": at.isoformat(),
        "amount": amount,
    }


async def ladder(
    tenant: TenantHandle,
    *,
    window: dict,
    validity: dict | None = None,
    downgrade: str = "one_step",
    silver: str = "1000",
    gold: str = "5000",
) -> None:
    await tenant.post("/v1/earning-rules", json={"name": "1 per unit", "kind": "per_amount", "points": "1"})
    tiers = [
        {"code": "base", "name": "Base", "rank": 0},
        {
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "downgrade": downgrade,
            "qualification": {
                "window": window,
                "mode": "any",
                "criteria": [{"metric": "spend", "min": silver}, {"metric": "count:purchase", "min": "20"}],
            },
            "benefits": {"earning_multiplier": "1.25", "perks": ["late checkout"]},
            "validity": validity or {"kind": "none"},
        },
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "downgrade": downgrade,
            "qualification": {"window": window, "criteria": [{"metric": "spend", "min": gold}]},
            "benefits": {"earning_multiplier": "1.5"},
            "validity": validity or {"kind": "none"},
        },
    ]
    for tier in tiers:
        response = await tenant.post("/v1/tiers", json=tier)
        assert response.status_code == 201, response.text


async def member_tier(tenant: TenantHandle, member_id: str) -> dict:
    response = await tenant.get(f"/v1/members/{member_id}/tier")
    assert response.status_code == 200, response.text
    return response.json()


async def test_upgrade_at_once_with_benefits_and_progress(tenant: TenantHandle) -> None:
    await ladder(tenant, window={"kind": "lifetime"})
    member = await tenant.enrol("t-1")
    assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "base"
    now = datetime.now(UTC)
    first = (await tenant.post("/v1/events", json=purchase("e-1", "t-1", "999", now))).json()
    assert first["tier"] is None and first["points"] == 999
    second = (await tenant.post("/v1/events", json=purchase("e-2", "t-1", "100", now))).json()
    assert second["tier"]["from"] == "base" and second["tier"]["to"] == "silver"
    third = (await tenant.post("/v1/events", json=purchase("e-3", "t-1", "100", now))).json()
    assert third["points"] == 125 and third["awards"][-1]["source"] == "tier_multiplier"  # Silver earns +25 %
    state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "silver" and state["benefits"]["perks"] == ["late checkout"]
    assert state["next"]["tier"]["code"] == "gold"
    assert state["next"]["progress"] == [
        {"metric": "spend", "window": "lifetime", "current": "1199", "required": "5000", "remaining": "3801"}
    ]
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in state["history"]] == [
        ("base", "silver", "upgrade"),
        (None, "base", "enrolment"),
    ]


async def test_calendar_year_counts_in_the_programs_time_zone(make_tenant: MakeTenant) -> None:
    # 31 Dec 2030 17:00 UTC is already 1 Jan 2031 in Shanghai, still 31 Dec in London.
    late_evening_utc = datetime(2030, 12, 31, 17, 0, tzinfo=UTC)
    earlier_that_day = datetime(2030, 12, 31, 10, 0, tzinfo=UTC)
    results = {}
    for tz in ("Europe/London", "Asia/Shanghai"):
        tenant = await make_tenant(timezone=tz)
        await ladder(tenant, window={"kind": "calendar_year"})
        member = await tenant.enrol("tz-1")
        with time_machine.travel(late_evening_utc, tick=False):
            await tenant.post("/v1/events", json=purchase("a", "tz-1", "600", earlier_that_day))
            await tenant.post("/v1/events", json=purchase("b", "tz-1", "600", late_evening_utc))
            results[tz] = (await member_tier(tenant, member["id"]))["tier"]["code"]
    # London: both purchases are in 2030 -> 1,200 -> Silver. Shanghai: a new year began, only 600 count.
    assert results == {"Europe/London": "silver", "Asia/Shanghai": "base"}


async def test_a_batch_counts_backdated_items_only_in_the_windows_they_fall_in(tenant: TenantHandle) -> None:
    """A batch answers as the same events sent one at a time: last year's purchases (a backfill) do not count toward
    this calendar year's status, even when a later item of the same batch looks at the sums."""
    await ladder(tenant, window={"kind": "calendar_year"})
    now = datetime(2031, 3, 15, 12, tzinfo=UTC)
    last_year = [datetime(2030, 12, 10, 12, tzinfo=UTC), datetime(2030, 12, 20, 12, tzinfo=UTC)]
    batched, single = await tenant.enrol("b-1"), await tenant.enrol("s-1")
    with time_machine.travel(now, tick=False):
        batch = [purchase(f"b-{i}", "b-1", "600", at) for i, at in enumerate(last_year)]
        answer = await tenant.post("/v1/events/batch", json={"events": batch})
        assert answer.status_code == 200 and answer.json()["created"] == 2, answer.text
        for i, at in enumerate(last_year):
            assert (await tenant.post("/v1/events", json=purchase(f"s-{i}", "s-1", "600", at))).status_code == 201
        assert (await member_tier(tenant, batched["id"]))["tier"]["code"] == "base"
        assert (await member_tier(tenant, single["id"]))["tier"]["code"] == "base"
        mixed = [purchase("b-2", "b-1", "600", now - timedelta(days=30)), purchase("b-3", "b-1", "500", now)]
        results = (await tenant.post("/v1/events/batch", json={"events": mixed})).json()["results"]
        assert results[1]["outcome"]["tier"]["to"] == "silver"  # 600 + 500 this year
        progress = (await member_tier(tenant, batched["id"]))["next"]["progress"]
        assert progress[0]["current"] == "1100"


async def test_a_batchs_buckets_add_fractional_spend_exactly_into_the_same_days_bucket(tenant: TenantHandle) -> None:
    """The buckets' values travel as text on PostgreSQL (core.qualification.service): sums of cents stay exact, a
    member's several items of a batch and a second batch add to the same day's bucket, other members are apart."""
    await ladder(tenant, window={"kind": "calendar_year"})
    now = datetime(2031, 3, 15, 12, tzinfo=UTC)
    ann, bob = await tenant.enrol("ann"), await tenant.enrol("bob")
    with time_machine.travel(now, tick=False):
        first = [
            purchase("f-1", "ann", "12.34", now),
            purchase("f-2", "bob", "0.10", now),
            purchase("f-3", "ann", "0.01", now),
            purchase("f-4", "ann", "33.33", now - timedelta(hours=1)),
        ]
        answer = await tenant.post("/v1/events/batch", json={"events": first})
        assert answer.status_code == 200 and answer.json()["created"] == 4, answer.text
        second = [purchase("s-1", "ann", "0.07", now), purchase("s-2", "bob", "999.99", now)]
        answer = await tenant.post("/v1/events/batch", json={"events": second})
        assert answer.status_code == 200 and answer.json()["created"] == 2, answer.text
        ann_progress = (await member_tier(tenant, ann["id"]))["next"]["progress"]
        bob_state = await member_tier(tenant, bob["id"])
    by_metric = {p["metric"]: p["current"] for p in ann_progress}
    assert by_metric == {"spend": "45.75", "count:purchase": "4"}
    assert bob_state["tier"]["code"] == "silver"  # 0.10 + 999.99 = 1000.09, past silver's 1000
    assert {p["metric"]: p["current"] for p in bob_state["next"]["progress"]} == {"spend": "1000.09"}


async def test_rolling_window_and_downgrade_when_validity_ends(tenant: TenantHandle, runtime: Runtime) -> None:
    await ladder(
        tenant,
        window={"kind": "rolling_days", "days": 90},
        validity={"kind": "days", "days": 90},
        silver="300",
        gold="100000",
    )
    member = await tenant.enrol("r-1")
    start = datetime(2031, 3, 1, 12, tzinfo=UTC)
    for day, event_id in ((0, "r-a"), (30, "r-b"), (60, "r-c")):
        with time_machine.travel(start + timedelta(days=day), tick=False):
            await tenant.post("/v1/events", json=purchase(event_id, "r-1", "100", start + timedelta(days=day)))
    assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "silver"  # 300 within 90 days
    with time_machine.travel(start + timedelta(days=149), tick=False):
        await tick(runtime, tenant.id)  # valid until day 150: nothing happens yet
        assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "silver"
    with time_machine.travel(start + timedelta(days=151), tick=False):
        await tick(runtime, tenant.id)
        state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "base"  # nothing in the last 90 days any more
    assert state["history"][0]["reason"] == "downgrade"


async def test_still_qualified_at_expiry_renews(tenant: TenantHandle, runtime: Runtime) -> None:
    await ladder(tenant, window={"kind": "lifetime"}, validity={"kind": "days", "days": 30})
    member = await tenant.enrol("n-1")
    await tenant.post("/v1/events", json=purchase("n-a", "n-1", "1500", datetime.now(UTC)))
    with time_machine.travel(datetime.now(UTC) + timedelta(days=31), tick=False):
        await tick(runtime, tenant.id)
        state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "silver" and state["history"][0]["reason"] == "renewal"


@pytest.mark.parametrize(("policy", "lands_on"), [("one_step", "silver"), ("to_qualified", "base")])
async def test_downgrade_policy(tenant: TenantHandle, runtime: Runtime, policy: str, lands_on: str) -> None:
    await ladder(
        tenant, window={"kind": "rolling_days", "days": 30}, validity={"kind": "days", "days": 30}, downgrade=policy
    )
    member = await tenant.enrol("d-1")
    await tenant.post("/v1/events", json=purchase("d-a", "d-1", "6000", datetime.now(UTC)))
    assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "gold"
    with time_machine.travel(datetime.now(UTC) + timedelta(days=45), tick=False):
        await tick(runtime, tenant.id)
        assert (await member_tier(tenant, member["id"]))["tier"]["code"] == lands_on


async def test_fixed_date_validity_hilton_style(tenant: TenantHandle) -> None:
    # Status reached in year N lasts until the end of March in N+2.
    await ladder(
        tenant,
        window={"kind": "calendar_year"},
        validity={"kind": "fixed_date", "years_after": 2, "month": 3, "day": 31},
    )
    member = await tenant.enrol("h-1")
    at = datetime(2031, 6, 15, 12, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        outcome = (await tenant.post("/v1/events", json=purchase("h-a", "h-1", "2000", at))).json()
    # The end of 31 March 2033 in London: midnight BST, 23:00 UTC.
    assert outcome["tier"]["valid_until"] == "2033-03-31T23:00:00+00:00"
    assert member


async def test_manual_tier_is_a_floor_until_its_date(tenant: TenantHandle, runtime: Runtime) -> None:
    await ladder(tenant, window={"kind": "rolling_days", "days": 30}, validity={"kind": "days", "days": 30})
    member = await tenant.enrol("m-1")
    until = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    set_ = await tenant.put(
        f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "status match", "until": until}
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["tier"]["code"] == "gold" and set_.json()["floor"]["code"] == "gold"
    with time_machine.travel(datetime.now(UTC) + timedelta(days=60), tick=False):
        await tick(runtime, tenant.id)
        assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "gold"  # the floor holds
    with time_machine.travel(datetime.now(UTC) + timedelta(days=131), tick=False):
        await tick(runtime, tenant.id)
        assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "silver"
    unknown = await tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "platinum", "reason": "x"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "tier"


async def test_recalculate_preview_writes_nothing(tenant: TenantHandle) -> None:
    await tenant.post("/v1/earning-rules", json={"name": "1 per unit", "kind": "per_amount", "points": "1"})
    for i, amount in enumerate(("50", "1500", "7000")):
        await tenant.enrol(f"p-{i}")
        await tenant.post("/v1/events", json=purchase(f"pe-{i}", f"p-{i}", amount, datetime.now(UTC)))
    await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await tenant.post(
        "/v1/tiers",
        json={
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "qualification": {"window": {"kind": "lifetime"}, "criteria": [{"metric": "spend", "min": "1000"}]},
        },
    )
    preview = await tenant.post("/v1/tiers/recalculate?preview=true")
    assert preview.status_code == 200, preview.text
    assert preview.json()["evaluated"] == 3
    assert sorted((m["external_id"], m["to_tier"]) for m in preview.json()["moves"]) == [
        ("p-0", "base"),
        ("p-1", "silver"),
        ("p-2", "silver"),
    ]
    tiers = {t["code"]: t["members"] for t in (await tenant.get("/v1/tiers")).json()}
    assert tiers == {"base": 0, "silver": 0}
    applied = await tenant.post("/v1/tiers/recalculate")
    assert applied.status_code == 202, applied.text  # a job (tests/jobs covers it)
    await tick(tenant.client.app.state["runtime"], tenant.id)
    job = (await tenant.get(applied.headers["location"])).json()
    assert job["status"] == "done" and job["result"]["counts"] == {"enrolment": 3}
    tiers = {t["code"]: t["members"] for t in (await tenant.get("/v1/tiers")).json()}
    assert tiers == {"base": 1, "silver": 2}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "Bad Code", "name": "x", "rank": 1}, "code"),
        ({"code": "x", "name": "x", "rank": -1}, "rank"),
        (
            {"code": "x", "name": "x", "rank": 1, "qualification": {"window": {"kind": "rolling_days"}}},
            "qualification.window.days",
        ),
        (
            {"code": "x", "name": "x", "rank": 1, "qualification": {"criteria": [{"metric": "spend", "min": "0"}]}},
            "qualification.criteria[0].min",
        ),
        ({"code": "x", "name": "x", "rank": 1, "validity": {"kind": "days"}}, "validity.days"),
        ({"code": "x", "name": "x", "rank": 1, "benefits": {"earning_multiplier": "0"}}, "benefits.earning_multiplier"),
        ({"code": "x", "name": "x", "rank": 1, "benefits": {"free_beer": True}}, "benefits.free_beer"),
    ],
)
async def test_bad_tiers_are_refused(tenant: TenantHandle, body: dict, field: str) -> None:
    response = await tenant.post("/v1/tiers", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_tier_codes_and_ranks_are_unique_and_held_tiers_stay(tenant: TenantHandle) -> None:
    base = (await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})).json()
    assert (await tenant.post("/v1/tiers", json={"code": "base", "name": "B", "rank": 3})).status_code == 409
    assert (await tenant.post("/v1/tiers", json={"code": "other", "name": "B", "rank": 0})).status_code == 409
    holder = await tenant.enrol("holder")
    refused = await tenant.delete(f"/v1/tiers/{base['id']}")
    assert refused.status_code == 409, refused.text
    # Read back: the held tier is still there, unchanged, and its member still in it.
    kept = await tenant.get(f"/v1/tiers/{base['id']}")
    assert kept.status_code == 200 and (kept.json()["code"], kept.json()["rank"]) == ("base", 0)
    assert (await member_tier(tenant, holder["id"]))["tier"]["code"] == "base"


async def tier_events(runtime: Runtime, tenant: TenantHandle) -> list[dict]:
    from sqlalchemy import select

    from core.db.engine import tenant_session
    from core.outbox.models import OutboxEvent

    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        rows = await session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.type == "tier.changed").order_by(OutboxEvent.id)
        )
        return [dict(p) for p in rows.scalars()]


async def test_reversing_the_upgrading_purchase_moves_the_member_back(tenant: TenantHandle, runtime: Runtime) -> None:
    """Buy, reach Gold, refund: Gold goes (reason reversal), back to the tier before with the validity it had."""
    await ladder(tenant, window={"kind": "lifetime"}, validity={"kind": "days", "days": 365})
    member = await tenant.enrol("rv-1")
    now = datetime.now(UTC)
    first = (await tenant.post("/v1/events", json=purchase("rv-a", "rv-1", "1200", now))).json()
    assert first["tier"]["to"] == "silver"
    silver_until = (await member_tier(tenant, member["id"]))["valid_until"]
    second = (await tenant.post("/v1/events", json=purchase("rv-b", "rv-1", "4000", now))).json()
    assert (second["tier"]["from"], second["tier"]["to"], second["tier"]["reason"]) == ("silver", "gold", "upgrade")
    refund = await tenant.post(f"/v1/events/{second['id']}/reverse", json={"reason": "refund"})
    assert refund.status_code == 200, refund.text
    move = refund.json()["tier"]
    assert (move["from"], move["to"], move["reason"]) == ("gold", "silver", "reversal")
    assert datetime.fromisoformat(move["valid_until"]) == datetime.fromisoformat(silver_until)
    state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "silver" and state["valid_until"] == silver_until
    assert (state["history"][0]["reason"], state["history"][0]["from_tier"]) == ("reversal", "gold")
    assert state["next"]["progress"][0]["current"] == "1200"
    # A return of the first purchase takes Silver too: nothing is left of what reached it.
    returned = {
        "type": "return",
        "event_id": "rv-ret",
        "member": {"external_id": "rv-1"},
        "occurred_at": now.isoformat(),
        "amount": "1200",
        "attributes": {"original_event_id": "rv-a"},
    }
    assert (await tenant.post("/v1/events", json=returned)).status_code == 201
    state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "base" and state["history"][0]["reason"] == "reversal"
    assert [(e["from"], e["to"], e["reason"]) for e in await tier_events(runtime, tenant)][-2:] == [
        ("gold", "silver", "reversal"),
        ("silver", "base", "reversal"),
    ]


async def test_a_partial_reversal_lands_on_the_highest_tier_still_qualified(tenant: TenantHandle) -> None:
    await ladder(tenant, window={"kind": "lifetime"})
    member = await tenant.enrol("rv-2")
    big = (await tenant.post("/v1/events", json=purchase("rv-c", "rv-2", "5000", datetime.now(UTC)))).json()
    assert big["tier"]["from"] == "base" and big["tier"]["to"] == "gold"
    part = (await tenant.post(f"/v1/events/{big['id']}/reverse", json={"fraction": "0.1"})).json()
    assert part["tier"]["to"] == "silver"  # 4,500 left: not Gold, still Silver (above Base, the tier before)
    assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "silver"
    again = (await tenant.post(f"/v1/events/{big['id']}/reverse", json={"fraction": "0.1"})).json()
    assert again["tier"] is None  # 4,000 left: still Silver


async def test_a_return_in_a_batch_counts_the_batchs_own_purchases(tenant: TenantHandle) -> None:
    await ladder(tenant, window={"kind": "lifetime"})
    member = await tenant.enrol("rv-3")
    now = datetime.now(UTC)
    assert (await tenant.post("/v1/events", json=purchase("rv-p", "rv-3", "5000", now))).json()["tier"]["to"] == "gold"
    ret = purchase("rv-r", "rv-3", "5000", now) | {"type": "return", "attributes": {"original_event_id": "rv-p"}}
    response = await tenant.post("/v1/events/batch", json={"events": [purchase("rv-q", "rv-3", "1200", now), ret]})
    assert [r["result"] for r in response.json()["results"]] == ["created", "created"], response.text
    state = await member_tier(tenant, member["id"])
    assert state["tier"]["code"] == "silver"  # the 1,200 of the same batch still make Silver
    assert (state["history"][0]["reason"], state["history"][0]["from_tier"]) == ("reversal", "gold")


async def test_status_earned_in_a_closed_window_stands_after_a_reversal(tenant: TenantHandle) -> None:
    await ladder(tenant, window={"kind": "calendar_year"}, validity={"kind": "fixed_date", "years_after": 1})
    member = await tenant.enrol("rv-4")
    december = datetime(2031, 12, 20, 12, tzinfo=UTC)
    with time_machine.travel(december, tick=False):
        big = (await tenant.post("/v1/events", json=purchase("rv-d", "rv-4", "5000", december))).json()
        assert big["tier"]["to"] == "gold"
    with time_machine.travel(december + timedelta(days=30), tick=False):
        refund = (await tenant.post(f"/v1/events/{big['id']}/reverse", json={})).json()
        assert refund["points_removed"] == 5000 and refund["tier"] is None
        assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "gold"  # 2031's status, valid to 2032


async def test_a_reversal_leaves_a_tier_given_by_hand(tenant: TenantHandle) -> None:
    await ladder(tenant, window={"kind": "lifetime"})
    member = await tenant.enrol("rv-5")
    await tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "status match"})
    bought = (await tenant.post("/v1/events", json=purchase("rv-e", "rv-5", "5000", datetime.now(UTC)))).json()
    assert bought["tier"] is None
    refund = (await tenant.post(f"/v1/events/{bought['id']}/reverse", json={})).json()
    assert refund["tier"] is None
    assert (await member_tier(tenant, member["id"]))["tier"]["code"] == "gold"
