"""Events in, points out: through the HTTP API, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.testing import TenantHandle

NOW = datetime.now(UTC)


def event(event_id: str, member: dict | str, amount: str | None = "10.00", **extra) -> dict:
    ref = member if isinstance(member, dict) else {"external_id": member}
    body = {"type": "purchase", "event_id": event_id, "member": ref, "occurred_at": NOW.isoformat()}
    if amount is not None:
        body["amount"] = amount
    return body | extra


async def rule(tenant: TenantHandle, **definition) -> dict:
    response = await tenant.post("/v1/earning-rules", json=definition)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def shop(tenant: TenantHandle) -> TenantHandle:
    await rule(tenant, name="10 per GBP", kind="per_amount", points="10")
    await tenant.enrol("ada", card="CARD-1", phone="+447911123456")
    return tenant


async def test_an_event_answers_what_it_earned_and_why(shop: TenantHandle) -> None:
    response = await shop.post("/v1/events", json=event("pos-1", "ada", "12.34"))
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert outcome["status"] == "awarded" and outcome["points"] == 123
    assert outcome["awards"] == [
        {
            "source": outcome["awards"][0]["source"],
            "reason": "10 per GBP (12.34 GBP x 10 per GBP (floor))",
            "points": 123,
            "base": True,
            "available_at": None,
            "rule_id": outcome["awards"][0]["rule_id"],
            "kind": "per_amount",
            "capped_from": None,
            "campaign_id": None,
            "detail": None,
        }
    ]
    assert outcome["credits"] == {
        "base_points": "123",
        "count:purchase": "1",
        "events": "1",
        "points": "123",
        "spend": "12.34",
    }
    stored = await shop.get(f"/v1/events/{outcome['id']}")
    assert stored.json() | {"reversals": []} == outcome | {"reversals": [], "reversed_points": 0}
    ledger = (await shop.get(f"/v1/members/{outcome['member_id']}/ledger")).json()["items"]
    assert ledger[0]["kind"] == "earn" and ledger[0]["cause"] == {
        "type": "event",
        "id": outcome["id"],
        "actor": ledger[0]["cause"]["actor"],
    }


@pytest.mark.parametrize("ref", [{"card": "CARD-1"}, {"phone": "+44 7911 123456"}, {"external_id": "ada"}])
async def test_members_are_found_by_any_identifier(shop: TenantHandle, ref: dict) -> None:
    response = await shop.post("/v1/events", json=event("pos-x", ref))
    assert response.status_code == 201 and response.json()["points"] == 100


async def test_a_retry_returns_the_first_outcome_and_applies_once(shop: TenantHandle) -> None:
    first = await shop.post("/v1/events", json=event("pos-2", "ada"))
    retries = await asyncio.gather(*(shop.post("/v1/events", json=event("pos-2", "ada")) for _ in range(5)))
    assert all(r.status_code == 200 and r.json() == first.json() for r in retries)
    assert all(r.headers["fealty-duplicate"] == "true" for r in retries)
    assert (await shop.balance(first.json()["member_id"]))["available"] == 100
    changed = await shop.post("/v1/events", json=event("pos-2", "ada", "99.00"))
    assert changed.status_code == 409 and changed.json()["field"] == "event_id"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (event("b-1", "ada") | {"type": "teleport"}, 422, "type"),
        (event("b-2", "nobody"), 404, "member.external_id"),
        (event("b-3", {"external_id": "ada", "card": "CARD-1"}), 422, "member"),
        (event("b-4", {}), 422, "member"),
        (event("b-5", "ada") | {"currency": "XYZ"}, 422, "currency"),
        (event("b-6", "ada", "-5"), 422, "amount"),
        (event("b-7", "ada", "0"), 422, "amount"),
        (event("b-8", "ada", "1.23456"), 422, "amount"),
        (event("b-9", "ada", "NaN"), 422, "amount"),
        (event("b-10", "ada", "1e30"), 422, "amount"),
        (event("b-11", "ada", None), 422, "amount"),
        (event("b-12", "ada") | {"amount": "ten"}, 422, "amount"),
        (event("b-13", "ada") | {"occurred_at": (NOW + timedelta(days=2)).isoformat()}, 422, "occurred_at"),
        (event("b-14", "ada") | {"occurred_at": "2026-01-01T10:00:00"}, 422, "occurred_at"),
        (event("b-15", "ada") | {"quantity": "-3"}, 422, "quantity"),
        (event("b-16", "ada") | {"colour": "red"}, 422, "colour"),
        (event("", "ada"), 422, "event_id"),
        (
            event("b-18", "ada") | {"type": "return", "attributes": {"original_event_id": "nope"}},
            422,
            "attributes.original_event_id",
        ),
        (event("b-19", "ada") | {"type": "return"}, 422, "attributes.original_event_id"),
    ],
)
async def test_bad_events_are_refused_naming_the_field(shop: TenantHandle, body: dict, status: int, field: str) -> None:
    response = await shop.post("/v1/events", json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert (await shop.get("/v1/events")).json()["items"] == []


async def test_a_batch_applies_the_good_items_and_reports_the_bad(shop: TenantHandle) -> None:
    await shop.post("/v1/events", json=event("old-1", "ada"))
    batch = [
        event("g-1", "ada", "1"),
        event("g-2", "ghost", "1"),
        event("g-3", "ada", "oops"),
        event("old-1", "ada"),
        event("g-1", "ada", "1"),
        event("g-4", "ada", "2") | {"type": "nope"},
        event("g-5", "ada", "3"),
    ]
    response = await shop.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["result"], r["status"]) for r in body["results"]] == [
        ("created", 201),
        ("error", 404),
        ("error", 422),
        ("duplicate", 200),
        ("duplicate", 200),
        ("error", 422),
        ("created", 201),
    ]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 2, 3)
    assert body["results"][1]["problem"]["field"] == "events[1].member.external_id"
    assert body["results"][2]["problem"]["field"] == "events[2].amount"
    assert body["results"][5]["problem"]["field"] == "events[5].type"
    member = (await shop.get("/v1/members", params={"external_id": "ada"})).json()["items"][0]
    assert (await shop.balance(member["id"]))["available"] == 100 + 10 + 30
    too_many = await shop.post("/v1/events/batch", json={"events": [event(f"x-{i}", "ada") for i in range(1001)]})
    assert too_many.status_code == 422 and too_many.json()["field"] == "events"


async def test_a_batch_of_one_member_settles_in_order(shop: TenantHandle) -> None:
    response = await shop.post("/v1/events/batch", json={"events": [event(f"s-{i}", "ada", "1") for i in range(50)]})
    assert response.json()["created"] == 50
    member = (await shop.get("/v1/members", params={"external_id": "ada"})).json()["items"][0]
    assert (await shop.balance(member["id"]))["available"] == 500


async def test_a_batch_over_many_members_writes_each_members_rows(shop: TenantHandle) -> None:
    """The set-based writes (one statement per table for the whole batch, from arrays on PostgreSQL) keep each
    member's balance, activity, ledger entries, metrics and the stored event exactly as single events would."""
    tier = await shop.post(
        "/v1/tiers",
        json={
            "code": "spender",
            "name": "Spender",
            "rank": 1,
            "qualification": {
                "window": {"kind": "lifetime"},
                "mode": "any",
                "criteria": [{"metric": "spend", "min": "15"}],
            },
        },
    )
    assert tier.status_code == 201, tier.text
    ids = {name: (await shop.enrol(name))["id"] for name in ("bob", "cy")}
    ids["ada"] = (await shop.get("/v1/members", params={"external_id": "ada"})).json()["items"][0]["id"]
    before = {name: (await shop.balance(member))["last_activity_at"] for name, member in ids.items()}
    batch = [
        event("m-1", "ada", "10.00") | {"attributes": {"till": "T-7", "basket": ["tea", "milk"]}},
        event("m-2", "bob", "3.00"),
        event("m-3", "ada", "5.50"),
    ]
    response = await shop.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200 and response.json()["created"] == 3, response.text
    results = response.json()["results"]
    balances = {name: await shop.balance(member) for name, member in ids.items()}
    assert {name: b["available"] for name, b in balances.items()} == {"ada": 155, "bob": 30, "cy": 0}
    assert {name: b["lifetime"]["earned"] for name, b in balances.items()} == {"ada": 155, "bob": 30, "cy": 0}
    assert balances["cy"]["last_activity_at"] == before["cy"]
    # Activity at the events' own time (NOW), never moving back before what was recorded.
    for n in ("ada", "bob"):
        last, earlier = (datetime.fromisoformat(balances[n]["last_activity_at"]), datetime.fromisoformat(before[n]))
        assert last == max(earlier, NOW), (n, last, earlier)
    entries = (await shop.get(f"/v1/members/{ids['ada']}/ledger")).json()["items"]
    assert sorted(e["points"] for e in entries) == [55, 100]
    assert all(e["details"]["awards"][0]["points"] == e["points"] for e in entries), entries
    stored = (await shop.get(f"/v1/events/{results[0]['outcome']['id']}")).json()
    assert stored["points"] == 100 and stored["awards"] == results[0]["outcome"]["awards"]
    assert stored["credits"] == results[0]["outcome"]["credits"]
    tiers = {name: (await shop.get(f"/v1/members/{member}/tier")).json() for name, member in ids.items()}
    assert {name: (t["tier"] or {}).get("code") for name, t in tiers.items()} == {
        "ada": "spender",
        "bob": None,
        "cy": None,
    }, tiers


