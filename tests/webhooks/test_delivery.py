"""From outbox events to signed POSTs on a real receiver: fan-out by type, retries, dead letters, replay, disable,
test events, secret rotation, timeouts and lost leases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.db.engine import tenant_session
from core.outbox.models import OutboxEvent
from core.runtime import Runtime
from core.testing import TenantHandle
from core.webhooks import service
from core.worker import build_registry, run_due, tick, worker_name
from tests.webhooks.helpers import Receiver, add_endpoint, deliveries, drain, emit_events, make_worker


def _later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def _detail(tenant: TenantHandle, delivery_id: str) -> dict:
    response = await tenant.get(f"/v1/webhook-deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    detail: dict = response.json()
    return detail


async def test_each_matching_endpoint_gets_one_signed_request(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    points, tiers, everything, disabled = (receiver.hook(n) for n in ("points", "tiers", "all", "off"))
    await add_endpoint(tenant, receiver, points, ["points.earned", "points.expired"])
    await add_endpoint(tenant, receiver, tiers, ["tier.changed"])
    await add_endpoint(tenant, receiver, everything, ["*"])
    off = await add_endpoint(tenant, receiver, disabled, ["*"])
    assert (await tenant.delete(f"/v1/webhook-endpoints/{off['id']}")).status_code == 200
    member_id = str(uuid.uuid4())
    await emit_events(
        worker,
        tenant,
        ("points.earned", {"member_id": member_id, "points": 120, "note": "café ☕"}),
        ("tier.changed", {"member_id": member_id, "from": "silver", "to": "gold"}),
        ("member.updated", {"member_id": member_id}),
    )
    report = await drain(worker, tenant)
    assert report.failed == 0

    assert [r.json["type"] for r in points.requests] == ["points.earned"]
    assert [r.json["type"] for r in tiers.requests] == ["tier.changed"]
    assert sorted(r.json["type"] for r in everything.requests) == ["member.updated", "points.earned", "tier.changed"]
    assert disabled.requests == []
    assert len(receiver.requests) == 5
    for request in receiver.requests:
        assert request.signature_error is None
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Fealty-Webhooks/1"
        assert request.headers["fealty-event-type"] == request.json["type"]
        assert request.headers["fealty-event-id"] == request.json["id"]
        assert request.headers["fealty-attempt"] == "1"
        assert request.json["tenant_id"] == str(tenant.id)
        assert datetime.fromisoformat(request.json["created_at"]).tzinfo is not None
    earned = points.requests[0]
    assert set(earned.json) == {"id", "type", "created_at", "tenant_id", "data"}
    assert earned.json["data"] == {"member_id": member_id, "points": 120, "note": "café ☕"}
    # The same event reaches two endpoints with the same body and event id, as two deliveries.
    twin = next(r for r in everything.requests if r.json["type"] == "points.earned")
    assert twin.body == earned.body
    assert twin.headers["fealty-delivery-id"] != earned.headers["fealty-delivery-id"]

    log = await deliveries(tenant)
    assert len(log) == 5 and {d["status"] for d in log} == {"succeeded"}
    assert {d["id"] for d in log} == {r.headers["fealty-delivery-id"] for r in receiver.requests}
    assert [d["id"] for d in log] == sorted((d["id"] for d in log), reverse=True)  # newest first
    assert {d["event_type"] for d in await deliveries(tenant, event_type="tier.changed")} == {"tier.changed"}
    assert await deliveries(tenant, created_after=_later(minutes=1).isoformat()) == []
    assert len(await deliveries(tenant, created_before=_later(minutes=1).isoformat())) == 5
    pages, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.get("/v1/webhook-deliveries", params=params)).json()
        pages.append([d["id"] for d in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert [len(p) for p in pages] == [2, 2, 1] and [i for p in pages for i in p] == [d["id"] for d in log]
    # Running the worker again sends nothing twice, and every event is marked dispatched.
    await drain(worker, tenant)
    assert len(receiver.requests) == 5
    async with tenant_session(worker.sessionmaker, tenant.id) as session:
        undispatched = (
            (await session.execute(select(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None)))).scalars().all()
        )
    assert undispatched == []


async def test_dispatch_and_delivery_recur_as_a_safety_net(worker: Runtime) -> None:
    registry = build_registry(worker)
    recurring = {r.kind: r for r in registry.recurring}
    for kind in ("outbox.dispatch", "webhooks.deliver"):
        assert kind in registry.handlers
        assert recurring[kind].per_tenant and recurring[kind].plugin is None
        assert recurring[kind].every_seconds == worker.settings.dispatch_every_seconds


async def test_the_recurring_schedule_alone_delivers(
    backend: str, tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """No wake at all (as after a crash between a commit and its wake): the schedule dispatches and delivers."""
    hook = receiver.hook()
    await add_endpoint(tenant, receiver, hook, ["points.earned"])
    await emit_events(worker, tenant, ("points.earned", {"points": 3}))
    report = await tick(worker, tenant.id)
    assert report.failed == 0 and report.kinds["outbox.dispatch"] >= 1 and report.kinds["webhooks.deliver"] >= 1
    assert [r.json["data"] for r in hook.verified] == [{"points": 3}]


async def test_an_event_dispatched_twice_is_still_delivered_once(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """Say a dispatcher's mark was lost: the unique (event, endpoint) index keeps the second pass from duplicating."""
    hook = receiver.hook()
    await add_endpoint(tenant, receiver, hook, ["points.earned"])
    await emit_events(worker, tenant, ("points.earned", {"points": 4}))
    await drain(worker, tenant)
    async with tenant_session(worker.sessionmaker, tenant.id) as session:
        await session.execute(
            update(OutboxEvent.__table__)
            .where(OutboxEvent.__table__.c.tenant_id == tenant.id)
            .values(dispatched_at=None)
        )
    await drain(worker, tenant)
    assert len(hook.requests) == 1 and len(await deliveries(tenant)) == 1


