"""Service accounts: PSR needs with consent, source and review date; service by class and rating; bad input refused
with nothing written."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.testing import TenantHandle
from plugins.utility.tests.conftest import account, enable_utility


async def count(t: TenantHandle) -> int:
    return len((await t.get("/v1/utility/accounts", params={"limit": 200})).json()["items"])


async def test_psr_needs_recorded_with_consent_source_and_review(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    made = await account(
        t, psr={"needs": ["medical_equipment", "children_under_5"], "consent": True, "source": "customer-call"}
    )
    psr = made["psr"]
    assert psr["needs"] == ["medical_equipment", "children_under_5"] and psr["source"] == "customer-call"
    assert date.fromisoformat(psr["review_date"]) == datetime.now(UTC).date() + timedelta(days=730)
    assert made["priority"] is True and made["service"]["channel"] == "priority_services"
    listed = (await t.get("/v1/utility/accounts", params={"psr": "true"})).json()["items"]
    assert [a["id"] for a in listed] == [made["id"]]
    removed = await t.patch(f"/v1/utility/accounts/{made['id']}", json={"psr": None})
    assert removed.status_code == 200 and removed.json()["psr"]["needs"] == [] and not removed.json()["priority"]


async def test_tenant_categories_and_service_levels(utility_tenant: TenantHandle) -> None:
    t = await enable_utility(utility_tenant, psr_extra_categories=["hearing_impaired"])
    ok = await account(t, psr={"needs": ["hearing_impaired"], "consent": True, "source": "web-form"})
    assert ok["psr"]["needs"] == ["hearing_impaired"]
    sme = await account(t, customer_class="sme", credit_rating="A")
    assert sme["service"] == {
        "channel": "credit_rating",
        "account_manager": None,
        "credit_rating": "A",
        "response_hours": 4,
        "priority_line": True,
        "events": True,
        "restricted": False,
    }
    low = await account(t, customer_class="sme", credit_rating="D")
    assert low["service"]["restricted"] is True and low["service"]["priority_line"] is False
    big = await account(t, customer_class="large", account_manager="zhang.min@example.com")
    assert big["service"]["channel"] == "account_manager" and big["priority"] is True
    member_id = big["member_id"]
    second = await account(t, member={"id": member_id}, customer_class="residential")
    mine = (await t.get("/v1/utility/accounts", params={"member_id": member_id})).json()["items"]
    assert {a["id"] for a in mine} == {big["id"], second["id"]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"psr": {"needs": ["medical_equipment"], "consent": False, "source": "call"}}, "psr.consent"),
        ({"psr": {"needs": ["unicorn"], "consent": True, "source": "call"}}, "psr.needs[0]"),
        (
            {"psr": {"needs": ["pregnancy"], "consent": True, "source": "call", "review_date": "2000-01-01"}},
            "psr.review_date",
        ),
        ({"customer_class": "residential", "credit_rating": "A"}, "credit_rating"),
        ({"customer_class": "sme", "credit_rating": "Z"}, "credit_rating"),
        ({"customer_class": "castle"}, "customer_class"),
        ({"feeder": ""}, "feeder"),
        ({"account_number": "x" * 41}, "account_number"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_accounts_refused_with_nothing_written(
    utility_tenant: TenantHandle, fields: dict[str, Any], field: str
) -> None:
    t = utility_tenant
    response = await account(t, status=422, **fields)
    assert response["field"] == field, response
    assert response["type"].endswith("validation-error")
    assert await count(t) == 0


async def test_account_numbers_are_unique_and_members_must_exist(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    await account(t, account_number="AC-1")
    twice = await account(t, status=409, account_number="AC-1")
    assert twice["field"] == "account_number"
    ghost = await account(t, status=404, member={"id": "01a247c5-0000-7000-8000-000000000000"})
    assert ghost["field"] == "member_id"
    assert await count(t) == 1
