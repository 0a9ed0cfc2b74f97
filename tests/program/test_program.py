"""Program settings."""

from __future__ import annotations

import pytest

from core.testing import TenantHandle


async def test_read_and_change_program(tenant: TenantHandle) -> None:
    program = (await tenant.get("/v1/program")).json()
    assert program["expiry_policy"] == {"kind": "never", "value": None}
    assert program["reversal_policy"] == "claw_back"
    changed = await tenant.patch(
        "/v1/program",
        json={
            "points_name": "stars",
            "expiry_policy": {"kind": "end_of_month_after", "value": 12},
            "reversal_policy": "allow_negative",
            "timezone": "America/New_York",
        },
    )
    assert changed.status_code == 200, changed.text
    again = (await tenant.get("/v1/program")).json()
    assert again["points_name"] == "stars"
    assert again["expiry_policy"] == {"kind": "end_of_month_after", "value": 12}
    assert again["reversal_policy"] == "allow_negative" and again["timezone"] == "America/New_York"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"currency": "ABC"}, "currency"),
        ({"expiry_policy": {"kind": "days_after_earn"}}, "expiry_policy.value"),
        ({"expiry_policy": {"kind": "days_after_earn", "value": 0}}, "expiry_policy.value"),
        ({"expiry_policy": {"kind": "sometimes", "value": 3}}, "expiry_policy.kind"),
        ({"reversal_policy": "whatever"}, "reversal_policy"),
        ({"points_name": ""}, "points_name"),
        ({"plugins": ["not-installed"]}, "plugins"),
    ],
)
async def test_bad_program_changes_are_refused_whole(tenant: TenantHandle, body: dict, field: str) -> None:
    before = (await tenant.get("/v1/program")).json()
    response = await tenant.patch(
        "/v1/program", json=body | {"points_name": "miles"} if "points_name" not in body else body
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await tenant.get("/v1/program")).json() == before  # nothing half-applied
