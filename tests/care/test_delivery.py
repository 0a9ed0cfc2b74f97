"""Delivery of care messages through SES and SNS (a real moto server) and the tenant's webhooks: protection at
delivery (quiet hours across a DST change, consent), at least once with the same reference after a crash, throttling
retried with backoff, permanent failures recorded, and two workers never sending one message twice."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import phonenumbers
import pytest
import time_machine
from sqlalchemy import select

from core.adapters.aws import AwsConfig, AwsMessaging
from core.care import delivery
from core.care.service import request_care
from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import TenantHandle, create_tenant
from tests.care.conftest import Deliver, Occasions, messages, rule, set_sender, template
from tests.moto_server import MotoServer

NOON = datetime(2031, 6, 10, 12, tzinfo=UTC)


def _addr(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def _phone() -> str:
    """A random valid UK mobile number (E.164)."""
    while True:
        number = f"+4479{uuid.uuid4().int % 100000000:08d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


@pytest.fixture
def at_noon() -> Iterator[None]:
    with time_machine.travel(NOON, tick=True):
        yield


async def test_marketing_sms_goes_by_sns_with_the_opt_out_line_and_without_consent_is_suppressed(
    at_noon: None, care_tenant: TenantHandle, find_occasions: Occasions, deliver: Deliver, moto_server: MotoServer
) -> None:
    created = await template(care_tenant, "welcome", en={"body": "Welcome {{ member.first_name }}, 2x points today!"})
    await rule(care_tenant, "welcome", created["id"], channels=["sms", "email"], purpose="marketing")
    phone, other = _phone(), _phone()
    granted = [{"channel": "sms", "purpose": "marketing", "granted": True}]
    yes = await care_tenant.enrol(name="Bo Chen", phone=phone, consents=granted)
    no = await care_tenant.enrol(name="Di Wu", phone=other, email=_addr("di"))
    await find_occasions(care_tenant)
    suppressed = await messages(care_tenant, member_id=no["id"])
    # No consent on SMS nor on email: suppressed with the reason, on the first channel.
    assert [(m["state"], m["reason"], m["channel"]) for m in suppressed] == [("suppressed", "no_consent", "sms")]
    assert await deliver(care_tenant) == {"sent": 1}
    [sms] = moto_server.sms(to=phone)
    assert sms.message == "Welcome Bo, 2x points today! Reply STOP to opt out."
    [sent] = await messages(care_tenant, member_id=yes["id"])
    assert sent["state"] == "sent" and sent["segments"] == 1 and sent["address"] == phone[:3] + "*" * 7 + phone[-3:]
    assert moto_server.sms(to=other) == []


async def test_a_message_in_quiet_hours_is_deferred_to_8_local_across_the_dst_change(
    care_tenant: TenantHandle, find_occasions: Occasions, deliver: Deliver, moto_server: MotoServer
) -> None:
    # Saturday 29 March 2031, 22:30 in Paris (CET, UTC+1); clocks go forward that night: 08:00 is then 06:00 UTC.
    evening = datetime(2031, 3, 29, 21, 30, tzinfo=UTC)
    address = _addr("paris")
    with time_machine.travel(evening, tick=False):
        created = await template(care_tenant, "welcome", en={"subject": "Bienvenue", "body": "Hello"})
        await rule(care_tenant, "welcome", created["id"], category="notice")  # greetings wait for 09:00
        member = await care_tenant.enrol(email=address, timezone="Europe/Paris")
        await find_occasions(care_tenant, evening)
    [deferred] = await messages(care_tenant, member_id=member["id"])
    assert (deferred["state"], deferred["reason"]) == ("deferred", "quiet_hours")
    assert deferred["due_at"] == "2031-03-30T06:00:00Z"
    with time_machine.travel(datetime(2031, 3, 30, 5, 59, tzinfo=UTC), tick=False):
        assert await deliver(care_tenant) == {}
    with time_machine.travel(datetime(2031, 3, 30, 6, 0, 5, tzinfo=UTC), tick=False):
        assert await deliver(care_tenant) == {"sent": 1}
    [sent] = await messages(care_tenant, member_id=member["id"])
    assert sent["state"] == "sent" and sent["sent_at"].startswith("2031-03-30T06:00")
    assert len(moto_server.emails(to=address)) == 1


async def test_a_worker_killed_after_the_send_sends_again_with_the_same_reference(
    at_noon: None, care_tenant: TenantHandle, find_occasions: Occasions, care_runtime: Runtime, moto_server: MotoServer
) -> None:
    created = await template(care_tenant, "welcome", en={"subject": "Hi", "body": "Hello"})
    await rule(care_tenant, "welcome", created["id"])
    address = _addr("crash")
    member = await care_tenant.enrol(email=address)
    await find_occasions(care_tenant)
    now = datetime.now(UTC)
    # The first worker claims, protects and sends, then dies before recording anything.
    async with tenant_session(care_runtime.sessionmaker, care_tenant.id) as session:
        claimed = await delivery.claim_due(session, care_tenant.id, now, limit=10, lease=timedelta(minutes=2))
    async with tenant_session(care_runtime.sessionmaker, care_tenant.id) as session:
        to_send, sender = await delivery.protect(session, care_tenant.id, claimed, now)
    [outcome] = await delivery.send_all(delivery.messaging(care_runtime), care_tenant.id, to_send, sender, rate=0)
    assert outcome.error is None
    # While its lease holds, nobody else takes it.
    assert await delivery.deliver_round(care_runtime, care_tenant.id, now + timedelta(minutes=1)) == {}
    after_lease = now + timedelta(minutes=3)
    with time_machine.travel(after_lease, tick=False):
        assert await delivery.deliver_round(care_runtime, care_tenant.id, after_lease) == {"sent": 1}
    [message] = await messages(care_tenant, member_id=member["id"])
    copies = moto_server.emails(to=address)
    assert len(copies) == 2  # at least once: the copy the dead worker sent, and the retry
    assert {c.headers["X-Fealty-Reference"] for c in copies} == {message["reference"]}
    assert message["state"] == "sent" and message["attempts"] == 1
    assert message["provider_message_id"] == copies[1].id


class Throttling:
    """A loopback proxy in front of moto that answers the first ``n`` SES sends as SES does when the sending rate is
    exceeded (HTTP 400, ``Throttling``), then passes everything through."""

    def __init__(self, upstream: str, n: int) -> None:
        self.upstream, self.left, self.seen = upstream, n, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if b"Action=SendRawEmail" in body:
                    proxy.seen += 1
                    if proxy.left > 0:
                        proxy.left -= 1
                        error = (
                            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                            b"<Message>Maximum sending rate exceeded.</Message></Error><RequestId>r</RequestId>"
                            b"</ErrorResponse>"
                        )
                        self.send_response(400)
                        self.send_header("Content-Type", "text/xml")
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_ses_throttling_is_retried_with_backoff(
    at_noon: None, care_tenant: TenantHandle, find_occasions: Occasions, care_runtime: Runtime, moto_server: MotoServer
) -> None:
    created = await template(care_tenant, "welcome", en={"subject": "Hi", "body": "Hello"})
    await rule(care_tenant, "welcome", created["id"])
    address = _addr("throttled")
    member = await care_tenant.enrol(email=address)
    await find_occasions(care_tenant)
    proxy = Throttling(moto_server.url, n=1)
    throttled = AwsMessaging(
        AwsConfig(
            endpoint_url=proxy.url, region=moto_server.region, access_key_id="testing", secret_access_key="testing"
        )
    )
    kept = care_runtime.extras[delivery.MESSAGING_KEY]
    care_runtime.extras[delivery.MESSAGING_KEY] = throttled
    try:
        now = datetime.now(UTC)
        assert await delivery.deliver_round(care_runtime, care_tenant.id, now) == {"queued": 1}
        [retry] = await messages(care_tenant, member_id=member["id"])
        assert (retry["state"], retry["reason"], retry["attempts"]) == ("queued", "Throttling", 1)
        due = datetime.fromisoformat(retry["due_at"])
        assert due > now + timedelta(seconds=20)
        assert await delivery.deliver_round(care_runtime, care_tenant.id, now + timedelta(seconds=5)) == {}
        with time_machine.travel(due + timedelta(seconds=1), tick=False):
            assert await delivery.deliver_round(care_runtime, care_tenant.id, due + timedelta(seconds=1)) == {"sent": 1}
    finally:
        care_runtime.extras[delivery.MESSAGING_KEY] = kept
        await throttled.close()
        proxy.close()
    [sent] = await messages(care_tenant, member_id=member["id"])
    assert (sent["state"], sent["attempts"], sent["reason"]) == ("sent", 2, None)
    assert proxy.seen == 2 and len(moto_server.emails(to=address)) == 1


async def test_a_permanent_refusal_is_recorded_failed(
    at_noon: None, tenant: TenantHandle, care_runtime: Runtime, find_occasions: Occasions, deliver: Deliver
) -> None:
    # This tenant's sender domain was never verified: SES refuses every message for good.
    async with tenant_session(care_runtime.sessionmaker, tenant.id) as session:
        from core.care.protection_models import CareSettings

        session.add(CareSettings(tenant_id=tenant.id, email_from="news@unverified.invalid", protection={}))
    created = await template(tenant, "welcome", en={"subject": "Hi", "body": "Hello"})
    await rule(tenant, "welcome", created["id"])
    member = await tenant.enrol(email=_addr("refused"))
    await find_occasions(tenant)
    assert await deliver(tenant) == {"failed": 1}
    [failed] = await messages(tenant, member_id=member["id"])
    assert failed["state"] == "failed" and failed["reason"] == "MessageRejected" and failed["attempts"] == 1
    assert (await tenant.get("/v1/messages", params={"state": "failed"})).json()["items"][0]["id"] == failed["id"]


async def test_the_providers_delivery_and_bounce_notices_mark_the_sent_message(
    at_noon: None, care_tenant: TenantHandle, make_tenant: Any, find_occasions: Occasions, deliver: Deliver
) -> None:
    created = await template(care_tenant, "welcome", en={"subject": "Hi", "body": "Hello"})
    await rule(care_tenant, "welcome", created["id"])
    arrives, bounces = _addr("arrives"), _addr("bounces")
    first, second = await care_tenant.enrol(email=arrives), await care_tenant.enrol(email=bounces)
    await find_occasions(care_tenant)
    assert await deliver(care_tenant) == {"sent": 2}
    [delivered] = await messages(care_tenant, member_id=first["id"])
    [bounced] = await messages(care_tenant, member_id=second["id"])

    def ses(kind: str, address: str, message_id: str) -> dict[str, Any]:
        detail = (
            {"delivery": {"recipients": [address], "timestamp": "2031-06-10T12:00:05.000Z"}}
            if kind == "Delivery"
            else {"bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}]}}
        )
        return {"notificationType": kind, "mail": {"messageId": message_id, "destination": [address]}, **detail}

    # Another tenant relaying a notice about this tenant's message changes nothing of it.
    other = await make_tenant()
    stray = await other.post("/v1/care/feedback", json=ses("Delivery", arrives, delivered["provider_message_id"]))
    assert stray.status_code == 200 and stray.json()["message_state"] is None
    assert (await messages(care_tenant, member_id=first["id"]))[0]["state"] == "sent"

    for _ in range(2):  # a notice SNS repeats is answered the same
        notice = await care_tenant.post(
            "/v1/care/feedback", json=ses("Delivery", arrives, delivered["provider_message_id"])
        )
        assert notice.status_code == 200 and notice.json()["message_state"] == "delivered"
    bounce = await care_tenant.post("/v1/care/feedback", json=ses("Bounce", bounces, bounced["provider_message_id"]))
    assert bounce.json()["message_state"] == "failed"
    [now_delivered] = await messages(care_tenant, member_id=first["id"])
    [now_failed] = await messages(care_tenant, member_id=second["id"])
    assert (now_delivered["state"], now_delivered["reason"]) == ("delivered", None)
    assert (now_failed["state"], now_failed["reason"]) == ("failed", "hard_bounce")
    listed = (await care_tenant.get("/v1/messages", params={"state": "delivered"})).json()["items"]
    assert [m["id"] for m in listed] == [delivered["id"]]
    # An unknown id (a message sent before Fealty, or already failed) marks nothing.
    unknown = await care_tenant.post("/v1/care/feedback", json=ses("Delivery", arrives, "0100-never-sent"))
    assert unknown.json()["message_state"] is None


async def test_the_webhook_channel_goes_through_the_outbox_once(
    at_noon: None, care_tenant: TenantHandle, care_runtime: Runtime, deliver: Deliver
) -> None:
    created = await template(care_tenant, None, en={"subject": "Your stay", "body": "Welcome to {{ program.name }}"})
    welcome = await rule(care_tenant, "welcome", created["id"], channels=["webhook"])
    member = await care_tenant.enrol()
    from core.care.occasions import evaluate

    await evaluate(care_runtime, care_tenant.id, datetime.now(UTC))
    assert await deliver(care_tenant) == {"protected": 1}
    [sent] = await messages(care_tenant, member_id=member["id"])
    assert (sent["state"], sent["channel"], sent["rule_id"]) == ("sent", "webhook", welcome["id"])
    async with tenant_session(care_runtime.sessionmaker, care_tenant.id) as session:
        events = (await session.execute(select(OutboxEvent).where(OutboxEvent.type == "care.message"))).scalars().all()
    assert len(events) == 1 and events[0].payload["reference"] == sent["reference"]
    assert events[0].payload["subject"] == "Your stay"


async def test_a_duplicate_request_makes_one_message(
    at_noon: None, care_tenant: TenantHandle, care_runtime: Runtime, deliver: Deliver, moto_server: MotoServer
) -> None:
    created = await template(care_tenant, None, en={"subject": "We miss you", "body": "Come back, {{ member.name }}"})
    await rule(care_tenant, "lapsing", created["id"], purpose="service", category="notice")
    address = _addr("dup")
    member = await care_tenant.enrol(name="Eve", email=address)
    for _ in range(2):
        async with tenant_session(care_runtime.sessionmaker, care_tenant.id) as session:
            await request_care(
                session,
                tenant_id=care_tenant.id,
                member_id=uuid.UUID(member["id"]),
                kind="lapsing",
                purpose="marketing",
                source="crm",
                dedupe_key=f"lapsing:{member['id']}:2031-05-01",
                payload={"days_inactive": 40},
            )
    [queued] = await messages(care_tenant, member_id=member["id"])
    assert queued["trigger"] == "lapsing" and queued["occasion_key"] == f"lapsing:{member['id']}:2031-05-01"
    assert await deliver(care_tenant) == {"sent": 1}
    [mail] = moto_server.emails(to=address)
    assert mail.subject == "We miss you" and mail.body().strip() == "Come back, Eve"


@pytest.mark.postgres_only
async def test_two_workers_delivering_at_once_send_each_message_once(pg_client: Any, moto_server: MotoServer) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    if delivery.MESSAGING_KEY not in runtime.extras:
        moto_server.verify_domain("care.fealty.test")
        runtime.extras[delivery.MESSAGING_KEY] = AwsMessaging(
            AwsConfig(
                endpoint_url=moto_server.url,
                region=moto_server.region,
                access_key_id="testing",
                secret_access_key="testing",
            )
        )
    tenant = await create_tenant(pg_client)
    await set_sender(runtime, tenant.id)
    created = await template(tenant, "welcome", en={"subject": "Hi", "body": "Hello"})
    await rule(tenant, "welcome", created["id"])
    tag = uuid.uuid4().hex[:8]
    from core.care.occasions import evaluate

    with time_machine.travel(NOON, tick=True):
        for i in range(30):
            await tenant.enrol(email=f"race-{tag}-{i}@example.com")
        await evaluate(runtime, tenant.id, datetime.now(UTC))
        now = datetime.now(UTC)
        await asyncio.gather(*(delivery.deliver_round(runtime, tenant.id, now) for _ in range(4)))
        while await delivery.deliver_round(runtime, tenant.id, now):
            pass
    sent = [m for m in moto_server.emails() if any(f"race-{tag}-" in d for d in m.destinations)]
    assert len(sent) == 30 and len({m.destinations[0] for m in sent}) == 30
    listed = (await tenant.get("/v1/messages", params={"limit": 100})).json()["items"]
    assert {m["state"] for m in listed} == {"sent"} and len(listed) == 30
