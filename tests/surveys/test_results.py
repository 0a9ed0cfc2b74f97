"""Survey results: the standardised value D_i = 100 * sum(x_ij * n_ij) / (x_max * sum n_ij) against a table computed
by hand (default and tenant level values), per question, per factor and its first-level parent, NPS, response rate,
and by tier and period."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.surveys.results import nps, standardised
from core.testing import TenantHandle

D = Decimal

#: Answers per level (very satisfied .. very dissatisfied), the level values, and D worked out by hand.
HAND_TABLE = [
    # attitude: (3*100 + 4*75 + 2*50 + 1*25 + 0*0) / (100 * 10) = 725 / 1000 -> 72.50
    ((3, 4, 2, 1, 0), (100, 75, 50, 25, 0), D("72.50")),
    # speed: (100 + 75 + 50 + 25 + 0) / (100 * 5) -> 50.00
    ((1, 1, 1, 1, 1), (100, 75, 50, 25, 0), D("50.00")),
    # service = attitude + speed: (4*100 + 5*75 + 3*50 + 2*25) / (100 * 15) = 975 / 1500 -> 65.00
    ((4, 5, 3, 2, 1), (100, 75, 50, 25, 0), D("65.00")),
    # the tenant's own values 10/8/6/3/0: (3*10 + 4*8 + 2*6 + 1*3) / (10 * 10) = 77 / 100 -> 77.00
    ((3, 4, 2, 1, 0), (10, 8, 6, 3, 0), D("77.00")),
    # all very dissatisfied -> 0; one answer, satisfied -> 75; 2 x 75 + 1 x 25 = 175 / 300 -> 58.33
    ((0, 0, 0, 0, 7), (100, 75, 50, 25, 0), D("0.00")),
    ((0, 1, 0, 0, 0), (100, 75, 50, 25, 0), D("75.00")),
    ((0, 2, 0, 1, 0), (100, 75, 50, 25, 0), D("58.33")),
]


@pytest.mark.parametrize(("counts", "values", "expected"), HAND_TABLE)
def test_standardised_value_by_hand(counts: tuple, values: tuple, expected: Decimal) -> None:
    tally: dict[Decimal, int] = {}
    for value, n in zip(values, counts, strict=True):
        tally[D(value)] = tally.get(D(value), 0) + n
    assert standardised(tally, D(max(values))) == expected


def test_no_answers_and_nps() -> None:
    assert standardised({}, D(100)) is None
    # 3 promoters (9, 10, 10), 1 passive (8), 2 detractors (0, 6): (3 - 2) / 6 -> 16.7
    assert nps([9, 10, 10, 8, 0, 6]) == D("16.7")
    assert nps([]) is None


SURVEY = {
    "code": "visit",
    "name": "How was your visit?",
    "status": "active",
    "nps_question": "How likely are you to recommend us to a friend?",
    "factors": [
        {
            "code": "service",
            "name": "Service perception",
            "factors": [
                {
                    "code": "attitude",
                    "name": "Attitude",
                    "questions": [{"code": "q_attitude", "text": "Staff were kind"}],
                },
                {"code": "speed", "name": "Speed", "questions": [{"code": "q_speed", "text": "Served quickly"}]},
            ],
        },
        {"code": "savings", "name": "Benefit", "questions": [{"code": "q_savings", "text": "Points worth it"}]},
    ],
}


async def regulars_segment(tenant: TenantHandle) -> None:
    """The segment ``regulars``: members whose attribute ``regular`` is true."""
    segment = await tenant.post(
        "/v1/segments",
        json={
            "code": "regulars",
            "name": "Regulars",
            "conditions": [{"field": "member.attributes.regular", "op": "eq", "value": True}],
        },
    )
    assert segment.status_code == 201, segment.text


LEVELS = ["very_satisfied", "satisfied", "neutral", "dissatisfied", "very_dissatisfied"]


async def answer(t: TenantHandle, survey_id: str, member_id: str, **given: Any) -> dict[str, Any]:
    nps_score = given.pop("nps", None)
    body: dict[str, Any] = {"member_id": member_id, "answers": given}
    if nps_score is not None:
        body["nps"] = nps_score
    made = await t.post(f"/v1/surveys/{survey_id}/responses", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_results_through_the_api_match_the_hand_table(tenant: TenantHandle) -> None:
    created = await tenant.post("/v1/surveys", json=SURVEY)
    assert created.status_code == 201, created.text
    survey = created.json()
    assert [lv["value"] for lv in survey["levels"]] == ["100", "75", "50", "25", "0"]
    await tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    attitude = [0] * 3 + [1] * 4 + [2] * 2 + [3] * 1  # 3 very satisfied, 4 satisfied, 2 neutral, 1 dissatisfied
    speed = [0, 1, 2, 3, 4]
    scores = [9, 10, 10, 8, 0, 6, None, None, None, None]
    for i in range(10):
        member = await tenant.enrol(f"s-{i}")
        if i < 3:
            moved = await tenant.put(f"/v1/members/{member['id']}/tier", json={"tier": "gold", "reason": "test"})
            assert moved.status_code == 200, moved.text
        given: dict[str, Any] = {"q_attitude": LEVELS[attitude[i]]}
        if i < 5:
            given["q_speed"] = speed[i] + 1  # levels as numbers, 1 = best
        if scores[i] is not None:
            given["nps"] = scores[i]
        await answer(tenant, survey["id"], member["id"], **given)
    results = (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()
    assert results["responses"] == 10 and results["invitations"] == 0 and results["response_rate"] is None
    (program,) = results["groups"]
    assert program["group"] == "program" and program["responses"] == 10
    factors = {f["code"]: f for f in program["factors"]}
    assert [f["code"] for f in program["factors"]] == ["service", "attitude", "speed", "savings"]
    assert D(factors["attitude"]["standardised"]) == D("72.50")
    assert D(factors["speed"]["standardised"]) == D("50.00")
    assert D(factors["service"]["standardised"]) == D("65.00")
    assert factors["savings"]["standardised"] is None and factors["savings"]["answers"] == 0
    assert [c["count"] for c in factors["service"]["counts"]] == [4, 5, 3, 2, 1]
    assert factors["attitude"]["parent"] == "service" and factors["service"]["parent"] is None
    questions = {q["code"]: q for q in program["questions"]}
    assert [c["count"] for c in questions["q_attitude"]["counts"]] == [3, 4, 2, 1, 0]
    assert program["nps"] == {"score": "16.7", "answers": 6, "promoters": 3, "passives": 1, "detractors": 2}
    by_tier = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params={"group_by": "tier"})).json()
    tiers = {g["group"]: g for g in by_tier["groups"]}
    assert set(tiers) == {"tier:gold", "tier:none"} and tiers["tier:gold"]["responses"] == 3
    # Gold answered attitude very satisfied three times: D = 100.
    gold = {f["code"]: f for f in tiers["tier:gold"]["factors"]}
    assert D(gold["attitude"]["standardised"]) == D("100.00")
    by_month = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params={"group_by": "month"})).json()
    assert len(by_month["groups"]) == 1 and by_month["groups"][0]["responses"] == 10
    empty = (
        await tenant.get(
            f"/v1/surveys/{survey['id']}/results",
            params={"since": "2000-01-01T00:00:00Z", "until": "2000-02-01T00:00:00Z"},
        )
    ).json()
    assert empty["groups"] == [] and empty["responses"] == 0


async def test_the_tenants_level_values(tenant: TenantHandle) -> None:
    levels = [{"key": key, "label": key, "value": value} for key, value in zip(LEVELS, (10, 8, 6, 3, 0), strict=True)]
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "own", "levels": levels})).json()
    for i, level in enumerate([0] * 3 + [1] * 4 + [2] * 2 + [3]):
        member = await tenant.enrol(f"own-{i}")
        await answer(tenant, survey["id"], member["id"], q_attitude=LEVELS[level])
    program = (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()["groups"][0]
    assert D({f["code"]: f for f in program["factors"]}["attitude"]["standardised"]) == D("77.00")


async def test_the_satisfaction_index_reads_survey_factors(tenant: TenantHandle) -> None:
    model = await tenant.post(
        "/v1/measurement/models",
        json={
            "code": "sat",
            "name": "Satisfaction",
            "kind": "satisfaction",
            "judgements": [[3]],
            "factors": [{"code": "attitude", "name": "Attitude"}, {"code": "speed", "name": "Speed"}],
        },
    )
    assert model.status_code == 201, model.text
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "sat"})).json()
    member = await tenant.enrol()
    await answer(tenant, survey["id"], member["id"], q_attitude="very_satisfied", q_speed="dissatisfied")
    results = (await tenant.get(f"/v1/surveys/{survey['id']}/results")).json()
    assert results["satisfaction_model"] == "sat"
    # Weights 0.75 / 0.25: 0.75 x 100 + 0.25 x 25 = 81.25, all of the model answered.
    group = results["groups"][0]
    assert D(group["satisfaction_index"]) == D("81.25") and D(group["satisfaction_coverage"]) == D(1)
