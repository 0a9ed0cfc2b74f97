from __future__ import annotations

from core.testing import TenantHandle


async def test_enrol_and_credit(tenant: TenantHandle) -> None:
    member = await tenant.enrol(name="Ada")
    await tenant.credit(member["id"], 120)
    balance = await tenant.balance(member["id"])
    assert balance["available"] == 120