async def test_simulate_writes_nothing(shop: TenantHandle) -> None:
    response = await shop.post("/v1/events/simulate", json=event("sim-1", "ada", "5"))
    assert response.status_code == 200 and response.json()["points"] == 50 and response.json()["simulated"]
    assert (await shop.get("/v1/events")).json()["items"] == []
    real = await shop.post("/v1/events", json=event("sim-1", "ada", "5"))
    assert real.status_code == 201 and real.json()["simulated"] is False


async def test_auto_enrolment_on_first_event(tenant: TenantHandle) -> None:
    assert (await tenant.post("/v1/events", json=event("a-1", "new-guy"))).status_code == 404
    assert (await tenant.patch("/v1/program", json={"auto_enrol": True})).json()["auto_enrol"] is True
    response = await tenant.post("/v1/events", json=event("a-2", {"card": "NEW-CARD"}))
    assert response.status_code == 201, response.text
    found = (await tenant.get("/v1/members", params={"card": "NEW-CARD"})).json()["items"]
    assert len(found) == 1 and found[0]["external_id"] == "card:NEW-CARD"


async def test_full_and_partial_reversal_remove_exactly_what_was_earned(shop: TenantHandle) -> None:
    outcome = (await shop.post("/v1/events", json=event("r-1", "ada", "10.00"))).json()
    member_id = outcome["member_id"]
    part = await shop.post(f"/v1/events/{outcome['id']}/reverse", json={"amount": "3.00", "reason": "item returned"})
    assert part.status_code == 200, part.text
    assert part.json()["points_removed"] == 30
    assert (await shop.balance(member_id))["available"] == 70
    third = await shop.post(f"/v1/events/{outcome['id']}/reverse", json={"fraction": "0.333"})
    assert third.json()["points_removed"] == 33
    rest = await shop.post(f"/v1/events/{outcome['id']}/reverse", json={})
    assert rest.json()["points_removed"] == 37
    assert rest.json()["event"]["reversed_points"] == 100
    balance = await shop.balance(member_id)
    assert balance["available"] == 0 and balance["lifetime"]["earned"] == 0
    again = await shop.post(f"/v1/events/{outcome['id']}/reverse", json={})
    assert again.status_code == 409
    tier = (await shop.get(f"/v1/events/{outcome['id']}")).json()
    assert [r["points"] for r in tier["reversals"]] == [30, 33, 37]


