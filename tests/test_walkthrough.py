"""The walkthrough of docs/events.md ("Program and events"), request for request, with the figures it
shows: if the API drifts from what the page says, this fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.testing import MakeTenant

LONDON = ZoneInfo("Europe/London")


def outside_tea_time(now: datetime) -> datetime:
    """``now``, or 14:00 London today when now is weekday tea time (the page's figures are without its x2)."""
    local = now.astimezone(LONDON)
    if local.isoweekday() <= 5 and 15 <= local.hour <= 16:
        return local.replace(hour=14, minute=0, second=0, microsecond=0).astimezone(UTC)
    return now


async def test_the_readme_walkthrough(make_tenant: MakeTenant) -> None:
    t = await make_tenant(timezone="Europe/London", currency="GBP")
    now = outside_tea_time(datetime.now(UTC).replace(microsecond=0))
    at, in30 = now.isoformat(), (now + timedelta(days=30)).isoformat()

    async def ok(method: str, path: str, body: object = None, status: int = 200, **kw: object) -> dict:
        response = (
            await getattr(t, method)(path, json=body, **kw) if body is not None else await getattr(t, method)(path)
        )
        assert response.status_code == status, (path, response.text)
        return response.json()  # type: ignore[no-any-return]

    await ok("patch", "/v1/program", {"auto_enrol": True, "reversal_policy": "claw_back"})
    for rule in (
        {"name": "10 points per GBP", "kind": "per_amount", "points": "10", "per": "1", "rounding": "floor",
         "event_types": ["purchase"], "priority": 10},
        {"name": "Coffee bonus", "kind": "per_quantity", "points": "5", "event_types": ["purchase"],
         "conditions": [{"field": "event.attributes.category", "op": "in", "value": ["coffee", "tea"]}],
         "caps": {"per_event": 50, "per_day": 100}},
        {"name": "Big basket", "kind": "fixed", "points": "200",
         "conditions": [{"field": "event.amount", "op": "gte", "value": 50}],
         "stacking": {"group": "basket", "mode": "best_of"}},
        {"name": "Huge basket", "kind": "fixed", "points": "500",
         "conditions": [{"field": "event.amount", "op": "gte", "value": 100}],
         "stacking": {"group": "basket", "mode": "best_of"}},
        {"name": "Tea time x2", "kind": "multiplier", "points": "2", "applies_to": "base",
         "conditions": [{"field": "event.weekday", "op": "in", "value": [1, 2, 3, 4, 5]},
                        {"field": "event.hour", "op": "between", "value": [15, 16]}],
         "caps": {"per_month": 5000}},
    ):  # fmt: skip
        await ok("post", "/v1/earning-rules", rule, 201)
    for tier in (
        {"code": "member", "name": "Member", "rank": 0},
        {"code": "silver", "name": "Silver", "rank": 1,
         "qualification": {"window": {"kind": "calendar_year"}, "mode": "any",
                           "criteria": [{"metric": "spend", "min": "500"}, {"metric": "count:purchase", "min": "20"}]},
         "benefits": {"earning_multiplier": "1.25", "perks": ["free refill"]},
         "validity": {"kind": "fixed_date", "years_after": 1, "month": 12, "day": 31}, "downgrade": "one_step"},
        {"code": "gold", "name": "Gold", "rank": 2,
         "qualification": {"window": {"kind": "rolling_days", "days": 365}, "mode": "all",
                           "criteria": [{"metric": "spend", "min": "2000"}, {"metric": "points", "min": "20000"}]},
         "benefits": {"earning_multiplier": "1.5", "perks": ["lounge"]}, "validity": {"kind": "days", "days": 365},
         "downgrade": "to_qualified"},
    ):  # fmt: skip
        await ok("post", "/v1/tiers", tier, 201)
    segment = await ok(
        "post",
        "/v1/segments",
        {
            "code": "regulars",
            "name": "Regulars",
            "match": "all",
            "conditions": [
                {"field": "metric.count:purchase.30d", "op": "gte", "value": 2},
                {"field": "member.days_since_last_activity", "op": "lte", "value": 30},
            ],
        },
        201,
    )
    await ok(
        "post",
        "/v1/campaigns",
        {
            "code": "winter-double",
            "name": "Winter double",
            "segments": ["regulars"],
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": in30,
            "rules": [{"name": "double points", "kind": "multiplier", "points": "2", "event_types": ["purchase"]}],
        },
        201,
    )

    first = {
        "type": "purchase",
        "event_id": "till-7-0001",
        "member": {"external_id": "cust-42"},
        "occurred_at": at,
        "amount": "12.50",
        "currency": "GBP",
        "quantity": "2",
        "unit": "cup",
        "attributes": {"category": "coffee"},
    }
    simulated = await ok("post", "/v1/events/simulate", first)
    assert simulated["simulated"] is True and simulated["points"] == 135
    sent = await ok("post", "/v1/events", first, 201)
    assert sent["status"] == "awarded" and sent["points"] == 135
    assert (sent["tier"]["from"], sent["tier"]["to"], sent["tier"]["reason"]) == (None, "member", "enrolment")
    assert [(a["reason"], a["points"]) for a in sent["awards"]] == [
        ("10 points per GBP (12.50 GBP x 10 per GBP (floor))", 125),
        ("Coffee bonus (2 whole cup x 5 per cup)", 10),
    ]
    assert sent["credits"] == {
        "base_points": "135",
        "count:purchase": "1",
        "events": "1",
        "points": "135",
        "spend": "12.50",
    }
    again = await t.post("/v1/events", json=first)
    assert again.status_code == 200 and again.headers["Fealty-Duplicate"] == "true" and again.json() == sent
    member_id = sent["member_id"]

    batch = await ok(
        "post",
        "/v1/events/batch",
        {
            "events": [
                {"type": "purchase", "event_id": "till-7-0002", "member": {"external_id": "cust-42"},
                 "occurred_at": at, "amount": "510.00"},
                {"type": "purchase", "event_id": "till-7-0003", "member": {"card": "CARD-9"},
                 "occurred_at": at, "amount": "5.00"},
                {"type": "teleport", "event_id": "till-7-0004", "member": {"external_id": "cust-42"},
                 "occurred_at": at},
            ]
        },
    )  # fmt: skip
    assert (batch["created"], batch["duplicates"], batch["errors"]) == (2, 0, 1)
    big = batch["results"][0]["outcome"]
    assert big["points"] == 5600
    assert (big["tier"]["from"], big["tier"]["to"], big["tier"]["reason"]) == ("member", "silver", "upgrade")
    bad = batch["results"][2]
    assert (bad["result"], bad["status"], bad["problem"]["field"]) == ("error", 422, "events[2].type")

    tier = await ok("get", f"/v1/members/{member_id}/tier")
    assert tier["tier"]["code"] == "silver" and tier["benefits"]["earning_multiplier"] == "1.25"
    assert tier["valid_until"].startswith(f"{now.astimezone(LONDON).year + 2}-01-01")  # the end of next year
    spend = next(p for p in tier["next"]["progress"] if p["metric"] == "spend")
    assert (spend["window"], spend["current"], spend["required"], spend["remaining"]) == (
        "365d",
        "522.5",
        "2000",
        "1477.5",
    )

    regulars = await ok("get", f"/v1/segments/{segment['id']}/members")
    assert [m["external_id"] for m in regulars["items"]] == ["cust-42"]

    refund = await ok(
        "post",
        f"/v1/events/{sent['id']}/reverse",
        {"fraction": "0.25", "reason": "one cup returned"},
        headers={"Idempotency-Key": "refund-0001"},
    )
    assert refund["points_removed"] == 33 and refund["fraction"] == "0.25"

    floor = await ok("put", f"/v1/members/{member_id}/tier", {"tier": "gold", "reason": "status match", "until": in30})
    assert floor["tier"]["code"] == "gold"
    preview = await ok("post", "/v1/tiers/recalculate?preview=true", {})
    assert preview["preview"] is True
