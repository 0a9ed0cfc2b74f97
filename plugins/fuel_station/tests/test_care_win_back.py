"""The fuel network's win-back offer, end to end: the plugin's daily job raises ``fuel.win_back`` (request_care), the
tenant's care rule turns it into a marketing SMS for members who agreed to one, and SNS (moto) receives it once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import time_machine

from core.runtime import Runtime
from core.worker import tick
from plugins.fuel_station.tests.conftest import Fuel, fill_up
from plugins.fuel_station.tests.test_retention_win_back import T, send_at
from tests.care.conftest import messages, rule, set_sender, template, use_moto
from tests.moto_server import MotoServer


async def test_win_back_by_sms_once_and_only_with_consent(
    fuel: Fuel, runtime: Runtime, moto_server: MotoServer
) -> None:
    use_moto(runtime, moto_server)
    phone, other = (f"+86138{uuid.uuid4().int % 10**8:08d}" for _ in range(2))
    await set_sender(runtime, fuel.t.id)
    await fuel.settings(win_back_after_days=60)
    texts = {
        "en": {
            "body": "We miss you! 20 cents off a litre this week.",
            "sms": "We miss you: 20c off a litre this week.",
        },
        "zh-CN": {"body": "好久不见！本周每升优惠0.2元。"},
    }
    created = await template(fuel.t, "fuel.win_back", **texts)
    await rule(fuel.t, "fuel.win_back", created["id"], channels=["sms"])
    granted = [{"channel": "sms", "purpose": "marketing", "granted": True}]
    yes = await fuel.t.enrol("wb-yes", phone=phone, locale="zh-CN", consents=granted)
    no = await fuel.t.enrol("wb-no", phone=other)
    await send_at(fuel, 200, fill_up("wb-yes"))
    await send_at(fuel, 200, fill_up("wb-no"))
    for days_before in (139, 138):
        with time_machine.travel(T - timedelta(days=days_before), tick=False):
            await tick(runtime, fuel.t.id)
    [sent] = await messages(fuel.t, member_id=yes["id"])
    assert (sent["trigger"], sent["channel"], sent["state"], sent["locale"]) == (
        "fuel.win_back",
        "sms",
        "sent",
        "zh-CN",
    )
    [received] = moto_server.sms(to=phone)
    assert received.message == "好久不见！本周每升优惠0.2元。 回复TD退订"
    [held] = await messages(fuel.t, member_id=no["id"])
    assert (held["state"], held["reason"]) == ("suppressed", "no_consent")
    assert moto_server.sms(to=other) == []