async def test_a_partial_refund_leaves_the_purchase_counted_a_full_one_does_not(shop: TenantHandle) -> None:
    """Counts (events, count:<type>) go with the share that completes a reversal; quantities go in proportion."""
    segment = (await shop.post("/v1/segments", json={"code": "twice", "name": "Twice", "conditions": [
        {"field": "metric.count:purchase.30d", "op": "gte", "value": 2}]})).json()  # fmt: skip
    first = (await shop.post("/v1/events", json=event("c-1", "ada", "10.00"))).json()
    await shop.post("/v1/events", json=event("c-2", "ada", "10.00"))

    async def members() -> list[str]:
        return [m["external_id"] for m in (await shop.get(f"/v1/segments/{segment['id']}/members")).json()["items"]]

    assert await members() == ["ada"]
    await shop.post(f"/v1/events/{first['id']}/reverse", json={"fraction": "0.25"})
    assert await members() == ["ada"]  # three quarters of a purchase is still a purchase
    await shop.post(f"/v1/events/{first['id']}/reverse", json={})
    assert await members() == []  # refunded in full: one purchase left


async def test_a_reversal_gives_its_points_back_to_the_rules_caps(tenant: TenantHandle) -> None:
    await rule(tenant, name="5 per GBP, 100 a day", kind="per_amount", points="5", caps={"per_day": 100})
    await tenant.enrol("ada")
    first = (await tenant.post("/v1/events", json=event("cap-1", "ada", "30.00"))).json()
    assert first["points"] == 100
    assert (await tenant.post("/v1/events", json=event("cap-2", "ada", "30.00"))).json()["points"] == 0
    await tenant.post(f"/v1/events/{first['id']}/reverse", json={"fraction": "0.5"})
    assert (await tenant.post("/v1/events", json=event("cap-3", "ada", "30.00"))).json()["points"] == 50
    await tenant.post(f"/v1/events/{first['id']}/reverse", json={})
    assert (await tenant.post("/v1/events", json=event("cap-4", "ada", "30.00"))).json()["points"] == 50


