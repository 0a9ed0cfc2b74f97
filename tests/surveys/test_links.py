"""Invitations through the care engine and the signed single-use link: the HTML form works without JavaScript (GET
renders it, a form POST records), and a link used twice, expired, or altered is refused clearly with nothing
written; a closed case invites to the surveys that follow cases; surveys are sealed between tenants."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import time_machine
from sqlalchemy import select

from core.care.models import CareMessage, CareOccasion
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import TenantHandle
from tests.care.conftest import rule, template
from tests.surveys.test_results import SURVEY, regulars_segment

FORM = {"content-type": "application/x-www-form-urlencoded", "accept": "text/html"}


async def survey_url(runtime: Runtime, t: TenantHandle, member_id: str) -> str:
    async with tenant_session(runtime.sessionmaker, t.id, writes=False) as session:
        found = (
            (
                await session.execute(
                    select(CareOccasion.variables).where(
                        CareOccasion.trigger == "survey.invitation", CareOccasion.member_id == uuid.UUID(member_id)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(found) == 1, found
    return str(found[0]["survey_url"])


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


async def test_an_invitation_goes_through_care_and_its_link_answers_once(tenant: TenantHandle, runtime) -> None:
    created = await template(
        tenant, "survey.invitation", en={"subject": "{{ survey_name }}", "body": "Tell us: {{ survey_url }}"}
    )
    await rule(tenant, "survey.invitation", created["id"], channels=["email"], purpose="service")
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"link_days": 7})).json()
    member = await tenant.enrol(email="ann@example.com")
    invited = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "spring", "member_ids": [member["id"]]}
    )
    assert invited.json() == {"invited": 1, "skipped": 0}
    again = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "spring", "member_ids": [member["id"]]}
    )
    assert again.json() == {"invited": 0, "skipped": 1}
    url = await survey_url(runtime, tenant, member["id"])
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        (message,) = (await session.execute(select(CareMessage))).scalars().all()
    assert url in message.body and message.trigger == "survey.invitation"
    link = path_of(url)
    client = tenant.client
    # GET renders the form: radio buttons per question and for the 0-10 question, no script, no API key.
    page = await client.get(link, headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and page.text.count('type="radio"') == 3 * 5 + 11
    assert 'name="q_attitude" value="very_satisfied"' in page.text and "How was your visit?" in page.text
    info = await client.get(link, headers={"accept": "application/json"})
    assert info.json()["answered"] is False and info.json()["name"] == "How was your visit?"
    # The form's POST records the answers.
    form = urlencode({"q_attitude": "satisfied", "q_speed": "very_satisfied", "nps": "9", "comment": "Lovely"})
    sent = await client.post(link, content=form, headers=FORM)
    assert sent.status_code == 200 and "Thank you" in sent.text
    # Used twice: refused clearly, as a page for people and a problem for programs; nothing more written.
    twice = await client.post(link, content=form, headers=FORM)
    assert twice.status_code == 409 and "already answered" in twice.text
    assert (await client.get(link, headers={"accept": "text/html"})).status_code == 409
    as_json = await client.post(link, json={"answers": {"q_attitude": "neutral"}})
    assert as_json.status_code == 409 and as_json.json()["field"] == "token"
    results = (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()
    assert results["responses"] == 1 and results["invitations"] == 1 and results["response_rate"] == "1.0000"
    attitude = next(f for f in results["groups"][0]["factors"] if f["code"] == "attitude")
    assert attitude["standardised"] == "75.00"


async def test_expired_and_altered_links_are_refused(tenant: TenantHandle, runtime) -> None:
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"link_days": 2})).json()
    member = await tenant.enrol()
    start = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        await tenant.post(
            f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "c", "member_ids": [member["id"]]}
        )
    link = path_of(await survey_url(runtime, tenant, member["id"]))
    token = link.split("token=", 1)[1]
    body = {"answers": {"q_attitude": "satisfied"}}
    # Altered: one character changed, or a token made for unsubscribing.
    altered = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    refused = await tenant.client.post(altered, json=body)
    assert refused.status_code == 400 and refused.json()["type"].endswith("/invalid-link")
    page = await tenant.client.get(altered, headers={"accept": "text/html"})
    assert page.status_code == 400 and "not valid" in page.text
    from core.care.optouts import link_secret, make_unsubscribe_token

    secret = await link_secret(runtime.sessionmaker, runtime.settings)
    other = make_unsubscribe_token(secret, tenant_id=tenant.id, member_id=uuid.UUID(member["id"]))
    assert (await tenant.client.post(f"/v1/surveys/respond?token={other}", json=body)).status_code == 400
    assert (await tenant.client.post("/v1/surveys/respond", json=body)).status_code == 400
    # Late: after the survey's link_days.
    with time_machine.travel(start + timedelta(days=2, seconds=1), tick=False):
        late = await tenant.client.post(link, json=body)
        assert late.status_code == 410 and late.json()["type"].endswith("/link-expired")
        page = await tenant.client.get(link, headers={"accept": "text/html"})
        assert page.status_code == 410 and "expired" in page.text
    # Bad answers through a good link: refused, the invitation still open.
    with time_machine.travel(start + timedelta(days=1), tick=False):
        for bad, field in (
            ({"answers": {"nope": "satisfied"}}, "answers.nope"),
            ({"answers": {"q_attitude": "great"}}, "answers.q_attitude"),
            ({"answers": {"q_attitude": 1}, "nps": 11}, "nps"),
        ):
            answer = await tenant.client.post(link, json=bad)
            assert answer.status_code == 422 and answer.json()["field"] == field, answer.text
        assert (await tenant.client.post(link, json=body)).status_code == 200
    assert token
    assert (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()["responses"] == 1


async def test_a_closed_case_invites_to_the_survey_that_follows_cases(tenant: TenantHandle, runtime) -> None:
    survey = (
        await tenant.post("/v1/surveys", json=SURVEY | {"code": "after-case", "invite_on": {"trigger": "case.closed"}})
    ).json()
    member = await tenant.enrol()
    case = (await tenant.post("/v1/cases", json={"member_id": member["id"], "subject": "Wrong change"})).json()
    await tenant.post("/v1/case-categories", json={"code": "till", "names": {"en": "Till"}})
    for action, body in (
        ("classify", {"category": "till"}),
        ("assign", {"assignee": "a"}),
        ("investigate", {}),
        ("resolve", {"cause": "c", "prevention": "p"}),
        ("reply", {"note": "sorry"}),
        ("close", {}),
    ):
        assert (await tenant.post(f"/v1/cases/{case['id']}/{action}", json=body)).status_code == 200
    url = await survey_url(runtime, tenant, member["id"])
    assert "/v1/surveys/respond?token=" in url
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as session:
        keys = (await session.execute(select(CareOccasion.key, CareOccasion.trigger))).all()
    assert {t for _, t in keys} == {"case.closed", "survey.invitation"}
    assert (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()["invitations"] == 1


async def test_surveys_bad_input_and_tenants_apart(tenant: TenantHandle, make_tenant) -> None:
    def with_factors(factors: list[dict[str, Any]]) -> dict[str, Any]:
        return SURVEY | {"code": "bad", "factors": factors}

    q = [{"code": "q1", "text": "?"}]
    for body, field in (
        (with_factors([{"code": "a", "name": "A"}]), "factors[0].questions"),
        (
            with_factors(
                [
                    {"code": "a", "name": "A", "questions": q},
                    {"code": "a", "name": "B", "questions": [{"code": "q2", "text": "?"}]},
                ]
            ),
            "factors[1].code",
        ),
        (
            with_factors(
                [
                    {
                        "code": "a",
                        "name": "A",
                        "questions": q,
                        "factors": [{"code": "b", "name": "B", "questions": [{"code": "q2", "text": "?"}]}],
                    }
                ]
            ),
            "factors[0].questions",
        ),
        (
            SURVEY
            | {
                "code": "bad",
                "levels": [
                    {"key": k, "label": k, "value": v} for k, v in zip("abcde", (0, 25, 50, 75, 100), strict=True)
                ],
            },
            "levels",
        ),
        (SURVEY | {"code": "bad", "invite_on": {"trigger": "event"}}, "invite_on.event_type"),
        (SURVEY | {"code": "Bad Code"}, "code"),
    ):
        refused = await tenant.post("/v1/surveys", json=body)
        assert refused.status_code == 422 and refused.json()["field"] == field, (field, refused.text)
    assert (await tenant.get("/v1/surveys")).json() == []
    mine = (await tenant.post("/v1/surveys", json=SURVEY)).json()
    member = await tenant.enrol()
    other = await make_tenant()
    assert (await other.get(f"/v1/surveys/{mine['id']}/results")).status_code == 404
    answered = await other.post(f"/v1/surveys/{mine['id']}/responses", json={"answers": {"q_attitude": "satisfied"}})
    assert answered.status_code == 404
    stranger = await other.post(
        f"/v1/surveys/{mine['id']}/invitations", json={"campaign": "x", "member_ids": [member["id"]]}
    )
    assert stranger.status_code == 404
    # A draft survey takes no answers.
    draft = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "draft", "status": "draft"})).json()
    closed = await tenant.post(f"/v1/surveys/{draft['id']}/responses", json={"answers": {"q_attitude": "satisfied"}})
    assert closed.status_code == 409
    # Once answered, the questions cannot change.
    await tenant.post(f"/v1/surveys/{mine['id']}/responses", json={"answers": {"q_attitude": 2}})
    locked = await tenant.patch(
        f"/v1/surveys/{mine['id']}",
        json={
            "levels": SURVEY.get("levels")
            or [{"key": k, "label": k, "value": v} for k, v in zip("abcde", (9, 7, 5, 3, 0), strict=True)]
        },
    )
    assert locked.status_code == 409
    assert re.fullmatch(r"[0-9a-f-]{36}", mine["id"])


async def test_two_answers_at_once_through_one_link_record_one(pg_client) -> None:
    import asyncio

    from core.testing import create_tenant

    runtime: Runtime = pg_client.app.state["runtime"]
    t = await create_tenant(pg_client)
    survey = (await t.post("/v1/surveys", json=SURVEY)).json()
    member = await t.enrol()
    await t.post(f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "race", "member_ids": [member["id"]]})
    link = path_of(await survey_url(runtime, t, member["id"]))
    answers = await asyncio.gather(
        *(t.client.post(link, json={"answers": {"q_attitude": "satisfied"}}) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    assert (await t.get(f"/v1/surveys/{survey['id']}/results")).json()["responses"] == 1


async def test_invitations_n_days_after_an_event_and_to_a_segment(tenant: TenantHandle, runtime) -> None:
    from core.worker import tick

    survey = (
        await tenant.post(
            "/v1/surveys",
            json=SURVEY
            | {"code": "after-stay", "invite_on": {"trigger": "event", "event_type": "purchase", "days": 2}},
        )
    ).json()
    regular = await tenant.enrol(attributes={"regular": True})
    other = await tenant.enrol(attributes={"regular": False})
    bought = datetime.now(UTC) - timedelta(hours=1)
    for n, member in enumerate((regular, other)):
        made = await tenant.post(
            "/v1/events",
            json={
                "type": "purchase",
                "event_id": f"till-{n}",
                "member": {"member_id": member["id"]},
                "occurred_at": bought.isoformat(),
                "amount": "5",
            },
        )
        assert made.status_code in (200, 201), made.text
    await tick(runtime, tenant.id)
    assert (await tenant.get(f"/v1/surveys/{survey['id']}/invitations")).json()["items"] == []
    with time_machine.travel(bought + timedelta(days=2, hours=1), tick=False):
        await tick(runtime, tenant.id)
        await tick(runtime, tenant.id)  # once per event, however often the job runs
    invited = (await tenant.get(f"/v1/surveys/{survey['id']}/invitations")).json()["items"]
    assert sorted(i["occasion"] for i in invited) == ["event:till-0", "event:till-1"]
    # A campaign to a segment reaches its members only; results by segment.
    await regulars_segment(tenant)
    campaign = await tenant.post(
        f"/v1/surveys/{survey['id']}/invitations", json={"campaign": "regulars-1", "segment": "regulars"}
    )
    assert campaign.status_code == 202, campaign.text  # a segment campaign is a job (tests/surveys/test_campaigns.py)
    await tick(runtime, tenant.id)
    assert (await tenant.get(f"/v1/jobs/{campaign.json()['id']}")).json()["result"]["invited"] == 1
    for member, level in ((regular, "very_satisfied"), (other, "dissatisfied")):
        answered = await tenant.post(
            f"/v1/surveys/{survey['id']}/responses", json={"member_id": member["id"], "answers": {"q_attitude": level}}
        )
        assert answered.status_code == 201, answered.text
    groups = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params={"group_by": "segment"})).json()["groups"]
    by_group = {g["group"]: next(f for f in g["factors"] if f["code"] == "attitude")["standardised"] for g in groups}
    assert by_group == {"segment:regulars": "100.00", "segment:none": "25.00"}
