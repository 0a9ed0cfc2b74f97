"""Reports over HTTP (JSON and CSV) on both databases: the liability tied to the ledger to the point, breakage from
the program's own history, and the loyalty reports (RFM, types, churn risk, key members, value concentration,
tiers)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import time_machine

from core.clock import utcnow
from core.db.engine import tenant_session
from core.measurement import charts, nightly, reports, reports_api
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import TenantHandle
from core.worker import tick


async def _event(tenant: TenantHandle, member_id: str, amount: str, event_id: str, **attributes: Any) -> dict[str, Any]:
    response = await tenant.post(
        "/v1/events",
        json={
            "type": "purchase",
            "event_id": event_id,
            "member": {"member_id": member_id},
            "occurred_at": datetime.now(UTC).isoformat(),
            "amount": amount,
            "attributes": attributes,
        },
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _sums(tenant: TenantHandle, member_ids: list[str]) -> tuple[int, int]:
    balances = [await tenant.balance(m) for m in member_ids]
    return sum(b["available"] for b in balances), sum(b["pending"] for b in balances)


def _tied(report: dict[str, Any]) -> None:
    """Opening + each month's movement = closing; months chain; the last closing is the posted outstanding."""
    months = report["items"]
    for i, m in enumerate(months):
        moved = sum(m[k] for k in ("earn", "redeem", "expire", "adjust", "reverse", "transfer"))
        assert m["opening"] + moved == m["closing"], m
        if i:
            assert m["opening"] == months[i - 1]["closing"]
    assert months[-1]["closing"] == report["summary"]["posted_points"]