async def test_a_return_reverses_its_share_of_the_purchase(shop: TenantHandle) -> None:
    purchase = (await shop.post("/v1/events", json=event("p-9", "ada", "40.00"))).json()
    ret = await shop.post(
        "/v1/events",
        json=event("ret-1", "ada", "10.00")
        | {"type": "return", "attributes": {"original_event_id": "p-9", "reason": "damaged"}},
    )
    assert ret.status_code == 201, ret.text
    assert ret.json()["points"] == 0 and ret.json()["returns"] == {"original_event_id": "p-9", "fraction": "0.25"}
    assert (await shop.balance(purchase["member_id"]))["available"] == 300
    assert (await shop.get(f"/v1/events/{purchase['id']}")).json()["reversed_points"] == 100
    too_much = await shop.post(
        "/v1/events",
        json=event("ret-2", "ada", "31.00") | {"type": "return", "attributes": {"original_event_id": "p-9"}},
    )
    assert too_much.status_code == 201  # capped at what is left
    assert (await shop.balance(purchase["member_id"]))["available"] == 0


@pytest.mark.parametrize(("policy", "available", "written_off"), [("claw_back", 0, 80), ("allow_negative", -80, 0)])
async def test_reversing_spent_points_follows_the_policy(
    shop: TenantHandle, policy: str, available: int, written_off: int
) -> None:
    await shop.patch("/v1/program", json={"reversal_policy": policy})
    outcome = (await shop.post("/v1/events", json=event("sp-1", "ada", "10.00"))).json()
    member_id = outcome["member_id"]
    await shop.post(f"/v1/members/{member_id}/points/adjust", json={"points": -80, "reason": "spent"})
    reversed_ = (await shop.post(f"/v1/events/{outcome['id']}/reverse", json={})).json()
    assert reversed_["written_off"] == written_off
    balance = await shop.balance(member_id)
    assert balance["available"] == available
    if policy == "allow_negative":
        await shop.post("/v1/events", json=event("sp-2", "ada", "10.00"))  # the next 100 points settle the debt
        assert (await shop.balance(member_id))["available"] == 20


