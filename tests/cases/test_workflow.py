"""The complaint workflow through the API: every allowed step and every illegal one (a 409 naming the allowed
actions, nothing changed), the history, resolution with cause and prevention, goodwill through the ledger exactly
once, search filters, and bad input refused with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from core.cases import workflow
from core.testing import TenantHandle

STEPS: list[tuple[str, dict[str, Any]]] = [
    ("classify", {"category": "quality"}),
    ("assign", {"assignee": "agent:ann"}),
    ("investigate", {"note": "asked the store"}),
    ("resolve", {"cause": "milk warmer broken", "prevention": "daily check of the warmer", "note": "fixed"}),
    ("reply", {"note": "Sorry: the warmer is fixed and checked daily now."}),
    ("close", {}),
]
BODIES = dict(STEPS) | {"respond": {"note": "We are looking into it."}, "reopen": {"note": "still cold"}}


async def category(t: TenantHandle, code: str = "quality", **extra: Any) -> dict[str, Any]:
    body = {"code": code, "names": {"en": "Quality", "zh-CN": "质量"}, "first_reply_hours": 4, "resolution_hours": 48}
    created = await t.post("/v1/case-categories", json=body | extra)
    assert created.status_code == 201, created.text
    return created.json()


async def open_case(t: TenantHandle, member_id: str, **extra: Any) -> dict[str, Any]:
    body = {"member_id": member_id, "subject": "Cold coffee", "channel": "store", "description": "twice this week"}
    created = await t.post("/v1/cases", json=body | extra)
    assert created.status_code == 201, created.text
    return created.json()


def test_the_workflow_table() -> None:
    assert workflow.allowed_actions("received") == ["classify", "respond"]
    assert workflow.allowed_actions("closed") == ["reopen"]
    assert workflow.next_status("resolved", "reopen") == "investigating"
    assert workflow.next_status("received", "close") is None
    assert workflow.next_status("assigned", "respond") == "assigned"


async def test_every_step_in_order_with_history(tenant: TenantHandle) -> None:
    await category(tenant)
    member = await tenant.enrol("m-1")
    case = await open_case(tenant, member["id"])
    assert case["status"] == "received" and case["allowed_actions"] == ["classify", "respond"]
    assert case["first_reply_due_at"] is None  # no category, no clock
    statuses = []
    for action, body in STEPS:
        moved = await tenant.post(f"/v1/cases/{case['id']}/{action}", json=body)
        assert moved.status_code == 200, (action, moved.text)
        statuses.append(moved.json()["status"])
    assert statuses == ["classified", "assigned", "investigating", "resolved", "replied", "closed"]
    closed = moved.json()
    assert closed["resolution"]["cause"] == "milk warmer broken"
    assert closed["first_replied_at"] and closed["resolved_at"] and closed["closed_at"]
    assert closed["first_reply_due_at"] and closed["resolution_due_at"]
    history = (await tenant.get(f"/v1/cases/{case['id']}/history")).json()
    assert [(h["action"], h["from_status"], h["to_status"]) for h in history] == [
        ("receive", None, "received"),
        ("classify", "received", "classified"),
        ("assign", "classified", "assigned"),
        ("investigate", "assigned", "investigating"),
        ("resolve", "investigating", "resolved"),
        ("reply", "resolved", "replied"),
        ("close", "replied", "closed"),
    ]
    assert all(h["actor"].startswith("key:") for h in history)
    assert history[3]["note"] == "asked the store"
    # Reopen: back to investigating, the resolution clock started again.
    reopened = await tenant.post(f"/v1/cases/{case['id']}/reopen", json={"note": "still cold"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "investigating"
    assert reopened.json()["reopened"] == 1 and reopened.json()["resolved_at"] is None
    assert reopened.json()["resolution_due_at"] > closed["resolution_due_at"]


@pytest.mark.parametrize("status_index", range(len(STEPS) + 1))
async def test_every_illegal_step_is_a_409_naming_the_allowed_ones(tenant: TenantHandle, status_index: int) -> None:
    await category(tenant)
    member = await tenant.enrol()
    case = await open_case(tenant, member["id"])
    for action, body in STEPS[:status_index]:
        assert (await tenant.post(f"/v1/cases/{case['id']}/{action}", json=body)).status_code == 200
    current = (await tenant.get(f"/v1/cases/{case['id']}")).json()
    allowed = workflow.allowed_actions(current["status"])
    assert current["allowed_actions"] == allowed
    history_before = len((await tenant.get(f"/v1/cases/{case['id']}/history")).json())
    for action in workflow.TRANSITIONS:
        if action in allowed:
            continue
        refused = await tenant.post(f"/v1/cases/{case['id']}/{action}", json=BODIES[action])
        assert refused.status_code == 409, (current["status"], action, refused.text)
        problem = refused.json()
        assert problem["allowed"] == allowed and problem["case_status"] == current["status"]
        assert problem["field"] == "action" and ", ".join(allowed) in problem["detail"]
    assert (await tenant.get(f"/v1/cases/{case['id']}")).json()["status"] == current["status"]
    assert len((await tenant.get(f"/v1/cases/{case['id']}/history")).json()) == history_before


async def test_goodwill_goes_through_the_ledger_once(tenant: TenantHandle) -> None:
    await category(tenant)
    member = await tenant.enrol()
    case = await open_case(tenant, member["id"], category="quality")
    for action in ("assign", "investigate"):
        assert (await tenant.post(f"/v1/cases/{case['id']}/{action}", json=BODIES[action])).status_code == 200
    resolve = {"cause": "late", "prevention": "more staff at 8", "goodwill": {"points": 150}}
    resolved = await tenant.post(f"/v1/cases/{case['id']}/resolve", json=resolve)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["goodwill"]["points"] == 150
    assert (await tenant.balance(member["id"]))["available"] == 150
    # Reopened and resolved again with a gesture: it was given already, nothing more is credited.
    await tenant.post(f"/v1/cases/{case['id']}/reopen", json={})
    again = await tenant.post(f"/v1/cases/{case['id']}/resolve", json=resolve | {"goodwill": {"points": 500}})
    assert again.status_code == 200
    assert (await tenant.balance(member["id"]))["available"] == 150
    ledger = (await tenant.get(f"/v1/members/{member['id']}/ledger")).json()["items"]
    assert [e["points"] for e in ledger] == [150]
    # A gesture needs a member; a reward that does not exist refuses the resolution, and nothing is written.
    other = await open_case(tenant, member["id"], category="quality")
    for action in ("assign", "investigate"):
        await tenant.post(f"/v1/cases/{other['id']}/{action}", json=BODIES[action])
    bad = await tenant.post(
        f"/v1/cases/{other['id']}/resolve",
        json={"cause": "x", "prevention": "y", "goodwill": {"reward_id": "0193a5e0-0000-7000-8000-000000000001"}},
    )
    assert bad.status_code == 404
    assert (await tenant.get(f"/v1/cases/{other['id']}")).json()["status"] == "investigating"
    both = await tenant.post(
        f"/v1/cases/{other['id']}/resolve",
        json={"cause": "x", "prevention": "y", "goodwill": {"points": 1, "reward_id": case["id"]}},
    )
    assert both.status_code == 422 and both.json()["field"] == "goodwill"


async def test_goodwill_as_a_reward(tenant: TenantHandle) -> None:
    await category(tenant)
    member = await tenant.enrol()
    reward = (await tenant.post("/v1/rewards", json={"code": "latte", "name": "Free latte", "points_cost": 300})).json()
    case = await open_case(tenant, member["id"], category="quality")
    for action in ("assign", "investigate"):
        await tenant.post(f"/v1/cases/{case['id']}/{action}", json=BODIES[action])
    resolved = await tenant.post(
        f"/v1/cases/{case['id']}/resolve",
        json={"cause": "x", "prevention": "y", "goodwill": {"reward_id": reward["id"]}},
    )
    assert resolved.status_code == 200, resolved.text
    goodwill = resolved.json()["goodwill"]
    assert goodwill["reward_id"] == reward["id"] and goodwill["points"] == 300
    redemption = (await tenant.get(f"/v1/redemptions/{goodwill['redemption_id']}")).json()
    assert redemption["member_id"] == member["id"]
    assert (await tenant.balance(member["id"]))["available"] == 0


async def test_search_filters(tenant: TenantHandle) -> None:
    await category(tenant)
    await category(tenant, "billing")
    ann, bob = await tenant.enrol(), await tenant.enrol()
    a = await open_case(tenant, ann["id"], category="quality")
    b = await open_case(tenant, bob["id"], category="billing", kind="request")
    await tenant.post(f"/v1/cases/{b['id']}/assign", json={"assignee": "agent:zoe"})
    c = await open_case(tenant, ann["id"], kind="compliment")

    async def ids(**params: Any) -> list[str]:
        answer = await tenant.get("/v1/cases", params=params)
        assert answer.status_code == 200, answer.text
        return [x["id"] for x in answer.json()["items"]]

    assert await ids() == [c["id"], b["id"], a["id"]]
    assert await ids(member_id=ann["id"]) == [c["id"], a["id"]]
    assert await ids(category="billing") == [b["id"]]
    assert await ids(assignee="agent:zoe") == [b["id"]]
    assert await ids(status="received") == [c["id"]]
    assert await ids(kind="compliment") == [c["id"]]
    assert await ids(breached="false") == [c["id"], b["id"], a["id"]]
    assert await ids(breached="true") == []
    assert await ids(since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z") == []
    first = (await tenant.get("/v1/cases", params={"limit": 2})).json()
    rest = (await tenant.get("/v1/cases", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [x["id"] for x in first["items"] + rest["items"]] == [c["id"], b["id"], a["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "x"}, "member_id"),
        ({"subject": "", "contact": "a@b.c"}, "subject"),
        ({"subject": "x", "contact": "a@b.c", "kind": "rant"}, "kind"),
        ({"subject": "x", "contact": "a@b.c", "category": "nope"}, "category"),
        ({"subject": "x", "contact": "a@b.c", "priority": "asap"}, "priority"),
        ({"subject": "x", "contact": "a@b.c", "received_at": "2099-01-01T00:00:00Z"}, "received_at"),
        ({"subject": "x", "contact": "a@b.c", "related": {"event_id": "nope"}}, "related.event_id"),
        ({"subject": "x", "member_id": "0193a5e0-0000-7000-8000-000000000001"}, "member_id"),
        ({"subject": "x", "contact": "a@b.c", "attachments": [{"name": "a", "url": "ftp://x"}]}, "attachments[0].url"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(tenant: TenantHandle, body: dict, field: str) -> None:
    await category(tenant, "other")
    refused = await tenant.post("/v1/cases", json=body)
    assert refused.status_code in (404, 422), refused.text
    assert refused.json()["field"] == field
    assert (await tenant.get("/v1/cases")).json()["items"] == []


async def test_categories_crud_and_bad_input(tenant: TenantHandle) -> None:
    created = await category(
        tenant, business_hours={"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:30"}, notify=["team:care"]
    )
    assert created["first_reply_hours"] == 4 and created["business_hours"]["end"] == "17:30"
    duplicate = await tenant.post("/v1/case-categories", json={"code": "quality", "names": {"en": "Q"}})
    assert duplicate.status_code == 409
    for body, field in (
        ({"code": "Bad Code", "names": {"en": "x"}}, "code"),
        ({"code": "x", "names": {}}, "names"),
        ({"code": "x", "names": {"en": "x"}, "first_reply_hours": 0}, "first_reply_hours"),
        (
            {"code": "x", "names": {"en": "x"}, "business_hours": {"start": "18:00", "end": "09:00"}},
            "business_hours.end",
        ),
        ({"code": "x", "names": {"en": "x"}, "business_hours": {"days": [0]}}, "business_hours.days[0]"),
    ):
        refused = await tenant.post("/v1/case-categories", json=body)
        assert refused.status_code == 422 and refused.json()["field"] == field, (body, refused.text)
    assert len((await tenant.get("/v1/case-categories")).json()) == 1
    patched = await tenant.patch(f"/v1/case-categories/{created['id']}", json={"resolution_hours": 24})
    assert patched.json()["resolution_hours"] == 24
    member = await tenant.enrol()
    await open_case(tenant, member["id"], category="quality")
    assert (await tenant.delete(f"/v1/case-categories/{created['id']}")).status_code == 409
    unused = await category(tenant, "unused")
    assert (await tenant.delete(f"/v1/case-categories/{unused['id']}")).status_code == 204


async def test_retries_with_an_idempotency_key_apply_once(tenant: TenantHandle) -> None:
    await category(tenant)
    member = await tenant.enrol()
    body = {"member_id": member["id"], "subject": "Wrong order", "category": "quality"}
    headers = {"Idempotency-Key": "till-7-complaint"}
    first = await tenant.post("/v1/cases", json=body, headers=headers)
    again = await tenant.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert len((await tenant.get("/v1/cases")).json()["items"]) == 1
    other = await tenant.post("/v1/cases", json=body | {"subject": "Other"}, headers=headers)
    assert other.status_code == 409 and other.json()["type"].endswith("/idempotency-key-reused")
    step = {"Idempotency-Key": "assign-1"}
    for _ in range(2):
        moved = await tenant.post(f"/v1/cases/{first.json()['id']}/assign", json={"assignee": "a"}, headers=step)
        assert moved.status_code == 200
    history = (await tenant.get(f"/v1/cases/{first.json()['id']}/history")).json()
    assert [h["action"] for h in history].count("assign") == 1
    reply = {"channel": "email", "address": "x@example.com", "text": "Hello"}
    r1 = await tenant.post("/v1/care/replies", json=reply, headers={"Idempotency-Key": "mail-1"})
    r2 = await tenant.post("/v1/care/replies", json=reply, headers={"Idempotency-Key": "mail-1"})
    assert r1.json() == r2.json() and r1.json()["outcome"] == "case_opened"


async def test_an_unknown_contact_is_matched_to_a_member_later(tenant: TenantHandle) -> None:
    case = (await tenant.post("/v1/cases", json={"contact": "+447911123457", "subject": "Lost my card"})).json()
    assert case["member_id"] is None and case["contact"] == "+447911123457"
    member = await tenant.enrol(phone="+447911123457")
    matched = await tenant.patch(f"/v1/cases/{case['id']}", json={"member_id": member["id"], "priority": "high"})
    assert matched.status_code == 200 and matched.json()["member_id"] == member["id"]
    assert (await tenant.get("/v1/cases", params={"member_id": member["id"]})).json()["items"][0]["id"] == case["id"]
