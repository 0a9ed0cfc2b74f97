"""Opt-outs, the signed unsubscribe link, the suppression list, provider feedback and care settings, through the
HTTP API on SQLite and PostgreSQL: recorded in the consent history with their source, effective at once, hostile
input refused with a problem naming the field, and no tenant reaching another's members or lists."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import time_machine
from itsdangerous import URLSafeTimedSerializer

from core.care.optouts import link_secret, unsubscribe_headers, unsubscribe_url
from core.care.policy import MessageFacts, ProtectionSettings, Suppress, decide
from core.care.protection import load_member_facts
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle

PHONE = "+447911123456"
MARKETING_SMS = {"channel": "sms", "purpose": "marketing", "granted": True}
MARKETING_EMAIL = {"channel": "email", "purpose": "marketing", "granted": True}


def problem(response: Any, status: int, slug: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    assert body.get("field") == field, body


async def consents(tenant: TenantHandle, member_id: str) -> dict[str, Any]:
    response = await tenant.get(f"/v1/members/{member_id}/consents")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def current(history: dict[str, Any], channel: str, purpose: str) -> bool | None:
    for c in history["current"]:
        if (c["channel"], c["purpose"]) == (channel, purpose):
            return bool(c["granted"])
    return None


async def verdict_now(runtime: Runtime, tenant: TenantHandle, member_id: str, message: MessageFacts) -> Any:
    now = datetime(2026, 1, 15, 12, tzinfo=UTC)
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        facts = await load_member_facts(session, tenant.id, [uuid.UUID(member_id)], message.channel, now)
    return decide(message, facts[uuid.UUID(member_id)], ProtectionSettings(), now)


# --- opt-outs -------------------------------------------------------------------------------------------------------


async def test_a_stop_reply_withdraws_marketing_at_once(
    client: AppClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    member = await tenant.enrol(phone=PHONE, consents=[MARKETING_SMS])
    offer = MessageFacts(channel="sms", purpose="marketing", category="offer")
    assert type(await verdict_now(runtime, tenant, member["id"], offer)).__name__ == "Send"
    response = await tenant.post("/v1/care/opt-outs", json={"channel": "sms", "address": "+44 7911 123456"})
    assert response.status_code == 200, response.text
    assert response.json()["member_ids"] == [member["id"]]
    history = await consents(tenant, member["id"])
    assert current(history, "sms", "marketing") is False
    assert history["history"][0] | {"occurred_at": None} == {
        "channel": "sms",
        "purpose": "marketing",
        "granted": False,
        "source": "opt-out:stop-reply",
        "occurred_at": None,
    }
    assert await verdict_now(runtime, tenant, member["id"], offer) == Suppress("no_consent")
    # service still goes; repeating the STOP writes nothing more
    notice = MessageFacts(channel="sms", purpose="service", category="notice")
    assert type(await verdict_now(runtime, tenant, member["id"], notice)).__name__ == "Send"
    again = await tenant.post("/v1/care/opt-outs", json={"channel": "sms", "address": PHONE})
    assert again.status_code == 200
    assert len((await consents(tenant, member["id"]))["history"]) == 2


async def test_stop_all_takes_service_too_but_never_safety(
    client: AppClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    member = await tenant.enrol(phone=PHONE)
    response = await tenant.post(
        "/v1/care/opt-outs", json={"channel": "sms", "member_id": member["id"], "scope": "all", "source": "call-centre"}
    )
    assert response.status_code == 200, response.text
    history = await consents(tenant, member["id"])
    assert {(h["purpose"], h["source"]) for h in history["history"]} == {
        ("marketing", "opt-out:call-centre"),
        ("service", "opt-out:call-centre"),
    }
    notice = MessageFacts(channel="sms", purpose="service", category="notice")
    assert await verdict_now(runtime, tenant, member["id"], notice) == Suppress("opted_out")
    safety = MessageFacts(channel="sms", purpose="safety", category="notice")
    assert type(await verdict_now(runtime, tenant, member["id"], safety)).__name__ == "Send"


async def test_every_member_sharing_an_address_is_opted_out(client: AppClient, tenant: TenantHandle) -> None:
    first = await tenant.enrol(email="Family@Example.com", consents=[MARKETING_EMAIL])
    second = await tenant.enrol(email="family@example.com", consents=[MARKETING_EMAIL])
    response = await tenant.post("/v1/care/opt-outs", json={"channel": "email", "address": "FAMILY@example.com"})
    assert sorted(response.json()["member_ids"]) == sorted([first["id"], second["id"]])


async def test_hostile_opt_outs(client: AppClient, tenant: TenantHandle, make_tenant: Any) -> None:
    member = await tenant.enrol(phone=PHONE, consents=[MARKETING_SMS])
    cases = [
        ({"channel": "sms", "address": "not a phone"}, 422, "validation-error", "address"),
        ({"channel": "fax", "address": PHONE}, 422, "validation-error", "channel"),
        ({"channel": "sms"}, 422, "validation-error", "address"),
        ({"channel": "sms", "address": PHONE, "member_id": member["id"]}, 422, "validation-error", "address"),
        ({"channel": "sms", "address": PHONE, "source": "<script>"}, 422, "validation-error", "source"),
        ({"channel": "sms", "address": "+447911000111"}, 404, "not-found", "address"),
        ({"channel": "sms", "address": PHONE, "extra": 1}, 422, "validation-error", "extra"),
    ]
    for body, status, slug, field in cases:
        problem(await tenant.post("/v1/care/opt-outs", json=body), status, slug, field)
    # another tenant can neither reach this member by id nor by address
    other = await make_tenant()
    problem(
        await other.post("/v1/care/opt-outs", json={"channel": "sms", "member_id": member["id"]}),
        404,
        "not-found",
        "member_id",
    )
    problem(
        await other.post("/v1/care/opt-outs", json={"channel": "sms", "address": PHONE}), 404, "not-found", "address"
    )
    assert current(await consents(tenant, member["id"]), "sms", "marketing") is True


# --- the unsubscribe link -------------------------------------------------------------------------------------------


async def link_for(runtime: Runtime, tenant: TenantHandle, member_id: str, **kw: Any) -> str:
    secret = await link_secret(runtime.sessionmaker, runtime.settings)
    return unsubscribe_url(runtime.settings, secret, tenant_id=tenant.id, member_id=uuid.UUID(member_id), **kw)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_one_click_unsubscribe(client: AppClient, tenant: TenantHandle, runtime: Runtime) -> None:
    member = await tenant.enrol(email="ann@example.com", consents=[MARKETING_EMAIL])
    url = await link_for(runtime, tenant, member["id"])
    assert url.startswith("http://127.0.0.1:8000/v1/care/unsubscribe?token=")
    headers = unsubscribe_headers(url)
    assert headers == {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    # a GET (a person's click, or a mail scanner) shows a confirmation and changes nothing
    page = await client.get(path_of(url), headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and tenant.slug in page.text
    assert current(await consents(tenant, member["id"]), "email", "marketing") is True
    # the mail client's RFC 8058 POST, with no API key
    response = await client.post(
        path_of(url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"unsubscribed": True, "channel": "email", "purpose": "marketing"}
    history = await consents(tenant, member["id"])
    assert current(history, "email", "marketing") is False
    assert history["history"][0]["source"] == "unsubscribe-link"
    # twice is the same as once
    assert (await client.post(path_of(url))).status_code == 200
    assert len((await consents(tenant, member["id"]))["history"]) == 2
    # the page's button (a browser POST asking for HTML)
    done = await client.post(path_of(url), headers={"Accept": "text/html"})
    assert done.status_code == 200 and "unsubscribed" in done.text


async def test_altered_foreign_and_expired_links_are_refused(
    client: AppClient, tenant: TenantHandle, make_tenant: Any, runtime: Runtime
) -> None:
    member = await tenant.enrol(email="bob@example.com", consents=[MARKETING_EMAIL])
    url = await link_for(runtime, tenant, member["id"])
    token = parse_qs(urlsplit(url).query)["token"][0]
    secret = await link_secret(runtime.sessionmaker, runtime.settings)
    # one character changed in the claims
    altered = ("A" if token[0] != "A" else "B") + token[1:]
    # the right secret but another purpose's salt (e.g. a survey link)
    other_purpose = URLSafeTimedSerializer(secret, salt="fealty.surveys.respond.v1").dumps(
        {"t": tenant.id.hex, "m": uuid.UUID(member["id"]).hex, "c": "email", "p": "marketing"}
    )
    # a token naming another tenant with this tenant's member (as if the secret leaked): that tenant has no such member
    other = await make_tenant()
    cross = URLSafeTimedSerializer(secret, salt="fealty.care.unsubscribe.v1").dumps(
        {"t": other.id.hex, "m": uuid.UUID(member["id"]).hex, "c": "email", "p": "marketing"}
    )
    for bad, status, slug in [
        (altered, 400, "invalid-link"),
        (other_purpose, 400, "invalid-link"),
        ("", 400, "invalid-link"),
        ("x" * 2000, 400, "invalid-link"),
        (cross, 404, "not-found"),
    ]:
        problem(await client.post("/v1/care/unsubscribe", params={"token": bad}), status, slug, "token")
        page = await client.get("/v1/care/unsubscribe", params={"token": bad}, headers={"Accept": "text/html"})
        assert page.status_code in (status, 200 if slug == "not-found" else status)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=181)):
        problem(await client.post(path_of(url)), 410, "link-expired", "token")
    assert current(await consents(tenant, member["id"]), "email", "marketing") is True


# --- suppressions ---------------------------------------------------------------------------------------------------


async def test_suppression_list(client: AppClient, tenant: TenantHandle, make_tenant: Any, runtime: Runtime) -> None:
    member = await tenant.enrol(email="carol@example.com")
    created = await tenant.post("/v1/care/suppressions", json={"channel": "email", "address": "Carol@Example.com"})
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None} == {
        "channel": "email",
        "address": "carol@example.com",
        "reason": "manual",
        "source": "api",
        "detail": None,
        "created_at": None,
    }
    assert (
        await tenant.post("/v1/care/suppressions", json={"channel": "email", "address": "carol@example.com"})
    ).status_code == 200
    notice = MessageFacts(channel="email", purpose="safety", category="notice")
    assert await verdict_now(runtime, tenant, member["id"], notice) == Suppress("address_suppressed")
    await tenant.post("/v1/care/suppressions", json={"channel": "sms", "address": PHONE, "reason": "invalid"})
    listed = (await tenant.get("/v1/care/suppressions", params={"limit": 1})).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    rest = (await tenant.get("/v1/care/suppressions", params={"limit": 1, "cursor": listed["next_cursor"]})).json()
    assert {listed["items"][0]["address"], rest["items"][0]["address"]} == {"carol@example.com", PHONE}
    assert [i["address"] for i in (await tenant.get("/v1/care/suppressions?channel=sms")).json()["items"]] == [PHONE]
    assert (await tenant.get("/v1/care/suppressions/sms/%2B447911123456")).status_code == 200
    # another tenant sees none of it and cannot remove it
    other = await make_tenant()
    assert (await other.get("/v1/care/suppressions")).json()["items"] == []
    problem(await other.get("/v1/care/suppressions/email/carol@example.com"), 404, "not-found", "address")
    problem(await other.delete("/v1/care/suppressions/email/carol@example.com"), 404, "not-found", "address")
    # hostile input
    problem(
        await tenant.post("/v1/care/suppressions", json={"channel": "email", "address": "nope"}),
        422,
        "validation-error",
        "address",
    )
    problem(
        await tenant.post("/v1/care/suppressions", json={"channel": "email", "address": "a@b.co", "reason": "spite"}),
        422,
        "validation-error",
        "reason",
    )
    problem(await tenant.get("/v1/care/suppressions", params={"cursor": "garbage"}), 422, "validation-error", "cursor")
    # taken off the list, the address works again
    assert (await tenant.delete("/v1/care/suppressions/email/carol@example.com")).status_code == 204
    assert type(await verdict_now(runtime, tenant, member["id"], notice)).__name__ == "Send"


# --- feedback -------------------------------------------------------------------------------------------------------


def ses_bounce(address: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "5.1.1"}],
            "timestamp": "2026-01-15T12:00:00.000Z",
            "feedbackId": "0100-feedback",
        },
        "mail": {"messageId": "0100-ses-message", "source": "hello@cafe.example", "destination": [address]},
    }


def sns_envelope(message: dict[str, Any] | str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2026-01-15T12:00:01.000Z",
            "SignatureVersion": "1",
        }
    )


async def test_a_hard_bounce_through_sns_suppresses_the_address(
    client: AppClient, tenant: TenantHandle, make_tenant: Any, runtime: Runtime
) -> None:
    member = await tenant.enrol(email="dave@example.com")
    other = await make_tenant()
    other_member = await other.enrol(email="dave@example.com")
    # SNS posts text/plain
    response = await tenant.post(
        "/v1/care/feedback",
        content=sns_envelope(ses_bounce("Dave <dave@example.com>")),
        headers={"Content-Type": "text/plain; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "feedback:sns" and body["provider_message_id"] == "0100-ses-message"
    assert body["outcomes"] == [
        {"channel": "email", "address": "dave@example.com", "kind": "hard_bounce", "action": "suppressed"}
    ]
    [row] = (await tenant.get("/v1/care/suppressions")).json()["items"]
    assert (row["reason"], row["source"], row["detail"]) == ("hard_bounce", "feedback:sns", "Permanent/General")
    notice = MessageFacts(channel="email", purpose="service", category="notice")
    assert await verdict_now(runtime, tenant, member["id"], notice) == Suppress("address_suppressed")
    # the same address in another tenant is untouched
    assert type(await verdict_now(runtime, other, other_member["id"], notice)).__name__ == "Send"
    # a transient bounce changes nothing; the same hard bounce twice is reported as such
    soft = await tenant.post("/v1/care/feedback", json=ses_bounce("eve@example.com", "Transient"))
    assert soft.json()["outcomes"][0]["action"] == "ignored"
    again = await tenant.post("/v1/care/feedback", content=sns_envelope(ses_bounce("dave@example.com")))
    assert again.json()["outcomes"][0]["action"] == "already_suppressed"


async def test_a_complaint_suppresses_and_withdraws_marketing(client: AppClient, tenant: TenantHandle) -> None:
    member = await tenant.enrol(email="fay@example.com", consents=[MARKETING_EMAIL])
    complaint = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "fay@example.com"}], "complaintFeedbackType": "abuse"},
        "mail": {"messageId": "m-2"},
    }
    response = await tenant.post("/v1/care/feedback", json=complaint)
    assert response.json()["outcomes"][0]["action"] == "suppressed"
    history = await consents(tenant, member["id"])
    assert current(history, "email", "marketing") is False
    assert history["history"][0]["source"] == "feedback:complaint"


async def test_the_tenants_own_feedback_form_and_sns_confirmation(client: AppClient, tenant: TenantHandle) -> None:
    response = await tenant.post(
        "/v1/care/feedback", json={"channel": "sms", "address": PHONE, "type": "hard_bounce", "detail": "unreachable"}
    )
    assert response.json()["outcomes"] == [
        {"channel": "sms", "address": PHONE, "kind": "hard_bounce", "action": "suppressed"}
    ]
    confirm = await tenant.post(
        "/v1/care/feedback",
        content=json.dumps(
            {
                "Type": "SubscriptionConfirmation",
                "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
            }
        ),
        headers={"Content-Type": "text/plain"},
    )
    assert confirm.status_code == 200
    assert confirm.json()["subscribe_url"].startswith("https://sns.")
    assert confirm.json()["outcomes"] == []


async def test_hostile_feedback(client: AppClient, tenant: TenantHandle) -> None:
    cases: list[tuple[Any, str | None]] = [
        (b"not json", None),
        (b"[1, 2]", None),
        (sns_envelope("{not json"), "Message"),
        (json.dumps({"Type": "Notification", "Message": 5}), "Message"),
        (json.dumps({"Type": "Nonsense"}), "Type"),
        (json.dumps({"Type": "SubscriptionConfirmation", "SubscribeURL": "http://169.254.169.254/"}), "SubscribeURL"),
        (sns_envelope({"notificationType": "Bounce", "bounce": {"bounceType": "Weird"}}), "Message.bounce.bounceType"),
        (
            sns_envelope(
                {"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bouncedRecipients": []}}
            ),
            "Message.bounce.bouncedRecipients",
        ),
        (
            json.dumps(
                {
                    "notificationType": "Bounce",
                    "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "x@y.co"}] * 101},
                }
            ),
            "bounce.bouncedRecipients",
        ),
        (json.dumps({"notificationType": "Open"}), "notificationType"),
        (json.dumps({"channel": "pigeon", "address": "x", "type": "hard_bounce"}), "channel"),
        (json.dumps({"channel": "sms", "address": PHONE, "type": "meh"}), "type"),
    ]
    for body, field in cases:
        response = await tenant.post("/v1/care/feedback", content=body, headers={"Content-Type": "application/json"})
        problem(response, 422, "validation-error", field)
    # nesting that would exhaust the decoder, and NUL characters PostgreSQL cannot store: refused, never a 500
    deep = await tenant.post("/v1/care/feedback", content=b"[" * 100_000 + b"]" * 100_000)
    problem(deep, 400, "json-too-deep", None)
    deep_inside = await tenant.post("/v1/care/feedback", content=sns_envelope("[" * 100_000 + "]" * 100_000))
    problem(deep_inside, 400, "json-too-deep", "Message")
    nul = ses_bounce("x@example.com")
    nul["bounce"]["bounceSubType"] = "General\u0000"
    problem(await tenant.post("/v1/care/feedback", json=nul), 422, "validation-error", "bounce.bounceSubType")
    nul_detail = {"channel": "sms", "address": PHONE, "type": "hard_bounce", "detail": "a\u0000b"}
    problem(await tenant.post("/v1/care/feedback", json=nul_detail), 422, "validation-error", "detail")
    assert (await tenant.get("/v1/care/suppressions")).json()["items"] == []
    # an unreadable address is reported, not stored
    odd = await tenant.post("/v1/care/feedback", json=ses_bounce("not-an-address"))
    assert odd.json()["outcomes"][0]["action"] == "invalid_address"
    assert (await tenant.get("/v1/care/suppressions")).json()["items"] == []


# --- settings -------------------------------------------------------------------------------------------------------


async def test_care_settings(client: AppClient, tenant: TenantHandle, make_tenant: Any) -> None:
    defaults = (await tenant.get("/v1/care/settings")).json()
    assert defaults == {
        "email_from": None,
        "email_reply_to": None,
        "sms_sender_id": None,
        "quiet_hours": ["21:00", "08:00"],
        "greeting_hours": ["09:00", "20:00"],
        "marketing_per_day": 1,
        "marketing_per_7_days": None,
        "marketing_per_month": 8,
    }
    changed = await tenant.patch(
        "/v1/care/settings",
        json={
            "email_from": "Café Nord <Hello@Cafe.Example>",
            "sms_sender_id": "CafeNord",
            "quiet_hours": ["22:00", "07:30"],
            "marketing_per_7_days": 3,
            "marketing_per_month": None,
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["email_from"] == "Café Nord <hello@cafe.example>"
    assert body["quiet_hours"] == ["22:00", "07:30"] and body["greeting_hours"] == ["09:00", "20:00"]
    assert (body["marketing_per_day"], body["marketing_per_7_days"], body["marketing_per_month"]) == (1, 3, None)
    assert (await tenant.get("/v1/care/settings")).json() == body
    # another tenant keeps the defaults
    other = await make_tenant()
    assert (await other.get("/v1/care/settings")).json() == defaults
    for patch, field in [
        ({"quiet_hours": ["25:00", "08:00"]}, "quiet_hours[0]"),
        ({"quiet_hours": ["21:00"]}, "quiet_hours"),
        ({"sms_sender_id": "Café Nord!"}, "sms_sender_id"),
        ({"sms_sender_id": "123456"}, "sms_sender_id"),
        ({"email_from": "nobody"}, "email_from"),
        ({"email_from": "x@y.co\r\nBcc: victim@example.com"}, "email_from"),
        ({"marketing_per_day": -1}, "marketing_per_day"),
        ({"marketing_per_day": "1"}, "marketing_per_day"),
        ({"colour": "red"}, "colour"),
    ]:
        problem(await tenant.patch("/v1/care/settings", json=patch), 422, "validation-error", field)
    assert (await tenant.get("/v1/care/settings")).json() == body  # nothing half-written


async def test_retries_with_one_idempotency_key_apply_once(client: AppClient, tenant: TenantHandle) -> None:
    member = await tenant.enrol(phone=PHONE, consents=[MARKETING_SMS])
    key = {"Idempotency-Key": f"stop-{uuid.uuid4()}"}
    first = await tenant.post("/v1/care/opt-outs", json={"channel": "sms", "address": PHONE}, headers=key)
    again = await tenant.post("/v1/care/opt-outs", json={"channel": "sms", "address": PHONE}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true" and again.content == first.content
    other_body = await tenant.post(
        "/v1/care/opt-outs", json={"channel": "sms", "address": PHONE, "scope": "all"}, headers=key
    )
    problem(other_body, 409, "idempotency-key-reused", "Idempotency-Key")
    assert len((await consents(tenant, member["id"]))["history"]) == 2  # the grant and one withdrawal
    key = {"Idempotency-Key": f"block-{uuid.uuid4()}"}
    body = {"channel": "email", "address": "grace@example.com"}
    created = await tenant.post("/v1/care/suppressions", json=body, headers=key)
    replayed = await tenant.post("/v1/care/suppressions", json=body, headers=key)
    assert created.status_code == replayed.status_code == 201
    assert replayed.headers.get("idempotent-replayed") == "true"