async def test_events_nobody_subscribed_to_are_only_marked_dispatched(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    hook = receiver.hook()
    await add_endpoint(tenant, receiver, hook, ["redemption.used"])
    await emit_events(worker, tenant, ("points.earned", {"points": 1}), ("member.enrolled", {}))
    await drain(worker, tenant)
    assert hook.requests == [] and await deliveries(tenant) == []
    async with tenant_session(worker.sessionmaker, tenant.id) as session:
        events = (await session.execute(select(OutboxEvent))).scalars().all()
    assert len(events) == 2 and all(e.dispatched_at is not None for e in events)


async def test_a_500_is_retried_after_the_backoff_with_the_same_bytes(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    hook = receiver.hook()
    hook.fail_first = 1
    await add_endpoint(tenant, receiver, hook, ["points.earned"])
    await emit_events(worker, tenant, ("points.earned", {"points": 10}))
    await drain(worker, tenant)
    assert [r.status for r in hook.requests] == [500]
    [delivery] = await deliveries(tenant)
    assert delivery["status"] == "pending" and delivery["attempt_count"] == 1
    assert delivery["last_status_code"] == 500 and delivery["last_error"] == "HTTP 500"
    due = datetime.fromisoformat(delivery["next_attempt_at"])
    assert _later(seconds=60 * 0.8 - 5) <= due <= _later(seconds=60 * 1.2)  # backoff base 60 s, with jitter

    await drain(worker, tenant)  # not due yet: nothing is sent
    assert len(hook.requests) == 1
    with time_machine.travel(due + timedelta(seconds=1), tick=True):
        await drain(worker, tenant)
    assert [r.status for r in hook.requests] == [500, 200]
    first, second = hook.requests
    assert first.body == second.body  # byte-identical on retry
    assert first.headers["fealty-delivery-id"] == second.headers["fealty-delivery-id"] == delivery["id"]
    assert [first.headers["fealty-attempt"], second.headers["fealty-attempt"]] == ["1", "2"]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["id"]  # the signed id
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]  # signed at sending time
    assert all(r.signature_error is None for r in hook.requests)

    detail = await _detail(tenant, delivery["id"])
    assert detail["delivery"]["status"] == "succeeded" and detail["delivery"]["attempt_count"] == 2
    assert detail["delivery"]["next_attempt_at"] is None and detail["delivery"]["finished_at"] is not None
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in detail["attempts"]] == [
        (1, 500, False),
        (2, 200, True),
    ]
    assert detail["attempts"][0]["response_body"] == "boom: told to fail"
    assert detail["attempts"][0]["error"] == "HTTP 500" and detail["attempts"][1]["error"] is None
    assert all(a["duration_ms"] >= 0 for a in detail["attempts"])
    assert detail["payload"] == first.json


