"""Segments over member fields, attributes and metrics; listing who is in them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.testing import TenantHandle


async def test_segment_members_by_metrics_and_attributes(tenant: TenantHandle) -> None:
    now = datetime.now(UTC)
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "1"})
    for i, (city, spend) in enumerate([("Leeds", "500"), ("Leeds", "50"), ("York", "900"), ("Leeds", "300")]):
        await tenant.enrol(f"s-{i}", attributes={"city": city})
        await tenant.post(
            "/v1/events",
            json={
                "type": "purchase",
                "event_id": f"se-{i}",
                "member": {"external_id": f"s-{i}"},
                "occurred_at": now.isoformat(),
                "amount": spend,
            },
        )
    segment = await tenant.post(
        "/v1/segments",
        json={
            "code": "leeds-spenders",
            "name": "Leeds spenders",
            "conditions": [
                {"field": "member.attributes.city", "op": "eq", "value": "Leeds"},
                {"field": "metric.spend.90d", "op": "gte", "value": 100},
            ],
        },
    )
    assert segment.status_code == 201, segment.text
    members = (await tenant.get(f"/v1/segments/{segment.json()['id']}/members", params={"limit": 1})).json()
    ids = [m["external_id"] for m in members["items"]]
    cursor = members["next_cursor"]
    while cursor:
        page = (
            await tenant.get(f"/v1/segments/{segment.json()['id']}/members", params={"limit": 1, "cursor": cursor})
        ).json()
        ids += [m["external_id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert ids == ["s-0", "s-3"]
    with time_machine.travel(now + timedelta(days=100), tick=False):  # the 90-day window has moved on
        later = (await tenant.get(f"/v1/segments/{segment.json()['id']}/members")).json()
    assert later["items"] == []


async def test_lapsing_members_segment(tenant: TenantHandle) -> None:
    segment = (
        await tenant.post(
            "/v1/segments",
            json={
                "code": "lapsing",
                "name": "Lapsing",
                "conditions": [{"field": "member.days_since_last_activity", "op": "gte", "value": 60}],
            },
        )
    ).json()
    await tenant.enrol("old")
    with time_machine.travel(datetime.now(UTC) + timedelta(days=61), tick=False):
        await tenant.enrol("new")
        found = (await tenant.get(f"/v1/segments/{segment['id']}/members")).json()["items"]
    assert [m["external_id"] for m in found] == ["old"]


async def test_bad_segments_are_refused(tenant: TenantHandle) -> None:
    cases = [
        ({"code": "x", "name": "x", "conditions": []}, "conditions"),
        (
            {"code": "x", "name": "x", "conditions": [{"field": "event.amount", "op": "gt", "value": 1}]},
            "conditions[0].field",
        ),
        (
            {"code": "x", "name": "x", "conditions": [{"field": "metric.spend.forever", "op": "gt", "value": 1}]},
            "conditions",
        ),
        (
            {"code": "x", "name": "x", "conditions": [{"field": "member.tier", "op": "in", "value": "gold"}]},
            "conditions[0].value",
        ),
        ({"code": "X Y", "name": "x", "conditions": [{"field": "member.tier", "op": "eq", "value": "gold"}]}, "code"),
    ]
    for body, field in cases:
        response = await tenant.post("/v1/segments", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    ok = {"code": "golds", "name": "Golds", "conditions": [{"field": "member.tier", "op": "eq", "value": "gold"}]}
    assert (await tenant.post("/v1/segments", json=ok)).status_code == 201
    assert (await tenant.post("/v1/segments", json=ok)).status_code == 409
    unknown = await tenant.post(
        "/v1/campaigns",
        json={
            "code": "c",
            "name": "c",
            "segments": ["nope"],
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
            "rules": [{"name": "x", "kind": "fixed", "points": "1"}],
        },
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "segments"


async def test_members_list_filters_by_tier_and_segment(tenant: TenantHandle) -> None:
    await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    await tenant.post("/v1/tiers", json={"code": "vip", "name": "VIP", "rank": 1})
    await tenant.post(
        "/v1/segments",
        json={
            "code": "londoners",
            "name": "Londoners",
            "conditions": [{"field": "member.attributes.city", "op": "eq", "value": "London"}],
        },
    )
    a = await tenant.enrol("a", attributes={"city": "London"})
    await tenant.enrol("b", attributes={"city": "Paris"})
    c = await tenant.enrol("c", attributes={"city": "London"})
    await tenant.put(f"/v1/members/{c['id']}/tier", json={"tier": "vip", "reason": "status match"})
    vips = (await tenant.get("/v1/members", params={"tier": "vip"})).json()["items"]
    assert [m["external_id"] for m in vips] == ["c"] and vips[0]["tier"] == "vip"
    bases = (await tenant.get("/v1/members", params={"tier": "base"})).json()["items"]
    assert [m["external_id"] for m in bases] == ["a", "b"]
    londoners = (await tenant.get("/v1/members", params={"segment": "londoners"})).json()["items"]
    assert [m["id"] for m in londoners] == [a["id"], c["id"]]
    both = (await tenant.get("/v1/members", params={"segment": "londoners", "tier": "vip"})).json()["items"]
    assert [m["external_id"] for m in both] == ["c"]
    assert (await tenant.get("/v1/members", params={"segment": "nope"})).status_code == 404
