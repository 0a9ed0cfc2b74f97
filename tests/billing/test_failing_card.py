"""A failing card: past due (writes allowed, admins warned), suspended after the grace period (writes refused with
402, reads and billing working, nothing deleted), resumed at once when the open invoice is paid. With localstripe's
declining test cards and its own webhook deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select

from core.billing.models import StripeEvent
from core.billing.service import enforce_grace_periods
from core.clock import utcnow
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.tenancy.models import Tenant
from core.testing import AppClient, TenantHandle
from core.worker import tick
from tests.billing.support import (
    BillingLive,
    LocalStripe,
    billing,
    customer_of,
    eventually,
    make_plan,
    make_tenant,
    subscribe,
)
from tests.webhooks.helpers import Receiver, add_endpoint, drain, make_worker


async def test_a_declined_first_payment_goes_past_due_then_suspended_then_resumes_when_paid(
    billing_live: BillingLive, localstripe: LocalStripe
) -> None:
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    member = await tenant.enrol()
    # localstripe's pm_card_chargeCustomerFail attaches fine and declines every charge.
    state = await subscribe(tenant, plan, card="pm_card_chargeCustomerFail")
    assert state["status"] == "past_due", state
    assert state["subscription"]["status"] == "incomplete"
    assert [(i["status"], i["payment_failed"]) for i in state["invoices"]] == [("open", True)]
    deadline = datetime.fromisoformat(state["grace_ends_at"])
    assert timedelta(days=6, hours=23) < deadline - utcnow() <= timedelta(days=7)

    # Past due: writes work, and every response warns.
    written = await tenant.post("/v1/members", json={"external_id": "during-grace"})
    assert written.status_code == 201
    warning = written.headers["fealty-billing-warning"]
    assert warning.startswith("past_due; suspends at ") and state["grace_ends_at"][:16] in warning.replace(
        "Z", "+00:00"
    )
    assert "fealty-billing-warning" in (await tenant.get(f"/v1/members/{member['id']}")).headers

    # The grace period runs out: the worker suspends the tenant.
    with time_machine.travel(deadline + timedelta(minutes=1), tick=True):
        assert await enforce_grace_periods(billing_live.runtime, utcnow()) >= 1
        refused = await tenant.post("/v1/members", json={"external_id": "suspended"})
        assert refused.status_code == 402
        problem = refused.json()
        assert problem["type"].endswith("/tenant-suspended") and "POST /v1/billing/payment-method" in problem["detail"]
        assert refused.headers["fealty-billing-warning"].startswith("suspended")
        # Reads and billing keep working; nothing was deleted.
        assert (await tenant.get(f"/v1/members/{member['id']}")).status_code == 200
        assert len((await tenant.get("/v1/members")).json()["items"]) == 2
        suspended = await billing(tenant)
        assert suspended["status"] == "suspended"
        assert [(h["old_status"], h["new_status"]) for h in suspended["history"]][:2] == [
            ("past_due", "suspended"),
            ("none", "past_due"),
        ]

    # A good card pays the open invoice: the tenant resumes at once (and Stripe's webhook agrees later).
    paid = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": "pm_card_visa"})
    assert paid.status_code == 200, paid.text
    resumed = paid.json()
    assert resumed["status"] == "active" and resumed["payment_error"] is None and resumed["grace_ends_at"] is None
    assert [i["status"] for i in resumed["invoices"]] == ["paid"]
    # (the suspension was recorded at the travelled time, so compare transitions, not their order)
    transitions = {(h["old_status"], h["new_status"]) for h in resumed["history"]}
    assert transitions == {("none", "past_due"), ("past_due", "suspended"), ("suspended", "active")}
    back = await tenant.post("/v1/members", json={"external_id": "resumed"})
    assert back.status_code == 201 and "fealty-billing-warning" not in back.headers

    customer = await customer_of(http, tenant)

    async def payment_webhook() -> bool:
        return any(e["type"] == "invoice.payment_succeeded" for e in localstripe.events_of(customer))

    await eventually(payment_webhook, what="localstripe's payment event")
    final = await billing(tenant)
    assert final["status"] == "active"
    assert [h["new_status"] for h in final["history"]].count("active") == 1  # the webhook changed nothing more


async def test_a_declined_renewal_goes_past_due_through_stripes_webhook(
    billing_live: BillingLive, localstripe: LocalStripe
) -> None:
    """Renewal fails: the card (localstripe's 4000008260003178) passes 3-D Secure and is then declined, so Stripe
    sends invoice.payment_failed; the webhook alone moves the tenant to past due."""
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    await subscribe(tenant, plan)
    customer = await customer_of(http, tenant)
    subscription = (await billing(tenant))["subscription"]["id"]
    card = localstripe.declining_card()
    switched = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": card})
    assert switched.status_code == 200 and switched.json()["status"] == "active"

    # Stripe's clock: the period ends, the renewal invoice is charged, 3-D Secure passes, the bank declines.
    invoice = localstripe.decline_renewal(customer, subscription)

    async def past_due() -> dict | None:
        state = await billing(tenant)
        return state if state["status"] == "past_due" else None

    state = await eventually(past_due, what="invoice.payment_failed to arrive")
    assert state["subscription"]["status"] == "past_due"
    failed = next(i for i in state["invoices"] if i["id"] == invoice["id"])
    assert failed["status"] == "open" and failed["payment_failed"] is True
    # Whichever of Stripe's webhooks is applied first finds the subscription past due (they are read back from
    # Stripe, whatever order they arrive in).
    assert state["history"][0]["new_status"] == "past_due"
    assert (
        state["history"][0]["reason"].startswith("Stripe ") and "subscription past_due" in state["history"][0]["reason"]
    )

    # Paying the open invoice (a good card this time) resumes the tenant.
    fixed = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": "pm_card_visa"})
    assert fixed.json()["status"] == "active"
    assert next(i for i in fixed.json()["invoices"] if i["id"] == invoice["id"])["status"] == "paid"


async def test_paying_with_the_same_declining_card_is_a_402_and_changes_nothing(billing_live: BillingLive) -> None:
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    await subscribe(tenant, plan, card="pm_card_chargeCustomerFail")
    refused = await tenant.post("/v1/billing/pay")
    assert refused.status_code == 402 and refused.json()["type"].endswith("/payment-failed")
    assert (await billing(tenant))["status"] == "past_due"


async def test_paying_on_stripes_side_resumes_a_suspended_tenant_by_webhook_alone(
    billing_live: BillingLive, localstripe: LocalStripe
) -> None:
    """The admin pays the open invoice on Stripe (a hosted invoice page, the dashboard): Fealty hears of it only
    through invoice.payment_succeeded, and that is enough to resume the tenant."""
    http = billing_live.client
    plan = await make_plan(http)
    tenant = await make_tenant(http)
    state = await subscribe(tenant, plan, card="pm_card_chargeCustomerFail")

    async def first_webhooks_applied() -> bool:  # so that only the payment's events are left to come
        async with tenant_session(billing_live.runtime.sessionmaker, None, writes=False) as session:
            found = await session.execute(
                select(StripeEvent.id).where(
                    StripeEvent.tenant_id == tenant.id, StripeEvent.type == "customer.subscription.created"
                )
            )
            return found.first() is not None

    await eventually(first_webhooks_applied, what="customer.subscription.created")
    deadline = datetime.fromisoformat(state["grace_ends_at"])
    with time_machine.travel(deadline + timedelta(minutes=1), tick=True):
        await enforce_grace_periods(billing_live.runtime, utcnow())
    assert (await billing(tenant))["status"] == "suspended"
    assert (await tenant.post("/v1/members", json={"external_id": "blocked"})).status_code == 402

    customer = await customer_of(http, tenant)
    localstripe.set_default_card(customer, "pm_card_visa")
    paid = localstripe.post(f"/v1/invoices/{state['invoices'][0]['id']}/pay").json()
    assert paid["status"] == "paid"

    async def resumed() -> dict | None:
        current = await billing(tenant)
        return current if current["status"] == "active" else None

    current = await eventually(resumed, what="invoice.payment_succeeded to resume the tenant")
    assert current["invoices"][0]["status"] == "paid"
    resumption = [h for h in current["history"] if (h["old_status"], h["new_status"]) == ("suspended", "active")]
    assert len(resumption) == 1 and resumption[0]["reason"].startswith("Stripe invoice.payment_succeeded")
    assert (await tenant.post("/v1/members", json={"external_id": "welcome-back"})).status_code == 201


async def _past_due(client: AppClient) -> tuple[TenantHandle, datetime]:
    """A tenant whose first payment was declined: past due, and when its grace period ends."""
    plan = await make_plan(client)
    tenant = await make_tenant(client)
    state = await subscribe(tenant, plan, card="pm_card_chargeCustomerFail")
    assert state["status"] == "past_due", state
    return tenant, datetime.fromisoformat(state["grace_ends_at"])


async def test_the_worker_suspends_the_tenant_once_the_grace_period_is_over(
    billing_client: AppClient, billing_runtime: Runtime
) -> None:
    """``tick`` (what ``fealty worker`` and the worker inside ``fealty serve`` run) records the suspension itself:
    not before the deadline, and once after it."""
    tenant, deadline = await _past_due(billing_client)
    with time_machine.travel(deadline - timedelta(hours=1), tick=True):
        early = await tick(billing_runtime, tenant.id)
        assert early.kinds.get("billing.enforce_grace") == 1 and not early.failed
        assert (await billing(tenant))["history"][0]["new_status"] == "past_due"
        assert (await tenant.post("/v1/members", json={"external_id": "still-in-time"})).status_code == 201
    with time_machine.travel(deadline + timedelta(minutes=1), tick=True):
        report = await tick(billing_runtime, tenant.id)
        assert report.kinds.get("billing.enforce_grace") == 1 and not report.failed
        async with tenant_session(billing_runtime.sessionmaker, tenant.id, writes=False) as session:
            stored = (await session.execute(select(Tenant.billing_status).where(Tenant.id == tenant.id))).scalar_one()
        assert stored == "suspended"
        history = (await billing(tenant))["history"]
        assert (history[0]["old_status"], history[0]["new_status"]) == ("past_due", "suspended")
        assert history[0]["reason"] == "grace period over with the invoice unpaid"
        refused = await tenant.post("/v1/members", json={"external_id": "too-late"})
        assert refused.status_code == 402 and refused.json()["type"].endswith("/tenant-suspended")
        again = await tick(billing_runtime, tenant.id)  # a second run changes nothing more
        assert not again.failed
        assert [h["new_status"] for h in (await billing(tenant))["history"]].count("suspended") == 1


async def test_admins_are_warned_by_webhook_when_the_tenant_goes_past_due_is_suspended_and_resumes(
    database_url: str, billing_client: AppClient, billing_runtime: Runtime
) -> None:
    """Each change of billing status is a ``billing.status_changed`` event: the tenant's own endpoint subscribed to
    it (a real receiver on a loopback port, checking the signature) receives one signed POST per change."""
    receiver = Receiver()
    await receiver.start()
    worker = make_worker(database_url)
    try:
        plan = await make_plan(billing_client)
        tenant = await make_tenant(billing_client)
        warned, other = receiver.hook("billing"), receiver.hook("points")
        await add_endpoint(tenant, receiver, warned, ["billing.status_changed"])
        await add_endpoint(tenant, receiver, other, ["points.earned"])
        state = await subscribe(tenant, plan, card="pm_card_chargeCustomerFail")
        deadline = datetime.fromisoformat(state["grace_ends_at"])
        with time_machine.travel(deadline + timedelta(minutes=1), tick=True):
            assert await enforce_grace_periods(billing_runtime, utcnow()) >= 1
        paid = await tenant.post("/v1/billing/payment-method", json={"payment_method_id": "pm_card_visa"})
        assert paid.json()["status"] == "active"
        with time_machine.travel(deadline + timedelta(minutes=2), tick=True):  # every event is due by then
            report = await drain(worker, tenant)
        assert report.failed == 0
    finally:
        await worker.close()
        await receiver.stop()
    assert other.requests == []
    assert len(warned.requests) == 3 and warned.verified == warned.requests  # all signed with the endpoint's secret
    bodies = [r.json for r in warned.requests]
    assert {b["type"] for b in bodies} == {"billing.status_changed"}
    assert {(b["data"]["from"], b["data"]["to"]) for b in bodies} == {
        ("none", "past_due"),
        ("past_due", "suspended"),
        ("suspended", "active"),
    }
    suspended = next(b for b in bodies if b["data"]["to"] == "suspended")
    assert suspended["data"]["reason"] == "grace period over with the invoice unpaid"
