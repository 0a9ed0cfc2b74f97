"""Inbound replies (``POST /v1/care/replies``): STOP and its variants in English and Chinese opt the member out at
once through the care engine; other replies open a case linked to the message, or join the open case of their
thread; a plugin may claim a reply first; bad input writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.care.occasions import evaluate
from core.cases.replies import is_stop
from core.clock import utcnow
from core.testing import TenantHandle
from tests.care.conftest import rule, template

PHONE = "+447911123456"


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOP!",
        "ＳＴＯＰ",
        "UNSUBSCRIBE",
        "Unsubscribe.",
        "退订",
        " 退订 ",
        "TD",
        "td",
        "T D",
        "退订。",
    ],
)
def test_stop_variants(text: str) -> None:
    assert is_stop(text)


@pytest.mark.parametrize(
    "text", ["stop sending me cold coffee", "Please don't stop", "退订了吗？为什么", "TDD", "still out"]
)
def test_not_stop(text: str) -> None:
    assert not is_stop(text)


async def _message(t: TenantHandle, runtime: Any, member_id: str) -> dict[str, Any]:
    created = await template(t, "welcome", en={"body": "Welcome! Reply with any question."})
    await rule(t, "welcome", created["id"], channels=["sms"], purpose="service")
    await evaluate(runtime, t.id, utcnow())
    listed = (await t.get("/v1/messages", params={"member_id": member_id})).json()["items"]
    assert len(listed) == 1, listed
    return dict(listed[0])


@pytest.mark.parametrize("text", ["STOP", "退订", "td", "Unsubscribe"])
async def test_stop_opts_the_member_out_at_once(tenant: TenantHandle, text: str) -> None:
    grant = [{"channel": "sms", "purpose": "marketing", "granted": True, "source": "signup"}]
    member = await tenant.enrol(phone=PHONE, consents=grant)
    answer = await tenant.post("/v1/care/replies", json={"channel": "sms", "address": "+44 7911 123456", "text": text})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "opted_out" and answer.json()["member_ids"] == [member["id"]]
    consents = (await tenant.get(f"/v1/members/{member['id']}/consents")).json()
    current = {(c["channel"], c["purpose"]): (c["granted"], c["source"]) for c in consents["current"]}
    assert current[("sms", "marketing")] == (False, "opt-out:reply")
    assert (await tenant.get("/v1/cases")).json()["items"] == []


async def test_a_reply_opens_a_case_linked_to_the_message_and_the_thread_joins_it(
    tenant: TenantHandle, runtime
) -> None:
    member = await tenant.enrol(phone=PHONE)
    message = await _message(tenant, runtime, member["id"])
    first = await tenant.post(
        "/v1/care/replies", json={"channel": "sms", "text": "My card was charged twice", "message_id": message["id"]}
    )
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "case_opened" and first.json()["member_ids"] == [member["id"]]
    case = (await tenant.get(f"/v1/cases/{first.json()['case_id']}")).json()
    assert case["category"] == "reply" and case["channel"] == "reply" and case["member_id"] == member["id"]
    assert case["related"] == {"message_id": message["id"]} and case["description"] == "My card was charged twice"
    second = await tenant.post(
        "/v1/care/replies", json={"channel": "sms", "text": "Hello??", "message_id": message["id"]}
    )
    assert second.json()["outcome"] == "case_threaded" and second.json()["case_id"] == case["id"]
    # Without the message id, the member's own replies are one thread (not the message's).
    third = await tenant.post("/v1/care/replies", json={"channel": "sms", "text": "Anyone?", "address": PHONE})
    assert third.json()["outcome"] == "case_opened" and third.json()["case_id"] != case["id"]
    fifth = await tenant.post("/v1/care/replies", json={"channel": "sms", "text": "Hello?", "address": PHONE})
    assert fifth.json()["outcome"] == "case_threaded" and fifth.json()["case_id"] == third.json()["case_id"]
    history = (await tenant.get(f"/v1/cases/{case['id']}/history")).json()
    assert [h["note"] for h in history if h["action"] == "reply_received"] == ["Hello??"]
    # Once the case is closed, the next reply opens a new one.
    for action, body in (
        ("assign", {"assignee": "a"}),
        ("investigate", {}),
        ("resolve", {"cause": "double charge", "prevention": "idempotent POS"}),
        ("reply", {"note": "refunded"}),
        ("close", {}),
    ):
        assert (await tenant.post(f"/v1/cases/{case['id']}/{action}", json=body)).status_code == 200
    fourth = await tenant.post(
        "/v1/care/replies", json={"channel": "sms", "text": "Thanks!", "message_id": message["id"]}
    )
    assert fourth.json()["outcome"] == "case_opened" and fourth.json()["case_id"] != case["id"]


async def test_an_unknown_address_opens_a_case_for_the_contact(tenant: TenantHandle) -> None:
    answer = await tenant.post(
        "/v1/care/replies", json={"channel": "email", "address": "Who@Example.com", "text": "Hi"}
    )
    assert answer.json()["outcome"] == "case_opened" and answer.json()["member_ids"] == []
    case = (await tenant.get(f"/v1/cases/{answer.json()['case_id']}")).json()
    assert case["member_id"] is None and case["contact"] == "who@example.com"
    # STOP from an address no member has: nobody to opt out, nothing written.
    refused = await tenant.post("/v1/care/replies", json={"channel": "sms", "address": PHONE, "text": "STOP"})
    assert refused.status_code == 404 and refused.json()["field"] == "address"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"channel": "sms", "text": "hi"}, 422, "address"),
        ({"channel": "fax", "text": "hi", "address": PHONE}, 422, "channel"),
        ({"channel": "sms", "text": "", "address": PHONE}, 422, "text"),
        ({"channel": "sms", "text": "   ", "address": PHONE}, 422, "text"),
        ({"channel": "sms", "text": "hi", "address": "not a phone"}, 422, "address"),
        ({"channel": "sms", "text": "hi", "message_id": "0193a5e0-0000-7000-8000-000000000001"}, 404, "message_id"),
        ({"channel": "sms", "text": "hi", "member_id": "0193a5e0-0000-7000-8000-000000000001"}, 404, "member_id"),
        ({"channel": "sms", "text": "hi", "address": PHONE, "received_at": "2099-01-01T00:00:00Z"}, 422, "received_at"),
    ],
)
async def test_bad_replies_are_refused_and_nothing_is_written(
    tenant: TenantHandle, body: dict, status: int, field: str
) -> None:
    refused = await tenant.post("/v1/care/replies", json=body)
    assert refused.status_code == status, refused.text
    assert refused.json()["field"] == field
    assert (await tenant.get("/v1/cases")).json()["items"] == []


async def test_replies_racing_on_a_new_thread_open_one_case(pg_client: Any) -> None:
    """Six replies from one address at the same moment (a member pressing send again and again): one opens the case,
    the others join it; on PostgreSQL the thread is taken under a transaction lock of its own."""
    from core.testing import create_tenant

    t = await create_tenant(pg_client)
    body = {"channel": "email", "address": "racer@example.com", "text": "Where is my refund?"}
    answers = await asyncio.gather(*(t.post("/v1/care/replies", json=body) for _ in range(6)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["case_opened"] + ["case_threaded"] * 5
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert len((await t.get("/v1/cases")).json()["items"]) == 1