async def test_dead_letter_after_max_attempts_then_replay(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    hook = receiver.hook()
    hook.always_fail = True
    await add_endpoint(tenant, receiver, hook, ["reward.redeemed"])
    await emit_events(worker, tenant, ("reward.redeemed", {"reward": "spa"}))
    await drain(worker, tenant)
    for hours in (1, 2, 3, 4):  # well past every backoff (60 s, 120 s, ...): attempts 2 and 3, then nothing
        with time_machine.travel(_later(hours=hours), tick=True):
            await drain(worker, tenant)
    assert len(hook.requests) == 3  # webhook_max_attempts = 3
    [dead] = await deliveries(tenant)
    assert dead["status"] == "dead" and dead["attempt_count"] == 3 and dead["next_attempt_at"] is None
    assert len((await _detail(tenant, dead["id"]))["attempts"]) == 3
    assert [d["id"] for d in await deliveries(tenant, status="dead")] == [dead["id"]]

    hook.always_fail = False
    replayed = await tenant.post(f"/v1/webhook-deliveries/{dead['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    new = replayed.json()
    assert new["id"] != dead["id"] and new["replay_of"] == dead["id"]
    assert new["status"] == "pending" and new["attempt_count"] == 0 and new["event_id"] == dead["event_id"]
    # The API woke the deliverer after its commit: running what is due is enough (no wake from the test).
    await run_due(worker, build_registry(worker), worker_name())
    assert [r.status for r in hook.requests] == [500, 500, 500, 200]
    assert hook.requests[-1].headers["fealty-delivery-id"] == new["id"]
    assert hook.requests[-1].body == hook.requests[0].body
    log = {d["id"]: d for d in await deliveries(tenant)}
    assert log[dead["id"]]["status"] == "dead" and log[new["id"]]["status"] == "succeeded"  # the log keeps both
    again = await tenant.post(f"/v1/webhook-deliveries/{new['id']}/replay")
    assert again.status_code == 202  # a succeeded delivery can be replayed too


async def test_a_waiting_delivery_cannot_be_replayed(tenant: TenantHandle, receiver: Receiver) -> None:
    hook = receiver.hook()
    created = await add_endpoint(tenant, receiver, hook, ["*"])
    pending = (await tenant.post(f"/v1/webhook-endpoints/{created['id']}/test")).json()
    refused = await tenant.post(f"/v1/webhook-deliveries/{pending['id']}/replay")
    assert refused.status_code == 409 and refused.json()["field"] == "delivery_id"
    assert len(await deliveries(tenant)) == 1


async def test_a_disabled_endpoint_gets_nothing_more(tenant: TenantHandle, worker: Runtime, receiver: Receiver) -> None:
    hook, other = receiver.hook(), receiver.hook()
    hook.fail_first = 1
    endpoint = await add_endpoint(tenant, receiver, hook, ["points.earned"])
    await add_endpoint(tenant, receiver, other, ["points.earned"])
    await emit_events(worker, tenant, ("points.earned", {"points": 1}))
    await drain(worker, tenant)
    assert len(hook.requests) == 1  # failed once; a retry is waiting

    disabled = await tenant.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_at"] is not None
    [cancelled] = await deliveries(tenant, endpoint_id=endpoint["id"])
    assert cancelled["status"] == "cancelled" and cancelled["last_error"] == "endpoint disabled"
    await emit_events(worker, tenant, ("points.earned", {"points": 2}))
    with time_machine.travel(_later(hours=2), tick=True):
        await drain(worker, tenant)
    assert len(hook.requests) == 1  # neither the retry nor the new event
    assert len(other.requests) == 2  # the other endpoint is unaffected
    # The endpoint and its log stay; replaying needs it enabled again.
    assert (await tenant.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()["status"] == "disabled"
    refused = await tenant.post(f"/v1/webhook-deliveries/{cancelled['id']}/replay")
    assert refused.status_code == 409
    assert (await tenant.delete(f"/v1/webhook-endpoints/{endpoint['id']}")).status_code == 200  # harmless twice
    enabled = await tenant.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"status": "active"})
    assert enabled.json()["status"] == "active" and enabled.json()["disabled_at"] is None
    assert (await tenant.post(f"/v1/webhook-deliveries/{cancelled['id']}/replay")).status_code == 202
    await drain(worker, tenant)
    assert [r.status for r in hook.requests] == [500, 200]


async def test_a_delivery_waiting_when_its_endpoint_was_disabled_is_cancelled_by_the_worker(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """The endpoint is disabled while its delivery is in flight: the worker cancels it instead of retrying."""
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    async with tenant_session(worker.sessionmaker, tenant.id) as session:  # claimed, then the worker "dies"
        claim = await service.claim_due(
            session, tenant.id, now=datetime.now(UTC), limit=10, lease=timedelta(seconds=30), max_attempts=3
        )
    assert len(claim.claimed) == 1
    await tenant.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    with time_machine.travel(_later(minutes=5), tick=True):
        await drain(worker, tenant)
    assert hook.requests == []
    [delivery] = await deliveries(tenant)
    assert delivery["status"] == "cancelled"


async def test_a_test_event_goes_to_that_endpoint_only(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    target, everything = receiver.hook(), receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, target, ["tier.changed"])
    await add_endpoint(tenant, receiver, everything, ["*"])
    sent = await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    assert sent.status_code == 202, sent.text
    assert sent.json()["event_type"] == "webhook.test" and sent.json()["status"] == "pending"
    await run_due(worker, build_registry(worker), worker_name())  # woken by the API after its commit
    await drain(worker, tenant)  # and the dispatcher does not send it anywhere else
    assert [r.json["type"] for r in target.requests] == ["webhook.test"]
    assert target.requests[0].json["data"]["endpoint_id"] == endpoint["id"]
    assert target.verified == target.requests
    assert everything.requests == []
    disabled = await tenant.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert disabled.status_code == 200
    refused = await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    assert refused.status_code == 409


async def test_rotating_the_secret(tenant: TenantHandle, worker: Runtime, receiver: Receiver) -> None:
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    old = hook.secret
    assert old is not None

    rotated = await tenant.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"keep_previous_hours": 1}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["secret_hint"] == f"whsec_…{new[-4:]}"
    assert rotated.json()["previous_secret_expires_at"] is not None
    hook.secret = new
    await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    await drain(worker, tenant)
    during = hook.requests[-1]
    assert during.signature_error is None
    Webhook(old).verify(during.body, during.headers)  # both secrets sign meanwhile

    assert (await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")).status_code == 200
    # No body: the previous secret is retired at once (the right call when a secret has leaked).
    latest = (await tenant.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert latest["previous_secret_expires_at"] is None and latest["secret_hint"] != rotated.json()["secret_hint"]
    hook.secret = new  # the receiver still has the superseded secret: verification must now fail
    await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    await drain(worker, tenant)
    after = hook.requests[-1]
    assert after.signature_error is not None and after.status == 400
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)  # a retired secret no longer verifies


async def test_timeouts_redirects_and_long_answers_are_logged(
    tenant: TenantHandle, database_url: str, receiver: Receiver
) -> None:
    worker = make_worker(database_url, webhook_timeout_seconds=0.3)
    try:
        slow, moved, chatty = receiver.hook(), receiver.hook(), receiver.hook()
        slow.delay = 1.0
        moved.answer = (302, {"Location": "https://elsewhere.example/hook"}, b"")
        chatty.answer = (503, {"Retry-After": "1800"}, b"x" * 10_000)
        for hook in (slow, moved, chatty):
            await add_endpoint(tenant, receiver, hook, ["points.earned"])
        await emit_events(worker, tenant, ("points.earned", {"points": 5}))
        await drain(worker, tenant)
    finally:
        await worker.close()
    by_endpoint = {}
    for delivery in await deliveries(tenant):
        detail = await _detail(tenant, delivery["id"])
        by_endpoint[detail["delivery"]["endpoint_id"]] = detail
    endpoints = {e["url"]: e["id"] for e in (await tenant.get("/v1/webhook-endpoints")).json()["items"]}
    timed_out = by_endpoint[endpoints[receiver.url(slow)]]
    assert timed_out["delivery"]["status"] == "pending"
    assert timed_out["attempts"][0]["status_code"] is None
    assert timed_out["attempts"][0]["error"] == "timed out after 0.3 s"
    redirected = by_endpoint[endpoints[receiver.url(moved)]]["attempts"][0]
    assert redirected["status_code"] == 302 and "redirects are not followed" in redirected["error"]
    assert len(moved.requests) == 1  # and nothing was sent to elsewhere.example
    busy = by_endpoint[endpoints[receiver.url(chatty)]]
    assert busy["attempts"][0]["status_code"] == 503 and busy["attempts"][0]["response_body"] == "x" * 2048
    waited = datetime.fromisoformat(busy["delivery"]["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(minutes=29) < waited <= timedelta(minutes=30)  # Retry-After beat the 60 s backoff


async def test_a_delivery_whose_worker_died_mid_post_is_sent_again_with_the_same_id(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """At least once: the lease of a claimed delivery runs out, so another worker sends it (receivers dedupe on
    Fealty-Delivery-Id)."""
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    queued = (await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")).json()
    async with tenant_session(worker.sessionmaker, tenant.id) as session:
        claim = await service.claim_due(
            session, tenant.id, now=datetime.now(UTC), limit=10, lease=timedelta(minutes=2), max_attempts=3
        )
    assert [c.id for c in claim.claimed] == [uuid.UUID(queued["id"])]
    sending = (await deliveries(tenant))[0]
    assert sending["status"] == "sending" and sending["attempt_count"] == 1

    await drain(worker, tenant)  # the lease still runs: nobody else takes it
    assert hook.requests == []
    with time_machine.travel(_later(minutes=3), tick=True):
        await drain(worker, tenant)
    assert len(hook.requests) == 1
    assert hook.requests[0].headers["fealty-delivery-id"] == queued["id"]
    assert hook.requests[0].headers["fealty-attempt"] == "2"
    detail = await _detail(tenant, queued["id"])
    assert detail["delivery"]["status"] == "succeeded" and detail["delivery"]["attempt_count"] == 2
    assert [a["attempt"] for a in detail["attempts"]] == [2]  # the lost attempt left no record of an answer


async def test_a_lost_last_attempt_is_a_dead_letter_not_one_more_try(
    tenant: TenantHandle, database_url: str, receiver: Receiver
) -> None:
    worker = make_worker(database_url, webhook_max_attempts=1)
    try:
        hook = receiver.hook()
        endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
        await tenant.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
        async with tenant_session(worker.sessionmaker, tenant.id) as session:
            await service.claim_due(
                session, tenant.id, now=datetime.now(UTC), limit=10, lease=timedelta(minutes=2), max_attempts=1
            )
        with time_machine.travel(_later(minutes=3), tick=True):
            await drain(worker, tenant)
    finally:
        await worker.close()
    assert hook.requests == []
    [delivery] = await deliveries(tenant)
    assert delivery["status"] == "dead" and delivery["attempt_count"] == 1
    assert "worker stopped" in delivery["last_error"]


async def test_domain_events_from_the_api_reach_the_tenants_endpoint(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """End to end: an event through POST /v1/events and an admin adjustment become signed deliveries."""
    hook = receiver.hook("domain")
    await add_endpoint(tenant, receiver, hook, ["points.earned", "points.adjusted", "member.enrolled", "tier.changed"])
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "2"})
    member = await tenant.enrol("hooked")
    await tenant.credit(member["id"], 5, "goodwill")
    response = await tenant.post(
        "/v1/events",
        json={
            "type": "purchase",
            "event_id": "hook-1",
            "member": {"external_id": "hooked"},
            "occurred_at": datetime.now(UTC).isoformat(),
            "amount": "21.00",
        },
    )
    assert response.status_code == 201
    assert (await drain(worker, tenant)).failed == 0
    received = {r.json["type"]: r.json["data"] for r in hook.verified}
    assert set(received) == {"member.enrolled", "points.adjusted", "points.earned"}
    assert received["points.earned"]["points"] == 42 and received["points.earned"]["event_id"] == "hook-1"
    assert received["points.adjusted"]["points"] == 5


async def test_a_member_enrolled_by_their_first_event_is_announced_like_one_enrolled_through_the_api(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    """Auto-enrolment takes the same use case as POST /v1/members: the subscriber hears ``member.enrolled`` as well as
    the event's points, and the member starts on the entry tier."""
    hook = receiver.hook("enrolments")
    await add_endpoint(tenant, receiver, hook, ["member.enrolled", "points.earned"])
    assert (await tenant.patch("/v1/program", json={"auto_enrol": True})).status_code == 200
    await tenant.post("/v1/earning-rules", json={"name": "base", "kind": "per_amount", "points": "1"})
    entry = await tenant.post("/v1/tiers", json={"code": "member", "name": "Member", "rank": 0})
    assert entry.status_code == 201, entry.text
    response = await tenant.post(
        "/v1/events",
        json={
            "type": "purchase",
            "event_id": "first-visit",
            "member": {"external_id": "walk-in"},
            "occurred_at": datetime.now(UTC).isoformat(),
            "amount": "10.00",
        },
    )
    assert response.status_code == 201, response.text
    member_id = response.json()["member_id"]

    assert (await drain(worker, tenant)).failed == 0
    received = {r.json["type"]: r.json["data"] for r in hook.verified}
    assert sorted(received) == ["member.enrolled", "points.earned"]
    assert received["member.enrolled"] == {"member_id": member_id, "external_id": "walk-in"}
    member = (await tenant.get(f"/v1/members/{member_id}")).json()
    assert member["tier"] == "member"
