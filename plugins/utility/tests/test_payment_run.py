"""A big outage's compensation is paid in one run of the worker's job, a page per transaction: a page paid is kept
when a later one fails, and the next run pays only what is left (each compensation once, through its key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core import worker
from core.runtime import Runtime
from core.testing import MakeTenant, TenantHandle
from plugins.utility import outages as ops
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages, outage

JOB = "plugin.utility.outages"
#: 11:00 in London: no quiet hours in the way of the service notices.
NOON = datetime(2031, 6, 10, 10, tzinfo=UTC)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "PAY_PAGE", 3)  # 7 accounts: pages of 3, 3 and 1
    monkeypatch.setattr(ops, "INLINE_PAYMENTS", 0)  # nothing paid by the restoring request: all left to the worker


async def _restored(t: TenantHandle, hours: int) -> tuple[list[dict], dict]:
    await care_rules(t, "utility.compensation")
    made = [await account(t) for _ in range(7)]
    created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=hours)).isoformat(), etr=None)
    restored = await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})
    assert restored.status_code == 200, restored.text
    return made, created


async def _report(t: TenantHandle, outage_id: str) -> dict:
    response = await t.get(f"/v1/utility/outages/{outage_id}/compensation")
    assert response.status_code == 200, response.text
    report: dict = response.json()
    return report


@pytest.mark.usefixtures("small_pages")
async def test_every_payment_is_made_in_one_run_of_the_job(make_tenant: MakeTenant, runtime: Runtime) -> None:
    with time_machine.travel(NOON, tick=True):
        t = await enable_utility(await make_tenant(), compensation_payment="points")
        made, created = await _restored(t, hours=13)  # 13 h: 95 each (GBP), 9,500 points
        assert (await _report(t, created["id"]))["paid_amount"] == "0.00"
        ran = await worker.tick(runtime, t.id)
        assert ran.kinds[JOB] == 1 and ran.failed == 0
        report = await _report(t, created["id"])
        assert (report["accounts"], report["amount"], report["paid_amount"]) == (7, "665.00", "665.00")
        assert all(i["status"] == "paid" and i["points"] == 9500 for i in report["items"])
        for a in made:
            assert (await t.balance(a["member_id"]))["available"] == 9500
        assert len(await messages(t, trigger="utility.compensation")) == 7
        # run again: nothing is paid twice
        await worker.tick(runtime, t.id)
        for a in made:
            assert (await t.balance(a["member_id"]))["available"] == 9500
        assert len(await messages(t, trigger="utility.compensation")) == 7


@pytest.mark.usefixtures("small_pages")
async def test_a_failing_page_keeps_the_pages_before_it_and_the_next_run_pays_the_rest(
    make_tenant: MakeTenant, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls, down = ops._tell_compensation, [], [True]

    async def fails_from_the_second_page(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) >= 2 and down[0]:  # down until the test says otherwise (a retry in the same tick fails too)
            raise RuntimeError("the care engine is down")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ops, "_tell_compensation", fails_from_the_second_page)
    with time_machine.travel(NOON, tick=True):
        t = await enable_utility(await make_tenant())  # bill credits
        made, created = await _restored(t, hours=25)  # 25 h: 95 + 45 = 140 each
        first = await worker.tick(runtime, t.id)
        assert first.failed >= 1
        report = await _report(t, created["id"])
        assert (report["amount"], report["paid_amount"]) == ("980.00", "420.00")  # the first page of 3 is kept
        assert sorted(i["status"] for i in report["items"]) == ["due"] * 4 + ["paid"] * 3
        assert len(await messages(t, trigger="utility.compensation")) == 3
        down[0] = False
        second = await worker.tick(runtime, t.id)
        assert second.failed == 0
        report = await _report(t, created["id"])
        assert report["paid_amount"] == "980.00" and {i["status"] for i in report["items"]} == {"paid"}
        assert len(await messages(t, trigger="utility.compensation")) == 7
        assert {m["member_id"] for m in await messages(t, trigger="utility.compensation")} == {
            a["member_id"] for a in made
        }
