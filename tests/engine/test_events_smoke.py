from __future__ import annotations

from datetime import UTC, datetime

from core.testing import TenantHandle

NOW = datetime.now(UTC).isoformat()


async def test_event_earns_by_rule(tenant: TenantHandle) -> None:
    r = await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "10"})
    assert r.status_code == 201, r.text
    member = await tenant.enrol("e-1")
    body = {
        "type": "purchase",
        "event_id": "pos-1",
        "member": {"external_id": "e-1"},
        "occurred_at": NOW,
        "amount": "12.50",
    }
    first = await tenant.post("/v1/events", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["points"] == 125
    again = await tenant.post("/v1/events", json=body)
    assert again.status_code == 200 and again.json() == first.json()
    assert (await tenant.balance(member["id"]))["available"] == 125
