"""Unplanned outages end to end: confirmation alerts every affected account (safety: quiet hours bypassed), an ETR
change beyond the threshold is told, restoration is told and compensated once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.testing import TenantHandle
from plugins.utility.tests.conftest import account, care_rules, messages, outage


async def test_alert_restore_and_compensation(utility_tenant: TenantHandle) -> None:
    t = utility_tenant
    await care_rules(t, "utility.outage_alert", "utility.restored", "utility.compensation")
    home = await account(t, feeder="F1")
    shop = await account(t, feeder="F1", customer_class="sme")
    elsewhere = await account(t, feeder="F9")
    started = datetime.now(UTC) - timedelta(hours=15)
    created = await outage(t, starts_at=started.isoformat(), etr=(started + timedelta(hours=20)).isoformat())
    assert created["affected_accounts"] == 2 and created["told"] == {"alert": 2}
    alerts = await messages(t, trigger="utility.outage_alert")
    assert {m["member_id"] for m in alerts} == {home["member_id"], shop["member_id"]}
    assert all(m["purpose"] == "safety" for m in alerts)
    restored = await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})
    assert restored.status_code == 200, restored.text
    assert restored.json()["told"] == {"restored": 2}
    report = (await t.get(f"/v1/utility/outages/{created['id']}/compensation")).json()
    amounts = {i["account_id"]: (i["amount"], i["status"]) for i in report["items"]}
    assert amounts == {home["id"]: ("95.00", "paid"), shop["id"]: ("190.00", "paid")}
    assert report["amount"] == "285.00" and report["accounts"] == 2
    assert elsewhere["id"] not in amounts
    again = await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})
    assert again.status_code == 200 and again.json()["told"] == {}
    told = await messages(t, trigger="utility.compensation")
    assert len(told) == 2
