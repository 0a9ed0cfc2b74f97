"""Loans through their states: training before signing, the over-indebtedness check at approval with its override,
the schedule fixed at disbursement, bad input refused with nothing written."""

from __future__ import annotations

from datetime import timedelta

from core.testing import TenantHandle
from plugins.microfinance.tests.conftest import borrower, loan, local_today, ok, product, schedule


async def test_a_loan_moves_from_application_to_disbursement_with_its_schedule(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant)
    applied = await ok(
        await mf_tenant.post(
            "/v1/microfinance/loans", json={"member_id": member["id"], "product_id": prod["id"], "principal": "10000"}
        ),
        201,
    )
    assert applied["status"] == "applied"
    preview = await schedule(mf_tenant, applied["id"])
    assert preview["preview"] is True and len(preview["instalments"]) == 12
    assert preview["total_interest"] == "1200.00"
    approved = await ok(await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/approve", json={}))
    assert approved["status"] == "approved" and approved["indebtedness"]["over"] is False
    await ok(await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/sign", json={}))
    day = local_today() - timedelta(days=3)
    disbursed = await ok(
        await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/disburse", json={"disbursed_on": day.isoformat()})
    )
    assert disbursed["status"] == "disbursed"
    table = await schedule(mf_tenant, applied["id"])
    assert table["preview"] is False
    assert [i["principal"] for i in table["instalments"]] == ["833.33"] * 11 + ["833.37"]
    assert {i["interest"] for i in table["instalments"]} == {"100.00"}
    assert table["instalments"][0]["state"] == "due"
    actions = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{applied['id']}/actions"))
    assert [a["action"] for a in actions] == ["apply", "approve", "sign", "disburse"]
    # the use-of-funds visit is due within 30 days
    [task] = (await ok(await mf_tenant.get("/v1/microfinance/follow-ups", params={"loan_id": applied["id"]})))["items"]
    assert task["kind"] == "use_of_funds" and task["due_on"] == (day + timedelta(days=30)).isoformat()
    # disbursing again is refused
    again = await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/disburse", json={})
    assert again.status_code == 409 and again.json()["field"] == "status"


async def test_no_signature_before_integrity_training(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant, trained=False)
    prod = await product(mf_tenant)
    applied = await ok(
        await mf_tenant.post(
            "/v1/microfinance/loans", json={"member_id": member["id"], "product_id": prod["id"], "principal": "5000"}
        ),
        201,
    )
    await ok(await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/approve", json={}))
    refused = await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/sign", json={})
    assert refused.status_code == 409 and refused.json()["field"] == "training"
    assert (await ok(await mf_tenant.get(f"/v1/microfinance/loans/{applied['id']}")))["status"] == "approved"
    await ok(
        await mf_tenant.post(
            f"/v1/microfinance/borrowers/{member['id']}/training", json={"trained_on": "2026-03-01", "trainer": "Zhao"}
        )
    )
    signed = await ok(await mf_tenant.post(f"/v1/microfinance/loans/{applied['id']}/sign", json={}))
    assert signed["status"] == "signed"


async def test_over_indebtedness_is_refused_or_approved_with_a_recorded_override(mf_tenant: TenantHandle) -> None:
    # income 2,000 a month: at most 1,000 of instalments. A first loan of 6,000 over 12 months flat at 12%: 560 a month.
    member = await borrower(mf_tenant, income="2000")
    prod = await product(mf_tenant)
    await loan(mf_tenant, member, prod, "6000", disburse=local_today())
    second = await ok(
        await mf_tenant.post(
            "/v1/microfinance/loans", json={"member_id": member["id"], "product_id": prod["id"], "principal": "6000"}
        ),
        201,
    )
    refused = await mf_tenant.post(f"/v1/microfinance/loans/{second['id']}/approve", json={})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "override_reason"
    assert "1120.00" in refused.json()["detail"] and "1000.00" in refused.json()["detail"]
    still = await ok(await mf_tenant.get(f"/v1/microfinance/loans/{second['id']}"))
    assert still["status"] == "applied" and still["indebtedness"] is None
    approved = await ok(
        await mf_tenant.post(
            f"/v1/microfinance/loans/{second['id']}/approve",
            json={"override_reason": "harvest income confirmed by the village committee"},
        )
    )
    assert approved["status"] == "approved"
    assert approved["override_reason"] == "harvest income confirmed by the village committee"
    assert approved["indebtedness"]["over"] is True and approved["indebtedness"]["total_monthly"] == "1120.00"


async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(mf_tenant: TenantHandle) -> None:
    member = await borrower(mf_tenant)
    prod = await product(mf_tenant)
    cases = [
        (
            "/v1/microfinance/products",
            {
                "code": "X",
                "name": "x",
                "interest_method": "flat",
                "annual_rate": "NaN",
                "frequency": "monthly",
                "instalments": 12,
                "min_principal": "1",
                "max_principal": "2",
            },
            "annual_rate",
        ),
        (
            "/v1/microfinance/products",
            {
                "code": "X",
                "name": "x",
                "interest_method": "flat",
                "annual_rate": "12",
                "frequency": "daily",
                "instalments": 12,
                "min_principal": "1",
                "max_principal": "2",
            },
            "frequency",
        ),
        (
            "/v1/microfinance/products",
            {
                "code": "X",
                "name": "x",
                "interest_method": "flat",
                "annual_rate": "12",
                "frequency": "monthly",
                "instalments": 12,
                "grace": 12,
                "min_principal": "1",
                "max_principal": "2",
            },
            "grace",
        ),
        (
            "/v1/microfinance/products",
            {
                "code": "X",
                "name": "x",
                "interest_method": "flat",
                "annual_rate": "12",
                "frequency": "monthly",
                "instalments": 12,
                "min_principal": "1.001",
                "max_principal": "2",
            },
            "min_principal",
        ),
        (
            "/v1/microfinance/products",
            {
                "code": "X",
                "name": "x",
                "interest_method": "flat",
                "annual_rate": "12",
                "frequency": "monthly",
                "instalments": 12,
                "min_principal": "1",
                "max_principal": "2",
                "currency": "USD",
            },
            "currency",
        ),
        (
            "/v1/microfinance/loans",
            {"member_id": member["id"], "product_id": prod["id"], "principal": "-5"},
            "principal",
        ),
        (
            "/v1/microfinance/loans",
            {"member_id": member["id"], "product_id": prod["id"], "principal": "999999"},
            "principal",
        ),
        (
            "/v1/microfinance/loans",
            {"member_id": member["id"], "product_id": prod["id"], "principal": "1000.005"},
            "principal",
        ),
        (
            "/v1/microfinance/loans",
            {"member_id": member["id"], "product_id": prod["id"], "principal": "1000", "colour": "red"},
            "colour",
        ),
    ]
    for url, body, field in cases:
        response = await mf_tenant.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"].endswith(field), (field, response.json())
    assert len(await ok(await mf_tenant.get("/v1/microfinance/products"))) == 1
    assert (await ok(await mf_tenant.get("/v1/microfinance/loans")))["items"] == []
    other = await borrower(mf_tenant)
    unknown = await mf_tenant.post(
        "/v1/microfinance/loans",
        json={"member_id": other["id"], "product_id": "00000000-0000-0000-0000-000000000000", "principal": "1000"},
    )
    assert unknown.status_code == 404 and unknown.json()["field"] == "product_id"
