"""Stripe's webhooks: signature verified (else 400, nothing done), each event applied once, any order, unknown types
acknowledged. Events are localstripe's own, delivered by the test (signed with the endpoint secret, like Stripe)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from core.billing.models import StripeEvent
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.billing.support import (
    LocalStripe,
    billing,
    customer_of,
    deliver,
    make_plan,
    make_tenant,
    sign,
    subscribe,
)


async def _recorded(runtime: Runtime, event_id: str) -> int:
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        return int((await session.execute(select(func.count()).where(StripeEvent.id == event_id))).scalar_one())


async def _subscribed(client: AppClient) -> tuple[TenantHandle, str, str]:
    plan = await make_plan(client)
    tenant = await make_tenant(client)
    state = await subscribe(tenant, plan)
    return tenant, await customer_of(client, tenant), state["subscription"]["id"]


def _event(type_: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    """An event as Stripe shapes it (localstripe's events are shaped the same)."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": type_,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
    }


async def test_a_bad_or_missing_signature_is_400_and_does_nothing(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    tenant, _, subscription = await _subscribed(billing_client)
    obj = localstripe.get(f"/v1/subscriptions/{subscription}") | {"status": "canceled"}
    event = _event("customer.subscription.deleted", obj)
    payload = json.dumps(event).encode()
    url = "/v1/billing/stripe/webhook"
    forged = [
        {},  # no signature at all
        {"stripe-signature": sign(payload, "whsec_someone_else")},  # signed with another secret
        {"stripe-signature": sign(payload + b" ")},  # the body was changed after signing
        {"stripe-signature": sign(payload, timestamp=int(time.time()) - 3600)},  # replayed an hour later
        {"stripe-signature": "t=1,v1=deadbeef"},
        {"stripe-signature": "garbage"},
    ]
    for headers in forged:
        response = await billing_client.post(
            url, content=payload, headers={"content-type": "application/json"} | headers
        )
        assert response.status_code == 400, (headers, response.text)
        assert response.json()["type"].endswith("/invalid-webhook-signature")
    assert await _recorded(billing_runtime, event["id"]) == 0
    assert (await billing(tenant))["status"] == "active"  # nothing happened
    not_an_event = b'{"hello": "world"}'
    response = await billing_client.post(url, content=not_an_event, headers={"stripe-signature": sign(not_an_event)})
    assert response.status_code == 400


async def test_an_event_is_applied_once_however_often_it_is_delivered(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    tenant, customer, subscription = await _subscribed(billing_client)
    localstripe.http.delete(f"/v1/subscriptions/{subscription}").raise_for_status()  # Stripe ends it
    deleted = next(e for e in localstripe.events_of(customer) if e["type"] == "customer.subscription.deleted")
    first = await deliver(billing_client, deleted)
    assert first.status_code == 200, first.text
    assert first.json() | {"event_id": None} == {
        "received": True,
        "event_id": None,
        "type": "customer.subscription.deleted",
        "outcome": "applied",
        "duplicate": False,
    }
    for _ in range(3):
        again = await deliver(billing_client, deleted)
        assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["outcome"] == "applied"
    state = await billing(tenant)
    assert state["status"] == "canceled"
    assert [(h["old_status"], h["new_status"]) for h in state["history"]] == [
        ("none", "active"),
        ("active", "canceled"),
    ][::-1]
    assert await _recorded(billing_runtime, deleted["id"]) == 1


async def test_events_in_any_order_leave_stripes_newest_state(
    billing_client: AppClient, localstripe: LocalStripe
) -> None:
    """Stripe fails the renewal, then the tenant pays it (all on Stripe's side); the events arrive backwards."""
    tenant, customer, subscription = await _subscribed(billing_client)
    localstripe.set_default_card(customer, localstripe.declining_card())
    renewal = localstripe.decline_renewal(customer, subscription)
    assert localstripe.get(f"/v1/subscriptions/{subscription}")["status"] == "past_due"
    localstripe.set_default_card(customer, "pm_card_visa")
    assert localstripe.post(f"/v1/invoices/{renewal['id']}/pay").json()["status"] == "paid"
    assert localstripe.get(f"/v1/subscriptions/{subscription}")["status"] == "active"

    events = localstripe.events_of(customer)
    kinds = [e["type"] for e in events]
    assert "invoice.payment_failed" in kinds and kinds.count("invoice.payment_succeeded") == 2
    for event in reversed(events):
        response = await deliver(billing_client, event)
        assert response.status_code == 200, response.text
    state = await billing(tenant)
    assert state["status"] == "active" and state["subscription"]["status"] == "active"
    renewal_row = next(i for i in state["invoices"] if i["id"] == renewal["id"])
    assert renewal_row["status"] == "paid" and renewal_row["payment_failed"] is False  # the late failure is older
    assert [(h["old_status"], h["new_status"]) for h in state["history"]] == [("none", "active")]

    # Delivered again in order: all duplicates, nothing moves.
    for event in events:
        assert (await deliver(billing_client, event)).json()["duplicate"] is True
    assert (await billing(tenant))["history"] == state["history"]


async def test_a_late_snapshot_never_rolls_the_tenant_back(billing_client: AppClient, localstripe: LocalStripe) -> None:
    tenant, _, subscription = await _subscribed(billing_client)
    current = localstripe.get(f"/v1/subscriptions/{subscription}")
    # A newer event whose snapshot is out of date (Stripe says active now): the tenant takes Stripe's state.
    outdated = copy.deepcopy(current) | {"status": "past_due"}
    newer = await deliver(billing_client, _event("customer.subscription.updated", outdated))
    assert newer.json()["outcome"] == "applied"
    assert (await billing(tenant))["status"] == "active"
    # An event older than the newest one applied is stale: it changes nothing and Stripe is not even asked.
    older = await deliver(billing_client, _event("customer.subscription.updated", outdated, int(time.time()) - 600))
    assert older.json()["outcome"] == "stale"
    state = await billing(tenant)
    assert state["status"] == "active" and [h["new_status"] for h in state["history"]] == ["active"]


async def test_unknown_types_and_strangers_are_acknowledged_and_ignored(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    tenant, customer, _ = await _subscribed(billing_client)
    created = next(e for e in localstripe.events_of(customer) if e["type"] == "customer.created")
    response = await deliver(billing_client, created)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    odd = await deliver(billing_client, _event("radar.early_fraud_warning.created", {"id": "issfr_1"}))
    assert odd.status_code == 200 and odd.json()["outcome"] == "ignored"
    stranger = _event("invoice.payment_failed", {"id": "in_x", "object": "invoice", "customer": "cus_nobody"})
    assert (await deliver(billing_client, stranger)).json()["outcome"] == "unknown_customer"
    assert await _recorded(billing_runtime, created["id"]) == 1
    assert (await billing(tenant))["status"] == "active"