async def test_daily_cap_spans_events(tenant: TenantHandle) -> None:
    await rule(tenant, name="capped", kind="per_amount", points="1", caps={"per_day": 50, "per_event": 30})
    await tenant.enrol("cap")
    points = [(await tenant.post("/v1/events", json=event(f"c-{i}", "cap", "40"))).json()["points"] for i in range(3)]
    assert points == [30, 20, 0]


async def test_pending_rule_points_wait(tenant: TenantHandle) -> None:
    await rule(tenant, name="after stay", kind="per_amount", points="1", pending_days=2)
    member = await tenant.enrol("p")
    outcome = (await tenant.post("/v1/events", json=event("pd-1", "p", "25"))).json()
    assert outcome["awards"][0]["available_at"] is not None
    balance = await tenant.balance(member["id"])
    assert (balance["available"], balance["pending"]) == (0, 25)


async def test_campaign_for_a_segment_in_its_window(tenant: TenantHandle) -> None:
    await rule(tenant, name="base", kind="per_amount", points="1")
    segment = await tenant.post(
        "/v1/segments",
        json={
            "code": "locals",
            "name": "Locals",
            "conditions": [{"field": "member.attributes.city", "op": "eq", "value": "Leeds"}],
        },
    )
    assert segment.status_code == 201, segment.text
    campaign = await tenant.post(
        "/v1/campaigns",
        json={
            "code": "leeds-double",
            "name": "Leeds double",
            "segments": ["locals"],
            "starts_at": (NOW - timedelta(days=1)).isoformat(),
            "ends_at": (NOW + timedelta(days=1)).isoformat(),
            "rules": [{"name": "x2", "kind": "multiplier", "points": "2"}],
        },
    )
    assert campaign.status_code == 201 and campaign.json()["running"] is True
    await tenant.enrol("leeds", attributes={"city": "Leeds"})
    await tenant.enrol("york", attributes={"city": "York"})
    leeds = (await tenant.post("/v1/events", json=event("l-1", "leeds", "10"))).json()
    york = (await tenant.post("/v1/events", json=event("y-1", "york", "10"))).json()
    assert leeds["points"] == 20 and "Leeds double: x2" in leeds["awards"][1]["reason"]
    assert york["points"] == 10
    old = event("l-2", "leeds", "10") | {"occurred_at": (NOW - timedelta(days=3)).isoformat()}
    assert (await tenant.post("/v1/events", json=old)).json()["points"] == 10  # before the campaign window
    ended = await tenant.delete(f"/v1/campaigns/{campaign.json()['id']}")
    assert ended.json()["running"] is False
    assert (await tenant.post("/v1/events", json=event("l-3", "leeds", "10"))).json()["points"] == 10


