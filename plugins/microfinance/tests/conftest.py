"""Fixtures for the microfinance plugin's tests: the plugin registered, a rural lender in Shanghai time (CNY) that
enabled it, and helpers to set up borrowers, products and loans through the API."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.plugin.manager import PluginManager
from core.testing import MakeTenant, TenantHandle, registering
from plugins import microfinance

SHANGHAI = ZoneInfo("Asia/Shanghai")
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(microfinance.PLUGIN)


async def enable_microfinance(tenant: TenantHandle, **settings: Any) -> TenantHandle:
    body: dict[str, Any] = {
        "plugins": ["microfinance"],
        "plugin_settings": {"microfinance": {"seed_defaults": False} | settings},
    }
    response = await tenant.patch("/v1/program", json=body)
    assert response.status_code == 200, response.text
    return tenant


async def lender(make_tenant: MakeTenant, **settings: Any) -> TenantHandle:
    return await enable_microfinance(await make_tenant(timezone="Asia/Shanghai", currency="CNY"), **settings)


@pytest.fixture
async def mf_tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A rural lender in Asia/Shanghai lending CNY with the plugin on its default settings (nothing seeded)."""
    return await lender(make_tenant)


def local_today() -> date:
    return datetime.now(UTC).astimezone(SHANGHAI).date()


def at_local(day: date, hour: int = 10, minute: int = 0) -> str:
    """That wall-clock time on a local day, or a minute ago when it is still to come (today's early hours)."""
    moment = datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI)
    now = datetime.now(UTC).astimezone(SHANGHAI)
    if moment > now:
        moment = max(now - timedelta(minutes=1), datetime.combine(day, time(0), tzinfo=SHANGHAI))
    return moment.isoformat()


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def borrower(
    tenant: TenantHandle,
    *,
    income: str = "6000",
    trained: bool = True,
    officer: str = "officer-wang",
    **member: Any,
) -> dict[str, Any]:
    m = await tenant.enrol(f"b-{next(_ids)}", **member)
    await ok(
        await tenant.put(
            f"/v1/microfinance/borrowers/{m['id']}",
            json={"household_income_monthly": income, "business": "pigs", "village": "Qingjiang", "officer": officer},
        )
    )
    if trained:
        await ok(
            await tenant.post(
                f"/v1/microfinance/borrowers/{m['id']}/training",
                json={"trained_on": "2026-01-05", "trainer": "Li Hua"},
            )
        )
    return m


async def product(tenant: TenantHandle, **fields: Any) -> dict[str, Any]:
    body = {
        "code": f"P{next(_ids)}",
        "name": "Monthly flat",
        "interest_method": "flat",
        "annual_rate": "12",
        "frequency": "monthly",
        "instalments": 12,
        "min_principal": "1000",
        "max_principal": "50000",
    } | fields
    return await ok(await tenant.post("/v1/microfinance/products", json=body), 201)


async def loan(
    tenant: TenantHandle,
    member: dict[str, Any],
    prod: dict[str, Any],
    principal: str = "10000",
    *,
    disburse: date | None = None,
    first_due: date | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Applied, approved and signed; disbursed when ``disburse`` is given."""
    applied = await ok(
        await tenant.post(
            "/v1/microfinance/loans",
            json={"member_id": member["id"], "product_id": prod["id"], "principal": principal} | fields,
        ),
        201,
    )
    loan_id = applied["id"]
    await ok(await tenant.post(f"/v1/microfinance/loans/{loan_id}/approve", json={}))
    out: dict[str, Any] = await ok(await tenant.post(f"/v1/microfinance/loans/{loan_id}/sign", json={}))
    if disburse is not None:
        body: dict[str, Any] = {"disbursed_on": disburse.isoformat()}
        if first_due:
            body["first_due_on"] = first_due.isoformat()
        out = await ok(await tenant.post(f"/v1/microfinance/loans/{loan_id}/disburse", json=body))
    return out


def repayment(
    member: dict[str, Any], loan_id: str, amount: str | Decimal, occurred_at: str, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "type": "microfinance.repayment",
        "event_id": event_id or f"rp-{next(_ids)}",
        "member": {"member_id": member["id"]},
        "occurred_at": occurred_at,
        "amount": str(amount),
        "currency": "CNY",
        "attributes": {"loan_id": loan_id},
    }


async def pay(
    tenant: TenantHandle,
    member: dict[str, Any],
    loan_id: str,
    amount: str | Decimal,
    occurred_at: str,
    status: int = 201,
    event_id: str | None = None,
) -> dict[str, Any]:
    response = await tenant.post("/v1/events", json=repayment(member, loan_id, amount, occurred_at, event_id))
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def schedule(tenant: TenantHandle, loan_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await ok(await tenant.get(f"/v1/microfinance/loans/{loan_id}/schedule"))
    return result
