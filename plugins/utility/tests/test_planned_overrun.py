"""A planned outage that runs past its notified window, or was not notified with the required notice (2 days, UK
SI 2015/699), is compensated like an unplanned one: from the window's end for an account told in time, from the
start for one told late. Hand-computed against the default (UK) table: 95 domestic / 190 business after 12 h, plus
45 for each complete further 12 h."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from core import worker
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from plugins.utility.tests.conftest import account, enable_utility, planned

#: Monday 5 May 2031, 09:00 UTC (10:00 in London): when the outages are planned.
T0 = datetime(2031, 5, 5, 9, tzinfo=UTC)


async def _restore(t: TenantHandle, outage: dict[str, Any], at: datetime, status: int = 200) -> dict[str, Any]:
    response = await t.post(f"/v1/utility/outages/{outage['id']}/restore", json={"restored_at": at.isoformat()})
    assert response.status_code == status, response.text
    return dict(response.json())


async def _owed(t: TenantHandle, outage: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Each account's (amount, hours counted, basis)."""
    report = (await t.get(f"/v1/utility/outages/{outage['id']}/compensation")).json()
    return {i["account_id"]: (i["amount"], i["hours"], i["basis"]) for i in report["items"]}


async def test_overruns_and_short_notice_are_compensated_like_unplanned_outages(make_tenant: MakeTenant) -> None:
    with time_machine.travel(T0, tick=True) as clock:
        t = await enable_utility(await make_tenant(timezone="Europe/London"))
        home, shop = await account(t, feeder="F1"), await account(t, feeder="F1", customer_class="sme")
        short, early, moved = (
            await account(t, feeder="F2"),
            await account(t, feeder="F3"),
            await account(t, feeder="F4"),
        )
        # told 3 days ahead (late for the 7-day notice, but more than the 2 days the standard needs)
        a_start = T0 + timedelta(days=3)
        a = await planned(t, a_start, hours=8, feeders=["F1"])
        # told 1 day ahead: short notice
        b_start = T0 + timedelta(days=1)
        b = await planned(t, b_start, hours=12, feeders=["F2"])
        # told 3 days ahead, back 11 h 59 min after its window
        c = await planned(t, a_start, hours=8, feeders=["F3"])
        # told 3 days ahead, then moved 12 hours later only a day before its first start: the new window was told
        # 1.5 days ahead, short notice
        d = await planned(t, a_start, hours=8, feeders=["F4"])
        assert (a["told"], b["told"], c["told"], d["told"]) == (
            {"notice": 2},
            {"notice": 1},
            {"notice": 1},
            {"notice": 1},
        )
        # an outage is restored once it has started, not before
        early_restore = await t.post(
            f"/v1/utility/outages/{a['id']}/restore", json={"restored_at": (T0 + timedelta(hours=1)).isoformat()}
        )
        assert early_restore.status_code == 422 and early_restore.json()["field"] == "restored_at"

        clock.move_to(T0 + timedelta(days=2))
        d_start = a_start + timedelta(hours=12)
        body = {"starts_at": d_start.isoformat(), "ends_at": (d_start + timedelta(hours=8)).isoformat()}
        assert (await t.patch(f"/v1/utility/outages/{d['id']}", json=body)).json()["told"] == {"changed:1": 1}

        clock.move_to(T0 + timedelta(days=5))
        # A: the window ends 8 May 17:00 UTC; back 18 h later: 18 h counted from the window's end
        restored = await _restore(t, a, a_start + timedelta(hours=8 + 18))
        assert restored["status"] == "restored"
        assert await _owed(t, a) == {
            home["id"]: ("95.00", "18.00", "payment"),
            shop["id"]: ("190.00", "18.00", "payment"),
        }
        # B: short notice; back 13 h after its 12-hour window: 25 h from the start, 95 + 45
        await _restore(t, b, b_start + timedelta(hours=12 + 13))
        assert await _owed(t, b) == {short["id"]: ("140.00", "25.00", "payment+increments")}
        # C: 11 h 59 min past its window: within the standard (exactly 12 h would be too)
        await _restore(t, c, a_start + timedelta(hours=8 + 11, minutes=59))
        assert await _owed(t, c) == {early["id"]: ("0.00", "11.98", "within_standard")}
        # D: the moved window, told late: from its new start (not the first one), 8 h + 6 h = 14 h
        await _restore(t, d, d_start + timedelta(hours=8 + 6))
        assert await _owed(t, d) == {moved["id"]: ("95.00", "14.00", "payment")}

        # restored once: again is the same answer; a restored outage is neither cancelled nor restored differently
        again = await _restore(t, a, a_start + timedelta(hours=40))
        assert again["restored_at"] == restored["restored_at"]
        assert (await t.post(f"/v1/utility/outages/{a['id']}/cancel")).status_code == 409
        assert await _owed(t, a) == {
            home["id"]: ("95.00", "18.00", "payment"),
            shop["id"]: ("190.00", "18.00", "payment"),
        }


async def test_told_on_time_exactly_twelve_hours_past_the_window_is_in_time_and_a_claimant_counts_from_the_start(
    make_tenant: MakeTenant, runtime: Runtime
) -> None:
    with time_machine.travel(T0, tick=True) as clock:
        t = await enable_utility(await make_tenant(timezone="Europe/London"))
        home = await account(t, feeder="F1")
        elsewhere = await account(t, feeder="F9")  # not on the outage's feeder: never told
        start = T0 + timedelta(days=8)
        on_time = await planned(t, start, hours=8, feeders=["F1"])
        off = await planned(t, start, hours=8, feeders=["F1"])
        assert on_time["told"] == {}
        clock.move_to(start - timedelta(days=7) + timedelta(minutes=5))
        await worker.tick(runtime, t.id)  # the 7-day notice, on time
        assert (await t.post(f"/v1/utility/outages/{off['id']}/cancel")).status_code == 200
        clock.move_to(start + timedelta(hours=8 + 13))
        await _restore(t, on_time, start + timedelta(hours=8 + 12))
        assert await _owed(t, on_time) == {home["id"]: ("0.00", "12.00", "within_standard")}
        claim = await t.post(f"/v1/utility/outages/{on_time['id']}/claims", json={"account_id": elsewhere["id"]})
        assert claim.status_code == 201, claim.text
        assert (claim.json()["amount"], claim.json()["hours"]) == ("95.00", "20.00")  # from the start: 8 + 12 h
        # a cancelled outage is not restored
        assert (await t.post(f"/v1/utility/outages/{off['id']}/restore", json={})).status_code == 409