async def test_rules_that_cannot_be_evaluated_are_refused(tenant: TenantHandle) -> None:
    bad = await tenant.post(
        "/v1/earning-rules",
        json={
            "name": "x",
            "kind": "fixed",
            "points": "5",
            "conditions": [{"field": "event.amount", "op": "between", "value": [10]}],
        },
    )
    assert bad.status_code == 422 and bad.json()["field"] == "conditions[0].value"
    bad = await tenant.post("/v1/earning-rules", json={"name": "x", "kind": "per_amount", "points": "-1"})
    assert bad.status_code == 422 and bad.json()["field"] == "points"
    bad = await tenant.post(
        "/v1/earning-rules", json={"name": "x", "kind": "fixed", "points": "1", "event_types": ["warp"]}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "event_types"
    bad = await tenant.post("/v1/earning-rules", json={"name": "x", "kind": "sometimes", "points": "1"})
    assert bad.status_code == 422 and bad.json()["field"] == "kind"
    created = await rule(tenant, name="ok", kind="fixed", points="5")
    patched = await tenant.patch(f"/v1/earning-rules/{created['id']}", json={"points": "0"})
    assert patched.status_code == 422
    off = await tenant.patch(f"/v1/earning-rules/{created['id']}", json={"active": False})
    assert off.json()["active"] is False


def returning(event_id: str, member: str, amount: str, original: str, **extra) -> dict:
    return event(event_id, member, amount) | {"type": "return", "attributes": {"original_event_id": original}} | extra


async def test_two_returns_of_one_purchase_in_a_batch_fail_only_the_second(shop: TenantHandle) -> None:
    purchase = (await shop.post("/v1/events", json=event("p1", "ada", "100"))).json()
    batch = [returning("r1", "ada", "100", "p1"), returning("r2", "ada", "50", "p1"), event("g1", "ada", "5")]
    response = await shop.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["result"], r["status"]) for r in results] == [("created", 201), ("error", 409), ("created", 201)]
    assert results[1]["problem"]["field"] == "events[1].attributes.original_event_id"
    assert (await shop.balance(purchase["member_id"]))["available"] == 50  # 1,000 returned, 50 from g1
    assert (await shop.get(f"/v1/events/{purchase['id']}")).json()["reversed_points"] == 1000
    stored = {e["event_id"] for e in (await shop.get("/v1/events")).json()["items"]}
    assert stored == {"p1", "r1", "g1"}