async def test_liability_ties_to_the_ledger_to_the_point(tenant: TenantHandle, runtime: Runtime) -> None:
    assert (
        await tenant.patch("/v1/program", json={"expiry_policy": {"kind": "days_after_earn", "value": 30}})
    ).status_code == 200
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "1"})
    bonus = await tenant.post(
        "/v1/earning-rules",
        json={
            "name": "stay bonus, after checkout",
            "kind": "fixed",
            "points": "50",
            "pending_days": 400,
            "conditions": [{"field": "event.attributes.stay", "op": "eq", "value": True}],
        },
    )
    assert bonus.status_code == 201, bonus.text
    a, b = (await tenant.enrol("liab-a"))["id"], (await tenant.enrol("liab-b"))["id"]
    await _event(tenant, a, "100", "a-1", stay=True)  # 100 posted + 50 pending
    reward = (await tenant.post("/v1/rewards", json={"code": "MUG", "name": "Mug", "points_cost": 30})).json()
    await tenant.post("/v1/redemptions", json={"member_id": a, "reward_id": reward["id"]})
    second = (await tenant.post("/v1/redemptions", json={"member_id": a, "reward_id": reward["id"]})).json()
    assert (
        await tenant.post(f"/v1/redemptions/{second['id']}/cancel", json={"reason": "changed mind"})
    ).status_code == 200
    await tenant.credit(b, 200)
    await tenant.credit(b, -20, reason="correction")
    event_b = await _event(tenant, b, "40", "b-1")
    assert (await tenant.post(f"/v1/events/{event_b['id']}/reverse", json={"reason": "refund"})).status_code == 200
    before_expiry = utcnow()
    posted_then, pending_then = await _sums(tenant, [a, b])
    assert (posted_then, pending_then) == (100 - 30 + 180, 50)

    with time_machine.travel(datetime.now(UTC) + timedelta(days=31), tick=True):
        await tick(runtime, tenant.id)  # expiry
        posted_now, pending_now = await _sums(tenant, [a, b])
        response = await tenant.get("/v1/reports/liability", params={"months": 3})
        assert response.status_code == 200, response.text
        report = response.json()
        ledger_csv = (await tenant.get("/v1/exports/ledger")).text
        csv_report = await tenant.get("/v1/reports/liability.csv", params={"months": 3})
    summary = report["summary"]
    assert posted_now < posted_then  # something expired
    assert (summary["posted_points"], summary["pending_points"]) == (posted_now, pending_now)
    ledger_posted = sum(int(r["points"]) for r in csv.DictReader(io.StringIO(ledger_csv)) if r["status"] == "posted")
    assert ledger_posted == posted_now
    _tied(report)
    assert summary["outstanding_points"] == posted_now + pending_now
    assert summary["outstanding_value"] == f"{(posted_now + pending_now) / 100:.2f}"
    # a's earned 100: 30 redeemed (the cancelled redemption gave its 30 back), 70 expired
    assert summary["breakage_source"] == "history"
    assert summary["breakage_rate"] == pytest.approx(0.7)
    assert summary["expected_breakage_points"] == round((posted_now + pending_now) * 0.7)
    assert summary["net_liability_points"] == summary["outstanding_points"] - summary["expected_breakage_points"]
    kinds = {k: sum(m[k] for m in report["items"]) for k in ("earn", "redeem", "expire", "adjust", "reverse")}
    assert kinds["redeem"] == -60 and kinds["adjust"] == 180 and kinds["earn"] == 140
    assert kinds["reverse"] == -40 + 30  # the refunded event's 40 out, the cancelled redemption's 30 back
    assert csv_report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_report.text)))
    assert [int(r["closing"]) for r in rows] == [m["closing"] for m in report["items"]]

    # As of before the expiry, the liability is what the balances were then
    past = (await tenant.get("/v1/reports/liability", params={"as_of": before_expiry.isoformat()})).json()
    assert (past["summary"]["posted_points"], past["summary"]["pending_points"]) == (posted_then, pending_then)
    _tied(past)
    future = await tenant.get("/v1/reports/liability", params={"as_of": (utcnow() + timedelta(days=400)).isoformat()})
    assert future.status_code == 422 and future.json()["field"] == "as_of"
    naive = await tenant.get("/v1/reports/liability", params={"as_of": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


async def test_a_tenant_set_breakage_rate_and_an_empty_program(tenant: TenantHandle, make_tenant) -> None:
    other = await make_tenant()
    member = await tenant.enrol()
    await tenant.credit(member["id"], 1000)
    empty = (await other.get("/v1/reports/liability")).json()["summary"]
    assert (empty["outstanding_points"], empty["breakage_rate"]) == (0, None)
    assert empty["breakage_source"].startswith("none")
    await tenant.put("/v1/measurement/settings", json={"breakage_rate": 0.25, "point_value": "0.005"})
    summary = (await tenant.get("/v1/reports/liability")).json()["summary"]
    assert (summary["breakage_rate"], summary["breakage_source"]) == (0.25, "settings")
    assert (summary["outstanding_value"], summary["net_liability_value"]) == ("5.00", "3.75")
    assert (await tenant.put("/v1/measurement/settings", json={"point_value": "-1"})).json()["field"] == "point_value"
    assert (await tenant.get("/v1/reports/nonsense")).status_code == 404


async def test_loyalty_reports(tenant: TenantHandle, runtime: Runtime) -> None:
    from tests.measurement.test_member_loyalty import _seed

    ids = await _seed(tenant)
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    rfm = (await tenant.get("/v1/reports/rfm")).json()
    assert sum(c["members"] for c in rfm["items"]) == 40
    assert sum(rfm["summary"]["segments"].values()) == 40
    assert rfm["summary"]["segments"]["inactive"] >= 1  # "never"
    types = (await tenant.get("/v1/reports/loyalty-types")).json()
    by_type = {t["loyalty_type"]: t["members"] for t in types["items"]}
    assert by_type["kinship"] == 1 and by_type["benefit"] >= 1 and sum(by_type.values()) == 40
    summary = (await tenant.get("/v1/reports/loyalty")).json()["summary"]
    assert summary["members"] == 40 and 0 < summary["churn_rate"] < 1
    risk = (await tenant.get("/v1/reports/churn-risk")).json()
    assert "lapsed" in [m["external_id"] for m in risk["items"]]
    assert "champ" not in [m["external_id"] for m in risk["items"]]
    assert risk["summary"]["members_at_risk"] == len(risk["items"])
    key = (await tenant.get("/v1/reports/key-members")).json()
    assert key["summary"]["key_members"] == 8  # 20 % of 40
    assert key["items"][0]["external_id"] == "champ"
    concentration = (await tenant.get("/v1/reports/value-concentration")).json()
    shares = [i["share_of_value"] for i in concentration["items"]]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    assert concentration["summary"]["top_20_percent_share"] > 0.2
    tiers = (await tenant.get("/v1/reports/tiers")).json()
    assert sum(t["members"] for t in tiers["items"]) == 40
    rfm_csv = await tenant.get("/v1/reports/rfm.csv")
    assert rfm_csv.text.splitlines()[0] == "r,f,segment,members,average_monetary"
    limited = (await tenant.get("/v1/reports/key-members", params={"limit": 2})).json()
    assert len(limited["items"]) == 2
    assert (await tenant.get("/v1/reports/key-members", params={"limit": 0})).status_code == 422
    assert ids


async def test_the_dashboard_builds_each_report_as_its_route_does(
    tenant: TenantHandle, runtime: Runtime, make_tenant
) -> None:
    """The dashboard builds its reports at once on several connections (PostgreSQL), each as the tenant: every report
    and chart equals its own route's, and another tenant's members count nowhere."""
    from tests.measurement.test_member_loyalty import _seed

    await _seed(tenant)
    other = await make_tenant()
    await other.credit((await other.enrol())["id"], 777)
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    await nightly.run(runtime.sessionmaker, other.id, utcnow())
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as db:
        program = await load_program_settings(db, tenant.id)
        found = await reports_api.dashboard_reports(db, runtime.sessionmaker, tenant.id, program)
    assert set(found) == {"loyalty", *charts.CHARTS}
    for name, (report, svg) in found.items():
        route = (await tenant.get(f"/v1/reports/{name}")).json()
        summary = msgspec.json.decode(msgspec.json.encode(report.summary))
        summary.pop("as_of", None), route["summary"].pop("as_of", None)
        assert (summary, msgspec.json.decode(msgspec.json.encode(report.items))) == (route["summary"], route["items"])
        if name in charts.CHARTS:  # the renderer numbers its gradients process-wide
            drawn = (await tenant.get(f"/v1/reports/{name}/chart.svg")).text
            assert re.sub(r"gradient_\d+", "g", svg) == re.sub(r"gradient_\d+", "g", drawn), name
    assert found["loyalty"][0].summary["members"] == 40
    risk = found["churn-risk"][0].summary
    curve = [step["members"] for step in risk["curve"]]
    assert curve == sorted(curve, reverse=True) and curve[0] >= risk["members_at_risk"] > 0
    assert found["liability"][0].summary["outstanding_points"] != 777


async def test_a_dashboard_report_that_fails_is_the_answer(
    tenant: TenantHandle, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One report raising while others are being built on their connections: its error is the one raised (not a
    group of errors, nor a closed transaction's), and the tenant's next dashboard is whole (no connection left
    behind in a bad state)."""

    async def broken(db: Any, req: Any) -> Any:
        await asyncio.sleep(0.05)
        raise RuntimeError("the RFM report broke")

    await tenant.credit((await tenant.enrol())["id"], 120)
    monkeypatch.setitem(reports.REPORTS, "rfm", broken)
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as db:
        program = await load_program_settings(db, tenant.id)
        with pytest.raises(RuntimeError, match="RFM report broke"):
            await reports_api.dashboard_reports(db, runtime.sessionmaker, tenant.id, program)
    monkeypatch.undo()
    page = await tenant.get("/v1/reports/dashboard")
    assert page.status_code == 200 and page.text.count('<figure data-chart="') == 6


async def test_reports_need_the_reports_scope(tenant: TenantHandle) -> None:
    key = (await tenant.post("/v1/api-keys", json={"name": "members only", "scopes": ["members:read"]})).json()
    response = await tenant.client.get("/v1/reports/rfm", headers={"Authorization": f"Bearer {key['secret']}"})
    assert response.status_code == 403


async def test_charts_as_svg_png_and_vega_lite(tenant: TenantHandle, runtime: Runtime) -> None:
    from tests.measurement.test_member_loyalty import _seed

    await _seed(tenant)
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    for name in ("tiers", "rfm", "loyalty-types", "churn-risk", "value-concentration", "liability"):
        spec = await tenant.get(f"/v1/reports/{name}/chart.json")
        assert spec.status_code == 200, spec.text
        assert spec.json()["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert spec.json()["data"]["values"], name
        svg = await tenant.get(f"/v1/reports/{name}/chart.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.lstrip().startswith("<svg") and "</svg>" in svg.text
    rfm_svg = (await tenant.get("/v1/reports/rfm/chart.svg")).text
    assert "Frequency score" in rfm_svg and "Recency score" in rfm_svg
    png = await tenant.get("/v1/reports/tiers/chart.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(png.content[16:20], "big")
    assert width > 500  # rendered at twice the size
    assert (await tenant.get("/v1/reports/key-members/chart.svg")).status_code == 404


async def test_dashboard_with_a_key_and_with_a_short_lived_link(tenant: TenantHandle, make_tenant) -> None:
    member = await tenant.enrol()
    await tenant.credit(member["id"], 250)
    page = await tenant.get("/v1/reports/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('<figure data-chart="') == 6 and page.text.count("<svg") >= 6
    assert "Outstanding points" in page.text and "250" in page.text
    link = await tenant.post("/v1/reports/links", json={"expires_in_minutes": 5})
    assert link.status_code == 201, link.text
    url = link.json()["url"]
    path = url[url.index("/v1/") :]
    shared = await tenant.client.get(path)  # no API key
    assert shared.status_code == 200 and "Loyalty dashboard" in shared.text and "250" in shared.text
    assert shared.headers["cache-control"] == "no-store"
    other = await make_tenant()
    assert "250" not in (await other.get("/v1/reports/dashboard")).text
    tampered = await tenant.client.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    assert tampered.status_code == 400 and tampered.json()["type"].endswith("/invalid-link")
    assert (await tenant.client.get("/v1/reports/dashboard/shared")).status_code == 400
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=6), tick=False):
        expired = await tenant.client.get(path)
    assert expired.status_code == 410
    assert (await tenant.client.get("/v1/reports/dashboard")).status_code == 401
    too_long = await tenant.post("/v1/reports/links", json={"expires_in_minutes": 60 * 24 + 1})
    assert too_long.status_code == 422 and too_long.json()["field"] == "expires_in_minutes"
