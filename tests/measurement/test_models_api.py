"""AHP models over HTTP: weights and consistency, refusals (inconsistent, malformed, duplicate), defaults copied,
the satisfaction index from survey results and the loyalty index preview, by hand-computed tables."""

from __future__ import annotations

from typing import Any

import pytest

from core.testing import TenantHandle


def _model(code: str = "sat", **overrides: Any) -> dict[str, Any]:
    """A = 3 x B; A's factors a1, a2 equal: global weights a1 0.375, a2 0.375, b 0.25."""
    body = {
        "code": code,
        "name": "Satisfaction",
        "kind": "satisfaction",
        "judgements": [[3]],
        "factors": [
            {
                "code": "a",
                "name": "A",
                "judgements": [[1]],
                "factors": [{"code": "a1", "name": "A1"}, {"code": "a2", "name": "A2"}],
            },
            {"code": "b", "name": "B"},
        ],
    }
    return body | overrides


async def test_a_model_is_weighed_and_stored(tenant: TenantHandle) -> None:
    created = await tenant.post("/v1/measurement/models", json=_model())
    assert created.status_code == 201, created.text
    model = created.json()
    goal = next(n for n in model["consistency"] if n["node"] == "goal")
    assert [(w["factor"], w["local"]) for w in goal["weights"]] == [("a", 0.75), ("b", 0.25)]
    a = next(n for n in model["consistency"] if n["node"] == "a")
    assert [(w["factor"], w["global"]) for w in a["weights"]] == [("a1", 0.375), ("a2", 0.375)]
    assert (goal["cr"], goal["lambda_max"]) == (0.0, 2.0)
    again = (await tenant.get(f"/v1/measurement/models/{model['id']}")).json()
    assert again == model
    assert [m["code"] for m in (await tenant.get("/v1/measurement/models")).json()] == ["sat"]


async def test_saatys_inconsistent_house_criteria_are_refused_naming_cr_and_judgement(tenant: TenantHandle) -> None:
    names = ["size", "bus", "neighbourhood", "age", "yard", "facilities", "condition", "financing"]
    house = [
        [5, 3, 7, 6, 6, "1/3", "1/4"],
        ["1/3", 5, 3, 3, "1/5", "1/7"],
        [6, 3, 4, 6, "1/5"],
        ["1/3", "1/4", "1/7", "1/8"],
        ["1/2", "1/5", "1/6"],
        ["1/5", "1/6"],
        ["1/2"],
    ]
    body = _model(judgements=house, factors=[{"code": n, "name": n} for n in names])
    response = await tenant.post("/v1/measurement/models", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/inconsistent-judgements")
    assert problem["consistency_ratio"] == pytest.approx(0.169, abs=0.0005)
    assert problem["lambda_max"] == pytest.approx(9.669, abs=0.0005)
    assert problem["field"] == "judgements"
    assert problem["node"] == "goal"
    judgement = problem["judgement"]
    assert judgement["row"] in names and judgement["column"] in names
    assert judgement["path"].startswith("judgements[")
    assert "0.169" in problem["detail"]
    assert (await tenant.get("/v1/measurement/models")).json() == []  # nothing written


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"judgements": [[10]]}, "judgements[0][0]"),
        ({"judgements": [[3, 3]]}, "judgements[0]"),
        ({"judgements": [["one third"]]}, "judgements[0][0]"),
        ({"code": "Not A Code"}, "code"),
        ({"kind": "happiness"}, "kind"),
        ({"factors": []}, "factors"),
        ({"factors": [{"code": "a", "name": "A"}, {"code": "a", "name": "A again"}]}, "factors[1].code"),
        ({"factors": [{"code": "a", "name": "A"}, {"code": "b", "name": "B", "colour": "red"}]}, "factors[1].colour"),
    ],
)
async def test_malformed_models_are_refused_with_the_field(
    tenant: TenantHandle, change: dict[str, Any], field: str
) -> None:
    response = await tenant.post("/v1/measurement/models", json=_model(**change))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await tenant.get("/v1/measurement/models")).json() == []


async def test_one_active_model_per_kind_and_unique_codes(tenant: TenantHandle) -> None:
    assert (await tenant.post("/v1/measurement/models", json=_model())).status_code == 201
    second = await tenant.post("/v1/measurement/models", json=_model("sat2"))
    assert second.status_code == 409 and second.json()["field"] == "active"
    assert (await tenant.post("/v1/measurement/models", json=_model(active=False))).status_code == 409
    inactive = await tenant.post("/v1/measurement/models", json=_model("sat2", active=False))
    assert inactive.status_code == 201
    switched = await tenant.patch(f"/v1/measurement/models/{inactive.json()['id']}", json={"active": True})
    assert switched.status_code == 409


