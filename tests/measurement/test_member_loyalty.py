"""The loyalty run over HTTP and the worker, on both databases: member metrics, RFM, types with reasons, churn and
value, the loyalty index, segments over loyalty.*, settings, re-runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.clock import utcnow
from core.measurement import nightly
from core.runtime import Runtime
from core.testing import TenantHandle
from core.worker import tick


def _purchase(external_id: str, days_ago: float, amount: str = "50", **attributes: Any) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "type": "purchase",
        "event_id": f"{external_id}-{uuid.uuid4().hex[:8]}",
        "member": {"external_id": external_id},
        "occurred_at": at.isoformat(),
        "amount": amount,
        "attributes": attributes,
    }


async def _seed(tenant: TenantHandle) -> dict[str, str]:
    """champ: weekly for 300 days; promo: 6 purchases all under the promotion; lapsed: 10 purchases that stopped 250
    days ago; staff: a relative of staff; never: enrolled, no purchase; 35 others with 1-5 purchases."""
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "1"})
    promo_rule = await tenant.post(
        "/v1/earning-rules",
        json={
            "name": "double on promotion",
            "kind": "multiplier",
            "points": "2",
            "conditions": [{"field": "event.attributes.promo", "op": "eq", "value": True}],
        },
    )
    assert promo_rule.status_code == 201, promo_rule.text
    ids = {}
    for name, attributes in [
        ("champ", {}),
        ("promo", {}),
        ("lapsed", {}),
        ("staff", {"relationship": "relative"}),
        ("never", {}),
    ] + [(f"f{i}", {}) for i in range(35)]:
        ids[name] = (await tenant.enrol(name, attributes=attributes))["id"]
    events = [_purchase("champ", d, "80") for d in range(1, 300, 7)]
    events += [_purchase("promo", d, "20", promo=True) for d in (3, 20, 40, 60, 80, 100)]
    events += [_purchase("lapsed", d, "60") for d in range(250, 400, 15)]
    events += [_purchase("staff", d, "10") for d in (5, 50, 90)]
    for i in range(35):
        events += [_purchase(f"f{i}", 2 + i * 9 + k * (i % 7 + 3), str(5 + i)) for k in range(1 + i % 5)]
    response = await tenant.post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["errors"] == 0
    return ids


async def _loyalty(tenant: TenantHandle, member_id: str) -> dict[str, Any]:
    response = await tenant.get(f"/v1/members/{member_id}/loyalty")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_the_nightly_run_measures_every_member(tenant: TenantHandle, runtime: Runtime) -> None:
    ids = await _seed(tenant)
    before = await _loyalty(tenant, ids["champ"])
    assert before["computed_at"] is None and before["rfm"] is None
    await tick(runtime, tenant.id)  # the worker runs the recurring jobs, the loyalty run among them

    champ = await _loyalty(tenant, ids["champ"])
    assert champ["metrics"]["frequency"] == 43
    assert champ["metrics"]["recency_days"] == 1
    assert champ["metrics"]["monetary"] == "3440.0000"
    assert champ["metrics"]["repeat_purchases"] == 42
    assert champ["metrics"]["return_rate"] == 1.0  # always back within 30 days
    assert champ["metrics"]["price_sensitivity"] == 0.0
    assert champ["metrics"]["churned"] is False
    assert champ["rfm"]["code"] == "555" and champ["rfm"]["segment"] == "champions"
    assert champ["loyalty_type"]["type"] == "trust"
    assert champ["loyalty_type"]["reasons"][0] == "R score 5 and F score 5 >= 4"
    assert champ["churn"]["p_alive"] > 0.9
    assert champ["churn"]["expected_purchases"] > 5  # weekly buyer, 90-day horizon
    assert champ["churn"]["expected_spend"] == pytest.approx(80, rel=0.2)
    assert champ["churn"]["horizon_days"] == 90

    promo = await _loyalty(tenant, ids["promo"])
    assert promo["metrics"]["price_sensitivity"] == 1.0
    assert promo["loyalty_type"] == {
        "type": "benefit",
        "reasons": ["price sensitivity 1.00 >= 0.5: most activity under promotions"],
    }

    lapsed = await _loyalty(tenant, ids["lapsed"])
    assert lapsed["metrics"]["churned"] is True
    assert lapsed["metrics"]["frequency"] == 8  # 250..355 days ago in the 365-day window
    assert lapsed["rfm"]["segment"] in ("at_risk", "cannot_lose")
    assert lapsed["churn"]["churn_probability"] > champ["churn"]["churn_probability"] + 0.3

    assert (await _loyalty(tenant, ids["staff"]))["loyalty_type"]["type"] == "kinship"
    never = await _loyalty(tenant, ids["never"])
    assert never["rfm"] == {"r": 0, "f": 0, "m": 0, "code": "000", "segment": "inactive"}
    assert never["metrics"]["recency_days"] is None and never["churn"]["churn_probability"] is None

    settings = (await tenant.get("/v1/measurement/settings")).json()
    run = settings["last_run"]
    assert run["members"] == 40 and run["written"] == 40
    assert set(run["bgnbd"]) >= {"r", "alpha", "a", "b"}
    assert settings["settings"]["window_days"] == 365


async def test_segments_over_loyalty_facts(tenant: TenantHandle, runtime: Runtime) -> None:
    ids = await _seed(tenant)
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    champions = await tenant.post(
        "/v1/segments",
        json={
            "code": "champions",
            "name": "Champions",
            "conditions": [{"field": "loyalty.rfm_segment", "op": "eq", "value": "champions"}],
        },
    )
    assert champions.status_code == 201, champions.text
    found = (await tenant.get(f"/v1/segments/{champions.json()['id']}/members", params={"limit": 100})).json()["items"]
    assert "champ" in {m["external_id"] for m in found}
    assert "lapsed" not in {m["external_id"] for m in found}
    risky = await tenant.post(
        "/v1/segments",
        json={
            "code": "churn-risk",
            "name": "Churn risk",
            "conditions": [{"field": "loyalty.churn_probability", "op": "gte", "value": 0.5}],
        },
    )
    found = (await tenant.get(f"/v1/segments/{risky.json()['id']}/members", params={"limit": 100})).json()["items"]
    assert "lapsed" in {m["external_id"] for m in found}
    assert "champ" not in {m["external_id"] for m in found}
    bad = await tenant.post(
        "/v1/segments",
        json={"code": "x", "name": "x", "conditions": [{"field": "loyalty.shoe_size", "op": "gt", "value": 1}]},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "conditions[0].field"
    rule = await tenant.post(
        "/v1/earning-rules",
        json={
            "name": "x",
            "kind": "fixed",
            "points": "5",
            "conditions": [{"field": "loyalty.rfm_segment", "op": "eq", "value": "champions"}],
        },
    )
    assert rule.status_code == 422 and rule.json()["field"] == "conditions[0].field"
    assert ids


async def test_loyalty_index_settings_and_re_runs(tenant: TenantHandle, runtime: Runtime) -> None:
    ids = await _seed(tenant)
    await tenant.patch(
        f"/v1/members/{ids['f3']}", json={"attributes": {"customer_nature": "government", "sole_provider": True}}
    )
    model = await tenant.post("/v1/measurement/models/copy", json={"default": "loyalty"})
    assert model.status_code == 201
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    champ = await _loyalty(tenant, ids["champ"])
    gov = await _loyalty(tenant, ids["f3"])
    assert 0 < champ["loyalty_index"] <= 100
    assert gov["loyalty_type"]["type"] == "monopoly"
    # the same member's facts through the preview give the same index
    facts = {f"loyalty.{k}": v for k, v in gov["metrics"].items() if k != "churned"}
    facts |= {"member.attributes.customer_nature": "government", "member.attributes.sole_provider": True}
    facts["loyalty.monetary"] = float(facts["loyalty.monetary"])
    preview = (
        await tenant.post(f"/v1/measurement/models/{model.json()['id']}/loyalty-index", json={"facts": facts})
    ).json()
    assert gov["loyalty_index"] == pytest.approx(preview["index"], abs=0.001)

    # tighter thresholds: nobody is trust any more; a wider return window
    put = await tenant.put("/v1/measurement/settings", json={"types": {"trust_min_rf_score": 6}, "window_days": 90})
    assert put.status_code == 200, put.text
    assert put.json()["settings"]["types"]["trust_min_rf_score"] == 6
    assert put.json()["settings"]["return_within_days"] == 30  # left out: the default
    bad = await tenant.put("/v1/measurement/settings", json={"window_days": 3})
    assert bad.status_code == 422 and bad.json()["field"] == "window_days"
    await tenant.post(f"/v1/members/{ids['lapsed']}/anonymize")
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    champ = await _loyalty(tenant, ids["champ"])
    assert champ["loyalty_type"]["type"] != "trust"
    assert (champ["window_days"], champ["metrics"]["frequency"]) == (90, 13)
    assert (await _loyalty(tenant, ids["lapsed"]))["computed_at"] is None  # anonymized: no longer measured
    assert (await tenant.post("/v1/measurement/runs")).status_code == 202


async def test_a_tenant_with_few_members_gets_metrics_without_a_fit(tenant: TenantHandle, runtime: Runtime) -> None:
    member = await tenant.enrol("solo")
    await tenant.post("/v1/events", json=_purchase("solo", 2))
    summary = await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    assert "not fitted" in summary["bgnbd"]["error"]
    solo = await _loyalty(tenant, member["id"])
    assert solo["rfm"]["code"] == "333"  # alone, the member is the middle of every quintile
    assert solo["churn"]["churn_probability"] is None


async def test_a_campaign_for_a_loyalty_segment_reaches_only_its_members(
    tenant: TenantHandle, runtime: Runtime
) -> None:
    ids = await _seed(tenant)
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    segment = await tenant.post(
        "/v1/segments",
        json={
            "code": "slipping",
            "name": "Slipping away",
            "conditions": [{"field": "loyalty.rfm_segment", "op": "in", "value": ["at_risk", "cannot_lose"]}],
        },
    )
    assert segment.status_code == 201, segment.text
    campaign = await tenant.post(
        "/v1/campaigns",
        json={
            "code": "win-back",
            "name": "Win back",
            "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "ends_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "segments": ["slipping"],
            "rules": [{"name": "welcome back", "kind": "fixed", "points": "500"}],
        },
    )
    assert campaign.status_code == 201, campaign.text
    lapsed = (await tenant.post("/v1/events", json=_purchase("lapsed", 0, "10"))).json()
    champ = (await tenant.post("/v1/events", json=_purchase("champ", 0, "10"))).json()
    assert lapsed["points"] == 10 + 500
    assert champ["points"] == 10
    assert ids
