"""The hotel's pre-arrival welcome, end to end: a top-tier booking raises ``hotel.pre_arrival`` in the event's own
transaction, the tenant's care rule turns it into an email in the guest's language, and SES (moto) receives it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import time_machine

from core.care.delivery import deliver_round
from core.runtime import Runtime
from core.testing import TenantHandle
from plugins.hotel.tests.conftest import send, stay, today
from plugins.hotel.tests.test_perks import make_tiers, tiered
from tests.care.conftest import messages, rule, set_sender, template, use_moto
from tests.moto_server import MotoServer

TEXTS = {
    "en": {
        "subject": "Your stay at {{ property }} on {{ check_in|date }}",
        "body": "Dear {{ member.name }}, {{ welcome_gift }} awaits; late checkout at {{ perks.late_checkout }}.",
    },
    "zh-CN": {
        "subject": "{{ member.name }}，期待您{{ check_in|date }}入住{{ property }}",
        "body": "为您准备了{{ welcome_gift }}，可延迟退房至{{ perks.late_checkout }}。",
    },
}


async def test_pre_arrival_email_in_the_guests_language(
    hotel_tenant: TenantHandle, runtime: Runtime, moto_server: MotoServer
) -> None:
    t = hotel_tenant
    use_moto(runtime, moto_server)
    await set_sender(runtime, t.id)
    with time_machine.travel(datetime(2031, 6, 10, 9, tzinfo=UTC), tick=True):
        await make_tiers(t)
        created = await template(t, "hotel.pre_arrival", **TEXTS)
        await rule(t, "hotel.pre_arrival", created["id"], channels=["email"])
        address = f"guest-{uuid.uuid4().hex[:8]}@example.com"
        vip = await tiered(
            t,
            "g-zh",
            "platinum",
            name="王芳",
            email=address,
            locale="zh-CN",
            attributes={"preferences": {"snack": "macarons"}},
        )
        check_in = today() + timedelta(days=2)
        await send(t, stay("g-zh", reservation="R-ZH", status="booked", check_in=check_in, nights=2, folio=[]))
        [queued] = await messages(t, member_id=vip["id"])
        assert (queued["trigger"], queued["locale"], queued["state"]) == ("hotel.pre_arrival", "zh-CN", "queued")
        assert await deliver_round(runtime, t.id) == {"sent": 1}
    [mail] = moto_server.emails(to=address)
    assert mail.subject == "王芳，期待您2031年6月12日入住" + mail.subject.split("入住", 1)[1]
    assert "macarons with seasonal fruit" in mail.body() and "16:00" in mail.body()
    [sent] = await messages(t, member_id=vip["id"])
    assert sent["state"] == "sent" and mail.headers["X-Fealty-Reference"] == sent["reference"]