async def test_satisfaction_index_by_hand(tenant: TenantHandle) -> None:
    model = (await tenant.post("/v1/measurement/models", json=_model())).json()
    body = {
        "groups": [
            {
                "group": "program",
                "factors": {
                    "a1": {"value": 80, "count": 10},
                    "a2": {"value": 60, "count": 5},
                    "b": {"value": 40, "count": 3},
                },
            },
            # a2 unanswered: A = 80, index 0.75 x 80 + 0.25 x 40 = 70; coverage 1 - 0.375
            {
                "group": "tier:gold",
                "factors": {
                    "a1": {"value": 80, "count": 4},
                    "a2": {"value": 0, "count": 0},
                    "b": {"value": 40, "count": 2},
                },
            },
            {"group": "2026-11", "factors": {}},
        ]
    }
    response = await tenant.post(f"/v1/measurement/models/{model['id']}/satisfaction-index", json=body)
    assert response.status_code == 200, response.text
    groups = {g["group"]: g for g in response.json()["groups"]}
    assert groups["program"]["index"] == pytest.approx(62.5)
    assert groups["program"]["scores"] == pytest.approx({"a": 70, "a1": 80, "a2": 60, "b": 40})
    assert (groups["program"]["coverage"], groups["program"]["answers"]) == (pytest.approx(1.0), 18)
    assert groups["tier:gold"]["index"] == pytest.approx(70)
    assert groups["tier:gold"]["coverage"] == pytest.approx(0.625)
    assert (groups["2026-11"]["index"], groups["2026-11"]["coverage"]) == (None, 0)
    unknown = await tenant.post(
        f"/v1/measurement/models/{model['id']}/satisfaction-index",
        json={"groups": [{"group": "program", "factors": {"zz": {"value": 50, "count": 1}}}]},
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "groups[0].factors.zz"
    out_of_range = await tenant.post(
        f"/v1/measurement/models/{model['id']}/satisfaction-index",
        json={"groups": [{"group": "program", "factors": {"a1": {"value": 101, "count": 1}}}]},
    )
    assert out_of_range.status_code == 422 and out_of_range.json()["field"] == "groups[0].factors[...].value"


async def test_default_loyalty_model_copied_and_scoring_a_member(tenant: TenantHandle) -> None:
    defaults = (await tenant.get("/v1/measurement/defaults")).json()
    assert {d["code"] for d in defaults} == {"loyalty", "satisfaction"}
    assert all(n["cr"] < 0.1 for d in defaults for n in d["consistency"])
    copied = await tenant.post("/v1/measurement/models/copy", json={"default": "loyalty"})
    assert copied.status_code == 201, copied.text
    model = copied.json()
    assert (model["code"], model["kind"], model["active"]) == ("loyalty", "loyalty", True)
    best = {
        "loyalty.frequency": 30,
        "loyalty.recency_days": 0,
        "loyalty.monetary": 5000,
        "loyalty.tenure_days": 2000,
        "member.attributes.customer_nature": "government",
        "member.attributes.products_held": 5,
        "member.attributes.services_used": 9,
        "member.attributes.sole_provider": True,
        "member.attributes.switched_provider_before": False,
    }
    top = (await tenant.post(f"/v1/measurement/models/{model['id']}/loyalty-index", json={"facts": best})).json()
    assert top["index"] == pytest.approx(100)
    worst = best | {
        "loyalty.frequency": 0,
        "loyalty.recency_days": 400,
        "loyalty.monetary": 0,
        "loyalty.tenure_days": 0,
        "member.attributes.customer_nature": "retail",
        "member.attributes.products_held": 0,
        "member.attributes.services_used": 0,
        "member.attributes.sole_provider": False,
        "member.attributes.switched_provider_before": True,
    }
    low = (await tenant.post(f"/v1/measurement/models/{model['id']}/loyalty-index", json={"facts": worst})).json()
    nature = next(n for n in model["consistency"] if n["node"] == "nature")
    retail_weight = next(w["global"] for w in nature["weights"] if w["factor"] == "customer_nature")
    # Only "retail" (50 of 100) scores: the index is half of that factor's global weight.
    assert low["index"] == pytest.approx(50 * retail_weight, abs=0.001)
    assert low["scores"]["customer_nature"] == 50
    again = await tenant.post("/v1/measurement/models/copy", json={"default": "loyalty"})
    assert again.status_code == 409


async def test_changing_judgements_reweighs_and_an_inconsistent_change_writes_nothing(tenant: TenantHandle) -> None:
    model = (await tenant.post("/v1/measurement/models", json=_model())).json()
    changed = await tenant.patch(f"/v1/measurement/models/{model['id']}", json={"judgements": [["1/3"]]})
    assert changed.status_code == 200, changed.text
    goal = next(n for n in changed.json()["consistency"] if n["node"] == "goal")
    assert [w["local"] for w in goal["weights"]] == [0.25, 0.75]
    three = [{"code": c, "name": c} for c in ("a1", "a2", "a3")]
    bad = await tenant.patch(
        f"/v1/measurement/models/{model['id']}",
        json={
            "factors": [
                {"code": "a", "name": "A", "judgements": [[9, "1/9"], [9]], "factors": three},
                {"code": "b", "name": "B"},
            ]
        },
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "factors[0].judgements" and bad.json()["node"] == "a"
    assert (await tenant.get(f"/v1/measurement/models/{model['id']}")).json()["judgements"] == [["1/3"]]
    assert (await tenant.delete(f"/v1/measurement/models/{model['id']}")).status_code == 204
    assert (await tenant.get(f"/v1/measurement/models/{model['id']}")).status_code == 404


async def test_another_tenant_cannot_see_a_model(tenant: TenantHandle, make_tenant) -> None:
    model = (await tenant.post("/v1/measurement/models", json=_model())).json()
    other = await make_tenant()
    assert (await other.get(f"/v1/measurement/models/{model['id']}")).status_code == 404
    assert (await other.get("/v1/measurement/models")).json() == []
    # the same code is free in another tenant
    assert (await other.post("/v1/measurement/models", json=_model())).status_code == 201
