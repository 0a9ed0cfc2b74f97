"""The utility's demo tenant, seeded by ``fealty demo``'s machinery through the real API: a Jiangsu power company with
its accounts, notices, compensation, call tasks and a peak-time event."""

from __future__ import annotations

import uuid
from typing import Any, cast

import httpx

from core.app import create_app
from core.demo import seed_demo
from core.testing import TEST_PLATFORM_KEY, registering, settings_for_tests
from plugins import utility


async def test_the_jiangsu_power_company(database_url: str) -> None:
    app = create_app(settings_for_tests(database_url), plugins=registering(utility.PLUGIN)())
    prefix = f"u{uuid.uuid4().hex[:8]}"
    async with app.lifespan():
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo", timeout=120) as client:
            result = await seed_demo(client, app.state["runtime"], TEST_PLATFORM_KEY, prefix=prefix)
            power = result.tenant("power")
            assert power is not None
            headers = {"Authorization": f"Bearer {power.api_key}"}

            async def get(path: str, **params: Any) -> Any:
                response = await client.get(path, headers=headers, params=params)
                assert response.status_code == 200, response.text
                return response.json()

            program = await get("/v1/program")
            report = await get(f"/v1/utility/outages/{power.extras['unplanned_outage']}/compensation")
            alerts = (await get("/v1/messages", trigger="utility.outage_alert", limit=100))["items"]
            tasks = (await get("/v1/utility/call-tasks"))["items"]
            planned = (await get(f"/v1/utility/outages/{power.extras['planned_outage']}/accounts"))["items"]
            peak = (await get("/v1/messages", trigger="utility.peak_event"))["items"]
    assert (program["currency"], program["timezone"]) == ("CNY", "Asia/Shanghai")
    # F-102: two residential customers (50 each), an SME and a large customer (200 each), 15 hours in normal weather
    assert report["accounts"] == 4 and report["amount"] == "500.00" and report["paid_amount"] == "500.00"
    assert len(alerts) == 4 and all(m["purpose"] == "safety" and m["channel"] == "sms" for m in alerts)
    assert {t["reason"] for t in tasks} == {"planned_priority"}  # the PSR customers of F-101 (no medical on F-102)
    assert {tuple(a["stages"]) for a in planned if a["priority"]} == {("priority_notice",)}
    assert len(peak) == 4
    assert power.counts["accounts"] == 12
