"""The care engine through the HTTP API: templates checked at save, rules, occasions to messages, delivery through
SES/SNS (moto), the record."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import time_machine

from core.testing import TenantHandle
from tests.care.conftest import Deliver, Occasions, messages, rule, template
from tests.moto_server import MotoServer


def _addr(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


async def test_a_template_naming_an_unknown_variable_is_refused_at_save(care_tenant: TenantHandle) -> None:
    cases = [
        ({"en": {"body": "Hi {{ nickname }}"}}, "texts.en.body", "nickname"),
        ({"en": {"body": "ok", "subject": "Hi {{ member.nmae }}"}}, "texts.en.subject", "nmae"),
        ({"zh-CN": {"body": "生日快乐 {{ member.name "}}, "texts.zh-CN.body", None),
        ({"en": {"body": "{{ ''.__class__.__mro__ }}"}}, "texts.en.body", None),
    ]
    for texts, field, variable in cases:
        response = await care_tenant.post("/v1/care/templates", json={"name": "bad", "texts": texts})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("/validation-error") and problem["field"] == field
        if variable:
            assert problem["variable"] == variable and variable in problem["detail"]
    # A trigger's own variables are known to templates written for it, and only to those.
    ok = await care_tenant.post(
        "/v1/care/templates",
        json={"name": "bday", "trigger": "birthday", "texts": {"en": {"body": "Happy {{ age }}th!"}}},
    )
    assert ok.status_code == 201, ok.text
    other = await care_tenant.post(
        "/v1/care/templates", json={"name": "bday2", "trigger": "welcome", "texts": {"en": {"body": "{{ age }}"}}}
    )
    assert other.status_code == 422 and other.json()["variable"] == "age"
    assert (await care_tenant.get("/v1/care/templates")).json()[0]["name"] == "bday"


async def test_preview_renders_for_samples_and_for_a_member_in_their_language(care_tenant: TenantHandle) -> None:
    created = await template(
        care_tenant,
        "points_expiring",
        en={
            "subject": "{{ points|number }} points expire",
            "body": "By {{ expires_at|date }}, {{ member.first_name }}.",
        },
        **{
            "zh-CN": {
                "subject": "{{ points|number }} 积分即将过期",
                "body": "{{ member.name }}，请在 {{ expires_at|date }} 前使用。",
            }
        },
    )
    sample = await care_tenant.post(f"/v1/care/templates/{created['id']}/preview", json={})
    assert sample.status_code == 200, sample.text
    assert sample.json()["subject"] == "1,200 points expire" and sample.json()["locale"] == "en"
    member = await care_tenant.enrol(name="李雷", locale="zh-CN", email=_addr("li"))
    mine = await care_tenant.post(
        f"/v1/care/templates/{created['id']}/preview",
        json={"member_id": member["id"], "variables": {"points": 12345}},
    )
    assert mine.json()["locale"] == "zh-CN"
    assert mine.json()["subject"] == "12,345 积分即将过期" and mine.json()["body"].startswith(
        "李雷，请在 2027年1月31日"
    )
    sms = await care_tenant.post(
        f"/v1/care/templates/{created['id']}/preview", json={"channel": "sms", "purpose": "marketing"}
    )
    assert sms.json()["encoding"] == "GSM-7" and sms.json()["segments"] == 1
    assert sms.json()["body"].endswith("Reply STOP to opt out.")


@time_machine.travel(datetime(2031, 6, 10, 12, tzinfo=UTC), tick=True)  # midday: no quiet hours, whenever CI runs
async def test_welcome_goes_out_by_email_once_with_its_reference(
    care_tenant: TenantHandle, find_occasions: Occasions, deliver: Deliver, moto_server: MotoServer
) -> None:
    created = await template(care_tenant, "welcome", en={"subject": "Welcome {{ member.first_name }}", "body": "Hi!"})
    await rule(care_tenant, "welcome", created["id"])
    address = _addr("ann")
    member = await care_tenant.enrol(name="Ann Lee", email=address)
    first = await find_occasions(care_tenant)
    again = await find_occasions(care_tenant)
    assert (first.messages, again.messages, again.occasions) == (1, 0, 0)
    [queued] = await messages(care_tenant, member_id=member["id"])
    assert queued["state"] == "queued" and queued["address"].startswith("a***@")
    assert await deliver(care_tenant) == {"sent": 1}
    [sent] = (await care_tenant.get(f"/v1/members/{member['id']}/messages")).json()["items"]
    assert sent["state"] == "sent" and sent["attempts"] == 1 and sent["provider_message_id"]
    [mail] = moto_server.emails(to=address)
    assert mail.subject == "Welcome Ann" and mail.headers["X-Fealty-Reference"] == sent["reference"]
    assert await deliver(care_tenant) == {}  # nothing twice
    metrics = (await care_tenant.client.get("/metrics")).text
    assert 'fealty_care_messages_total{channel="email",state="sent"}' in metrics
    assert 'fealty_care_messages_total{channel="email",state="queued"}' in metrics


async def test_birthday_only_for_members_of_at_least_n_days_on_their_local_day(
    care_tenant: TenantHandle, find_occasions: Occasions
) -> None:
    created = await template(care_tenant, "birthday", en={"subject": "Happy birthday", "body": "{{ age }} today!"})
    await rule(care_tenant, "birthday", created["id"], params={"min_member_days": 7}, valid_for_hours=24)
    with time_machine.travel(datetime(2031, 3, 1, 12, tzinfo=UTC), tick=False):
        old = await care_tenant.enrol(email=_addr("old"), birthday="1990-03-10", timezone="Pacific/Auckland")
    with time_machine.travel(datetime(2031, 3, 6, 12, tzinfo=UTC), tick=False):
        new = await care_tenant.enrol(email=_addr("new"), birthday="1991-03-10")
    # 10 March 00:30 in Auckland is still 9 March in UTC: the Auckland member's day has come, not the London one's.
    auckland_morning = datetime(2031, 3, 9, 11, 30, tzinfo=UTC)
    assert (await find_occasions(care_tenant, auckland_morning)).messages == 1
    assert [m["member_id"] for m in await messages(care_tenant, trigger="birthday")] == [old["id"]]
    london_day = datetime(2031, 3, 10, 12, tzinfo=UTC)
    raised = await find_occasions(care_tenant, london_day)
    assert raised.messages == 0  # the newer member joined 4 days before: not yet eligible; the older one had theirs
    listed = await messages(care_tenant, trigger="birthday")
    assert len(listed) == 1 and listed[0]["valid_until"].startswith("2031-03-10T11:00:00")
    assert new["id"] not in {m["member_id"] for m in listed}


async def test_rules_and_messages_are_each_tenants_own(care_tenant: TenantHandle, make_tenant, find_occasions) -> None:
    created = await template(care_tenant, "welcome")
    made = await rule(care_tenant, "welcome", created["id"])
    member = await care_tenant.enrol(email=_addr("iso"))
    await find_occasions(care_tenant)
    other = await make_tenant()
    for path in (f"/v1/care/rules/{made['id']}", f"/v1/care/templates/{created['id']}"):
        assert (await other.get(path)).status_code == 404
        assert (await other.patch(path, json={"name": "mine"})).status_code == 404
        assert (await other.delete(path)).status_code == 404
    assert (await other.post(f"/v1/care/templates/{created['id']}/preview", json={})).status_code == 404
    assert (await other.get(f"/v1/members/{member['id']}/messages")).status_code == 404
    assert (await other.get("/v1/messages")).json()["items"] == []
    assert (await other.get("/v1/care/rules")).json() == []
    foreign = await other.post(
        "/v1/care/rules",
        json={"name": "x", "trigger": "welcome", "template_id": created["id"], "channels": ["email"]},
    )
    assert foreign.status_code == 404 and foreign.json()["field"] == "template_id"


async def test_rule_input_is_checked(care_tenant: TenantHandle) -> None:
    created = await template(care_tenant, "lapsing")
    cases = [
        ({"trigger": "nope"}, "trigger"),
        ({"trigger": "lapsing", "params": {"days": -1}}, "params.days"),
        ({"trigger": "lapsing", "params": {"weeks": 2}}, "params.weeks"),
        ({"trigger": "birthday"}, "template_id"),  # written for lapsing
        ({"trigger": "lapsing", "channels": []}, "channels"),
        ({"trigger": "lapsing", "audience": {"tiers": ["platinum"]}}, "audience.tiers"),
        ({"trigger": "fuel.win_back"}, "trigger"),  # a plugin this tenant has not enabled
    ]
    for fields, field in cases:
        body = {"name": "r", "template_id": created["id"], "channels": ["email"]} | fields
        response = await care_tenant.post("/v1/care/rules", json=body)
        assert response.status_code == 422, (fields, response.text)
        assert response.json()["field"] == field, (fields, response.json())
    assert (await care_tenant.get("/v1/care/rules")).json() == []


async def test_calendar_defaults_to_the_country_and_takes_the_tenants_days(care_tenant: TenantHandle) -> None:
    await care_tenant.patch("/v1/program", json={"country": "CN"})
    days = (await care_tenant.get("/v1/care/calendar", params={"year": 2027})).json()
    assert {"day": "2027-10-01", "name": "National Day", "source": "country:CN", "id": None} in days
    added = await care_tenant.post("/v1/care/calendar", json={"day": "2028-06-01", "name": "Founders' Day"})
    assert added.status_code == 201
    assert [d["name"] for d in (await care_tenant.get("/v1/care/calendar", params={"year": 2028})).json()] == [
        "Founders' Day"
    ]
    assert (await care_tenant.post("/v1/care/calendar", json={"day": "2028-06-01", "name": "x"})).status_code == 409
    imported = await care_tenant.post("/v1/care/calendar/import", json={"year": 2028})
    assert len(imported.json()) > 5 and date(2028, 1, 1).isoformat() in {d["day"] for d in imported.json()}
    assert timedelta(0) == timedelta(0)
