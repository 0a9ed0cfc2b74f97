"""Peak-time events: announced the day before, a rebate per kWh saved against the baseline (the mean of the highest
3 of the last 10 similar weekdays over the same hours), paid once per event and account."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine

from core import worker
from core.runtime import Runtime
from core.testing import MakeTenant
from plugins.utility import rules
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages
from plugins.utility.tests.test_rewards import event

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_announced_the_day_before_settled_once_against_the_baseline(
    make_tenant: MakeTenant, runtime: Runtime
) -> None:
    day = date(2031, 7, 16)  # a Wednesday
    start = datetime(2031, 7, 16, 17, tzinfo=SHANGHAI)
    with time_machine.travel(datetime(2031, 7, 10, 9, tzinfo=SHANGHAI), tick=True) as clock:
        t = await enable_utility(await make_tenant(timezone="Asia/Shanghai", currency="CNY"))
        await care_rules(t, "utility.peak_event")
        saver, waster, newcomer = await account(t), await account(t), await account(t, feeder="F1")
        elsewhere = await account(t, feeder="F7")
        # 10 similar weekdays before the event: 17:00-20:00 Shanghai time, one read per hour; day i uses i kWh an hour
        days = rules.similar_days(day, 10)
        for acct in (saver, waster):
            reads = [
                {
                    "start": datetime.combine(d, datetime.min.time(), SHANGHAI).replace(hour=17 + h).isoformat(),
                    "kwh": str(i + 1),
                }
                for i, d in enumerate(reversed(days))
                for h in range(3)
            ]
            await event(
                t,
                acct["member_id"],
                "utility.meter_reads",
                attributes={"account_number": acct["account_number"], "reads": reads, "interval_minutes": 60},
            )
        created = await t.post(
            "/v1/utility/peak-events",
            json={
                "name": "Evening peak",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=3)).isoformat(),
                "feeders": ["F1"],
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["told"] == 0
        clock.move_to(datetime(2031, 7, 15, 18, tzinfo=SHANGHAI))
        await worker.tick(runtime, t.id)
        announced = await messages(t, trigger="utility.peak_event")
        assert {m["member_id"] for m in announced} == {saver["member_id"], waster["member_id"], newcomer["member_id"]}
        early = await t.post(f"/v1/utility/peak-events/{created.json()['id']}/settle")
        assert early.status_code == 409
        # during the event: the saver uses 1 kWh an hour, the waster 12
        for acct, kwh in ((saver, "1"), (waster, "12")):
            reads = [{"start": (start + timedelta(hours=h)).isoformat(), "kwh": kwh} for h in range(3)]
            await event(
                t,
                acct["member_id"],
                "utility.meter_reads",
                attributes={"account_number": acct["account_number"], "reads": reads, "interval_minutes": 60},
            )
        clock.move_to(datetime(2031, 7, 16, 21, tzinfo=SHANGHAI))
        settled = [await t.post(f"/v1/utility/peak-events/{created.json()['id']}/settle") for _ in range(2)]
        assert [s.status_code for s in settled] == [200, 200]
        assert settled[0].json()["rebates"] == 1 and settled[1].json()["status"] == "settled"
    rows = (await t.get(f"/v1/utility/peak-events/{created.json()['id']}/rebates")).json()["items"]
    by = {r["account_id"]: r for r in rows}
    # baseline: the highest 3 days are 10, 9, 8 kWh an hour: 27 kWh over 3 hours on average; the saver used 3
    assert Decimal(by[saver["id"]]["baseline_kwh"]) == Decimal(27)
    assert Decimal(by[saver["id"]]["saved_kwh"]) == Decimal(24) and by[saver["id"]]["amount"] == "30.00"
    assert by[saver["id"]]["points"] == 3000
    assert by[waster["id"]]["points"] == 0 and by[newcomer["id"]]["baseline_kwh"] is None
    assert elsewhere["id"] not in by
    assert (await t.balance(saver["member_id"]))["available"] == 3000