async def test_a_batch_reports_a_non_object_item_and_applies_the_others(shop: TenantHandle) -> None:
    batch = [event("o-1", "ada", "1"), "x", 7, None, event("o-2", "ada", "2")]
    response = await shop.post("/v1/events/batch", json={"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["result"], r["status"], r["event_id"]) for r in body["results"]] == [
        ("created", 201, "o-1"),
        ("error", 422, None),
        ("error", 422, None),
        ("error", 422, None),
        ("created", 201, "o-2"),
    ]
    assert [r["problem"]["field"] for r in body["results"][1:4]] == ["events[1]", "events[2]", "events[3]"]
    assert body["results"][1]["problem"]["type"].endswith("/validation-error")
    member = (await shop.get("/v1/members", params={"external_id": "ada"})).json()["items"][0]
    assert (await shop.balance(member["id"]))["available"] == 30
    assert (await shop.post("/v1/events/batch", json={"events": "x"})).status_code == 422


async def test_a_retried_full_return_answers_its_first_outcome(shop: TenantHandle) -> None:
    purchase = (await shop.post("/v1/events", json=event("p1", "ada", "100"))).json()
    ret = returning("r1", "ada", "100", "p1")
    first = await shop.post("/v1/events", json=ret)
    assert first.status_code == 201, first.text
    again = await shop.post("/v1/events", json=ret)
    assert again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["fealty-duplicate"] == "true"
    in_batch = (await shop.post("/v1/events/batch", json={"events": [ret]})).json()["results"][0]
    assert (in_batch["result"], in_batch["status"]) == ("duplicate", 200)
    assert in_batch["outcome"] == first.json()
    other = await shop.post("/v1/events", json=returning("r1", "ada", "90", "p1"))
    assert other.status_code == 409 and other.json()["field"] == "event_id"
    other_in_batch = (await shop.post("/v1/events/batch", json={"events": [returning("r1", "ada", "90", "p1")]})).json()
    assert other_in_batch["results"][0]["problem"]["field"] == "events[0].event_id"
    assert (await shop.balance(purchase["member_id"]))["available"] == 0
    assert (await shop.get(f"/v1/events/{purchase['id']}")).json()["reversed_points"] == 1000


async def test_a_retry_after_the_member_was_anonymized_answers_its_first_outcome(shop: TenantHandle) -> None:
    first = await shop.post("/v1/events", json=event("p2", "ada", "10"))
    assert first.status_code == 201
    assert (await shop.post(f"/v1/members/{first.json()['member_id']}/anonymize")).status_code == 200
    again = await shop.post("/v1/events", json=event("p2", "ada", "10"))
    assert again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["fealty-duplicate"] == "true"
    in_batch = (await shop.post("/v1/events/batch", json={"events": [event("p2", "ada", "10")]})).json()
    assert in_batch["results"][0]["result"] == "duplicate"
    changed = await shop.post("/v1/events", json=event("p2", "ada", "11"))
    assert changed.status_code == 409 and changed.json()["field"] == "event_id"
    new = await shop.post("/v1/events", json=event("p3", "ada", "10"))  # a new event for them still finds no one
    assert new.status_code == 404


async def test_a_stored_event_sent_twice_in_one_batch_answers_twice(shop: TenantHandle) -> None:
    first = (await shop.post("/v1/events", json=event("d-1", "ada", "1"))).json()
    response = await shop.post(
        "/v1/events/batch", json={"events": [event("d-1", "ada", "1"), event("d-1", "ada", "1")]}
    )
    assert response.status_code == 200, response.text
    assert [(r["result"], r["outcome"]) for r in response.json()["results"]] == [("duplicate", first)] * 2


async def test_simulate_with_auto_enrolment_writes_no_member(tenant: TenantHandle) -> None:
    await rule(tenant, name="1 per GBP", kind="per_amount", points="1")
    await rule(
        tenant,
        name="welcome",
        kind="fixed",
        points="5",
        conditions=[{"field": "member.days_enrolled", "op": "lte", "value": 0}],
    )
    await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await tenant.patch("/v1/program", json={"auto_enrol": True})
    response = await tenant.post("/v1/events/simulate", json=event("s-1", "ghost", "10"))
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["simulated"] is True and outcome["points"] == 15  # what a new member would earn
    assert outcome["tier"] == {"from": None, "to": "base", "reason": "enrolment", "valid_until": None}
    assert (await tenant.get("/v1/members", params={"external_id": "ghost"})).json()["items"] == []
    assert (await tenant.get("/v1/events")).json()["items"] == []
    real = await tenant.post("/v1/events", json=event("s-1", "ghost", "10"))
    assert real.status_code == 201 and real.json()["points"] == 15
    assert real.json()["member_id"] != outcome["member_id"]


async def test_caps_count_on_the_events_own_day(tenant: TenantHandle) -> None:
    await rule(tenant, name="capped", kind="fixed", points="100", caps={"per_day": 100}, event_types=["custom"])
    await tenant.enrol("cap")
    ago = (NOW - timedelta(days=2)).isoformat()
    custom = {"type": "custom", "member": {"external_id": "cap"}, "occurred_at": ago}
    singles = [(await tenant.post("/v1/events", json=custom | {"event_id": f"c-{i}"})).json() for i in range(3)]
    assert [o["points"] for o in singles] == [100, 0, 0]
    today = await tenant.post("/v1/events", json=custom | {"event_id": "c-now", "occurred_at": NOW.isoformat()})
    assert today.json()["points"] == 100  # today has its own cap
    other_day = (NOW - timedelta(days=3)).isoformat()
    batch = [custom | {"event_id": f"b-{i}", "occurred_at": at} for i, at in enumerate([ago, other_day, other_day])]
    response = await tenant.post("/v1/events/batch", json={"events": batch})
    assert [r["outcome"]["points"] for r in response.json()["results"]] == [0, 100, 0]


async def test_monthly_caps_count_on_the_events_own_month(make_tenant) -> None:
    tenant = await make_tenant(timezone="UTC")
    await rule(tenant, name="capped", kind="fixed", points="60", caps={"per_month": 100}, event_types=["custom"])
    await tenant.enrol("cap")
    last_month = (NOW.replace(day=1) - timedelta(days=10)).isoformat()
    custom = {"type": "custom", "member": {"external_id": "cap"}}
    batch = [custom | {"event_id": f"m-{i}", "occurred_at": last_month} for i in range(2)]
    batch.append(custom | {"event_id": "m-now", "occurred_at": NOW.isoformat()})
    response = await tenant.post("/v1/events/batch", json={"events": batch})
    assert [r["outcome"]["points"] for r in response.json()["results"]] == [60, 40, 60]
    late = await tenant.post("/v1/events", json=custom | {"event_id": "m-late", "occurred_at": last_month})
    assert late.json()["points"] == 0 and late.json()["awards"] == []


async def test_a_multiplier_works_on_the_capped_base(tenant: TenantHandle) -> None:
    await rule(tenant, name="base", kind="per_amount", points="1", caps={"per_event": 100})
    await rule(tenant, name="x2", kind="multiplier", points="2")
    await tenant.enrol("m")
    outcome = (await tenant.post("/v1/events", json=event("x-1", "m", "500"))).json()
    assert [(a["reason"].split(" (")[0], a["points"], a["capped_from"]) for a in outcome["awards"]] == [
        ("base", 100, 500),
        ("x2", 100, None),
    ]
    assert outcome["points"] == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "per_amount", "points": "1e400"}, "points"),
        ({"name": "x", "kind": "per_amount", "points": "1", "per": "1e-30"}, "per"),
        ({"name": "x", "kind": "per_amount", "points": "0.00001"}, "points"),
        ({"name": "x", "kind": "fixed", "points": "1000000000000000"}, "points"),
    ],
)
async def test_rule_numbers_are_bounded(tenant: TenantHandle, body: dict, field: str) -> None:
    response = await tenant.post("/v1/earning-rules", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    campaign = await tenant.post(
        "/v1/campaigns",
        json={
            "code": "c",
            "name": "C",
            "starts_at": NOW.isoformat(),
            "ends_at": (NOW + timedelta(days=1)).isoformat(),
            "rules": [body],
        },
    )
    assert campaign.status_code == 422 and campaign.json()["field"] == f"rules[0].{field}"
    assert (await tenant.get("/v1/earning-rules")).json()["items"] == []


async def test_an_event_that_would_earn_absurdly_many_points_is_refused(tenant: TenantHandle) -> None:
    await rule(tenant, name="rich", kind="per_amount", points="1000000", per="0.0001")
    await tenant.enrol("m")
    response = await tenant.post("/v1/events", json=event("big-1", "m", "999999999"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "amount"
    assert (await tenant.post("/v1/events", json=event("ok-1", "m", "0.01"))).json()["points"] == 100_000_000


async def test_a_return_in_another_currency_is_refused(shop: TenantHandle) -> None:
    purchase = (await shop.post("/v1/events", json=event("p-gbp", "ada", "100"))).json()
    jpy = await shop.post("/v1/events", json=returning("r-jpy", "ada", "100", "p-gbp", currency="JPY"))
    assert jpy.status_code == 422 and jpy.json()["field"] == "currency"
    assert (await shop.get(f"/v1/events/{purchase['id']}")).json()["reversed_points"] == 0
    usd = (await shop.post("/v1/events", json=event("p-usd", "ada", "40", currency="USD"))).json()
    same = await shop.post("/v1/events", json=returning("r-usd", "ada", "10", "p-usd", currency="USD"))
    assert same.status_code == 201 and same.json()["returns"]["fraction"] == "0.25"
    implicit = await shop.post("/v1/events", json=returning("r-usd-2", "ada", "10", "p-usd"))
    assert implicit.status_code == 201, implicit.text  # a return without currency is in its purchase's
    assert implicit.json()["returns"]["fraction"] == "0.25"
    reversals = (await shop.get(f"/v1/events/{usd['id']}")).json()["reversals"]
    assert [r["fraction"] for r in reversals] == ["0.25", "0.25"]
