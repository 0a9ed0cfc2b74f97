"""The value reports (key members, value concentration) read the figures the nightly run stored with its summary
when they still describe the loyalty rows, and compute them from every member's value when not (no run yet, a run
under way, rows gone since, another key-member share): both ways give the same figures, on both databases."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update

from core.clock import utcnow
from core.db.engine import tenant_session
from core.measurement import nightly, reports
from core.measurement import settings as measurement_settings
from core.measurement.models import MeasurementSettings, MemberLoyalty
from core.program.settings import load_program_settings
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from tests.measurement.test_member_loyalty import _seed
from tests.measurement.test_reports import _event


async def _computed(runtime: Runtime, tenant: TenantHandle, name: str) -> dict[str, Any]:
    """The report as computed from every member's value (no stored figures given)."""
    async with tenant_session(runtime.sessionmaker, tenant.id, writes=False) as db:
        program = await load_program_settings(db, tenant.id)
        config, _ = await measurement_settings.load(db, tenant.id)
        report = await reports.REPORTS[name](db, reports.Request(tenant.id, program, config, utcnow()))
    return {"summary": report.summary, "items": report.items}


async def _served(tenant: TenantHandle, name: str) -> dict[str, Any]:
    response = await tenant.get(f"/v1/reports/{name}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {"summary": body["summary"], "items": body["items"]}


async def _mark(runtime: Runtime, tenant: TenantHandle, total_value: float) -> None:
    """Write a marker into the stored figures: a report that shows it read them."""
    async with tenant_session(runtime.sessionmaker, tenant.id) as db:
        last_run = (await db.execute(select(MeasurementSettings.last_run))).scalar_one()
        figures = dict(last_run["value_concentration"])
        figures["total_value"] = total_value
        await db.execute(update(MeasurementSettings).values(last_run=last_run | {"value_concentration": figures}))


async def test_stored_figures_equal_the_computed_ones_and_stay_fresh(
    tenant: TenantHandle, make_tenant: MakeTenant, runtime: Runtime
) -> None:
    other = await make_tenant()
    ids = await _seed(tenant)
    # no run yet: nothing stored, the reports compute (over no rows)
    empty = await _served(tenant, "value-concentration")
    assert empty["summary"]["members"] == 0 and empty["summary"]["total_value"] == 0
    assert (await _served(tenant, "key-members"))["items"] == []

    summary = await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    stored = summary["value_concentration"]
    assert stored["members"] == 40 and stored["key_members"] == 8 and stored["basis"] == "expected_value"
    assert [i["top_share_of_members"] for i in stored["items"]] == list(reports.SHARES)
    settings = (await tenant.get("/v1/measurement/settings")).json()
    assert settings["last_run"]["value_concentration"] == stored
    for name in ("value-concentration", "key-members"):
        assert await _served(tenant, name) == await _computed(runtime, tenant, name), name
    served = await _served(tenant, "value-concentration")
    assert served["summary"]["total_value"] == round(stored["total_value"], 2) > 0
    key = await _served(tenant, "key-members")
    assert key["items"][0]["external_id"] == "champ" and len(key["items"]) == 8
    values = [i["expected_value"] for i in key["items"]]
    assert values == sorted(values, reverse=True)

    # the served figures are the stored ones (a marker written into them shows) ...
    await _mark(runtime, tenant, 123456.789)
    assert (await _served(tenant, "value-concentration"))["summary"]["total_value"] == 123456.79
    # ... the CSV and the chart too
    csv = (await tenant.get("/v1/reports/value-concentration.csv")).text.splitlines()
    assert csv[0] == "top_share_of_members,members,share_of_value" and len(csv) == 1 + len(reports.SHARES)
    chart = (await tenant.get("/v1/reports/value-concentration/chart.json")).json()
    assert len(chart["data"]["values"]) == len(reports.SHARES)
    # ... but not for another key-member share: then computed
    assert (await tenant.put("/v1/measurement/settings", json={"key_member_share": 0.1})).status_code == 200
    assert (await _served(tenant, "value-concentration"))["summary"]["total_value"] != 123456.79
    key = await _served(tenant, "key-members")
    assert key["summary"]["key_members"] == 4 and key == await _computed(runtime, tenant, "key-members")
    assert (await tenant.put("/v1/measurement/settings", json={"key_member_share": 0.2})).status_code == 200
    assert (await _served(tenant, "value-concentration"))["summary"]["total_value"] == 123456.79

    # a run under way (rows newer than the stored figures): computed
    async with tenant_session(runtime.sessionmaker, tenant.id) as db:
        await db.execute(
            update(MemberLoyalty).where(MemberLoyalty.member_id == uuid.UUID(ids["champ"])).values(computed_at=utcnow())
        )
    assert await _served(tenant, "value-concentration") == await _computed(runtime, tenant, "value-concentration")
    assert (await _served(tenant, "value-concentration"))["summary"]["total_value"] != 123456.79

    # a fresh run stores fresh figures; then a row gone since (the most valuable member's): computed without it
    await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    await _mark(runtime, tenant, 7.0)
    assert (await _served(tenant, "value-concentration"))["summary"]["total_value"] == 7.0
    async with tenant_session(runtime.sessionmaker, tenant.id) as db:
        await db.execute(delete(MemberLoyalty).where(MemberLoyalty.member_id == uuid.UUID(ids["champ"])))
    after = await _served(tenant, "value-concentration")
    assert after == await _computed(runtime, tenant, "value-concentration")
    assert after["summary"]["members"] == 39
    key = await _served(tenant, "key-members")
    assert "champ" not in [i["external_id"] for i in key["items"]] and key["summary"]["key_members"] == 8

    # another tenant sees none of it: no figures stored, no rows
    mine = await _served(other, "value-concentration")
    assert mine["summary"]["members"] == 0 and mine["summary"]["total_value"] == 0
    assert (await _served(other, "key-members"))["items"] == []
    assert "value_concentration" not in (await other.get("/v1/measurement/settings")).json()["last_run"]


async def test_unfitted_tenants_store_spend_in_the_window(tenant: TenantHandle, runtime: Runtime) -> None:
    """Too few members to fit the models: the figures' basis is spend in the window, stored and computed alike."""
    a, b = (await tenant.enrol("a"))["id"], (await tenant.enrol("b"))["id"]
    for i, (member, amount) in enumerate([(a, "30.50"), (a, "12.25"), (b, "7.10")]):
        await _event(tenant, member, amount, f"e{i}")
    summary = await nightly.run(runtime.sessionmaker, tenant.id, utcnow())
    stored = summary["value_concentration"]
    assert stored["basis"] == "monetary" and stored["members"] == 2
    assert stored["total_value"] == 49.85 and stored["key_members"] == 1
    assert stored["key_share_of_value"] == round(42.75 / 49.85, 4)
    for name in ("value-concentration", "key-members"):
        assert await _served(tenant, name) == await _computed(runtime, tenant, name), name
