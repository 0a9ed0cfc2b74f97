"""Closing a usage period bills each tenant's overage to Stripe exactly once: run twice, run by racing workers, run
again after a worker died between Stripe's answer and its commit, or after Stripe was down."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.billing.periods import close_billing_periods, ensure_usage_rows, last_closable_period
from core.billing.rules import usage_key, usage_period
from core.clock import utcnow
from core.plugin.manager import PluginManager
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.billing.conftest import billing_settings
from tests.billing.support import (
    PLATFORM,
    LocalStripe,
    activity,
    billing,
    customer_of,
    make_plan,
    make_tenant,
    subscribe,
)

#: Overage of 3 active members and 1,500 events on the test plan: 1 x 0.50 + 1 started thousand x 2.00 = 2.50.
OVERAGE_MINOR = 250


def after_this_period() -> datetime:
    """A moment when this month's usage period is due to close (its end plus the close delay, and then some)."""
    return usage_period(utcnow())[1] + timedelta(hours=2)


async def _overaged(client: AppClient, runtime: Runtime, **plan_fields: Any) -> tuple[TenantHandle, str]:
    plan = await make_plan(client, **plan_fields)
    tenant = await make_tenant(client)
    await subscribe(tenant, plan)
    members = [(await tenant.enrol())["id"] for _ in range(3)]
    await activity(runtime, tenant, members, events_each=500)
    return tenant, await customer_of(client, tenant)


def _usage_items(stripe: LocalStripe, customer: str) -> list[dict[str, Any]]:
    return [i for i in stripe.invoice_items(customer) if "fealty_usage_key" in i["metadata"]]


async def test_closing_twice_bills_once(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    tenant, customer = await _overaged(billing_client, billing_runtime)
    first = await close_billing_periods(billing_runtime, after_this_period())
    second = await close_billing_periods(billing_runtime, after_this_period() + timedelta(days=1))
    assert first.billed >= 1 and not first.errors and not second.errors
    items = _usage_items(localstripe, customer)
    assert [(i["amount"], i["metadata"]["fealty_usage_key"]) for i in items] == [
        (OVERAGE_MINOR, usage_key(tenant.id, usage_period(utcnow())[0]))
    ]
    closed = (await billing(tenant))["closed_periods"]
    assert [(p["status"], p["active_members"], p["events"], p["overage_amount"]) for p in closed] == [
        ("billed", 3, 1500, "2.50")
    ]
    assert closed[0]["stripe_invoice_item_id"] == items[0]["id"]


@pytest.mark.parametrize("workers", [4])
async def test_racing_workers_bill_once(
    backend: str,
    database_url: str,
    billing_client: AppClient,
    billing_runtime: Runtime,
    localstripe: LocalStripe,
    workers: int,
) -> None:
    """Several workers (each its own process-like runtime and connection pool) close the same period at once:
    on PostgreSQL each row is claimed with FOR UPDATE SKIP LOCKED, on SQLite writers queue. (Whether the workers
    really overlap depends on timing; the test below holds a row lock to prove the skip deterministically.)"""
    tenants = [await _overaged(billing_client, billing_runtime) for _ in range(2)]
    runtimes = [Runtime.create(billing_settings(database_url, localstripe), PluginManager()) for _ in range(workers)]
    try:
        reports = await asyncio.gather(*(close_billing_periods(r, after_this_period()) for r in runtimes))
    finally:
        for runtime in runtimes:
            await runtime.close()
    assert not [e for r in reports for e in r.errors]
    for tenant, customer in tenants:
        assert [i["amount"] for i in _usage_items(localstripe, customer)] == [OVERAGE_MINOR]
        assert [p["status"] for p in (await billing(tenant))["closed_periods"]] == ["billed"]


async def test_a_period_another_worker_holds_is_skipped_then_billed_once(
    backend: str, database_url: str, billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    """While another worker holds a tenant's period row (its transaction open), a close skips that tenant and bills
    the others; the next close bills it, once."""
    if backend != "postgres":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    (held, held_customer), (_, free_customer) = [await _overaged(billing_client, billing_runtime) for _ in range(2)]
    # The period's rows, as the first step of every close makes them.
    delay = timedelta(minutes=billing_runtime.settings.billing_close_delay_minutes)
    await ensure_usage_rows(billing_runtime, last_closable_period(after_this_period(), delay), utcnow())
    engine = create_async_engine(database_url)  # another worker's connection
    try:
        async with engine.connect() as other:
            locked = await other.execute(
                text("SELECT 1 FROM billing_usage WHERE tenant_id = :t AND status = 'open' FOR UPDATE"),
                {"t": held.id},
            )
            assert locked.all() == [(1,)]
            first = await close_billing_periods(billing_runtime, after_this_period())
            assert first.skipped == 1 and not first.errors
            assert _usage_items(localstripe, held_customer) == []
            assert [i["amount"] for i in _usage_items(localstripe, free_customer)] == [OVERAGE_MINOR]
            await other.rollback()
        second = await close_billing_periods(billing_runtime, after_this_period())
    finally:
        await engine.dispose()
    assert not second.errors
    assert [i["amount"] for i in _usage_items(localstripe, held_customer)] == [OVERAGE_MINOR]
    assert [i["amount"] for i in _usage_items(localstripe, free_customer)] == [OVERAGE_MINOR]
    assert [p["status"] for p in (await billing(held))["closed_periods"]] == ["billed"]


async def test_a_worker_that_died_after_stripe_answered_is_not_billed_twice(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    tenant, customer = await _overaged(billing_client, billing_runtime)
    subscription = (await billing(tenant))["subscription"]["id"]
    key = usage_key(tenant.id, usage_period(utcnow())[0])
    # What Stripe holds after a worker created the item and died before its commit: the item, not the closed row.
    orphan = localstripe.post(
        "/v1/invoiceitems",
        customer=customer,
        subscription=subscription,
        amount=OVERAGE_MINOR,
        currency="gbp",
        **{"metadata[fealty_usage_key]": key},
    ).json()
    await close_billing_periods(billing_runtime, after_this_period())
    assert [i["id"] for i in _usage_items(localstripe, customer)] == [orphan["id"]]
    assert (await billing(tenant))["closed_periods"][0]["stripe_invoice_item_id"] == orphan["id"]


async def test_within_the_plan_nothing_is_billed_and_per_block_quantity_follows_members(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    flat, flat_customer = await _overaged(
        billing_client, billing_runtime, included_active_members=10, included_events=10_000
    )
    blocks, blocks_customer = await _overaged(
        billing_client, billing_runtime, pricing="per_block", block_size=2, monthly_price="10.00", included_events=1000
    )
    await close_billing_periods(billing_runtime, after_this_period())
    assert _usage_items(localstripe, flat_customer) == []
    assert [p["status"] for p in (await billing(flat))["closed_periods"]] == ["no_charge"]
    # 3 active members in blocks of 2: 2 blocks, which include 2,000 events (1,500 used): quantity 2, no overage.
    state = await billing(blocks)
    assert [(p["status"], p["overage_amount"]) for p in state["closed_periods"]] == [("no_charge", "0.00")]
    assert state["subscription"]["quantity"] == 2
    assert localstripe.get(f"/v1/subscriptions/{state['subscription']['id']}")["quantity"] == 2
    assert _usage_items(localstripe, blocks_customer) == []


async def test_trials_and_tenants_without_a_subscription_are_not_billed(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    plan = await make_plan(billing_client)
    trial = await make_tenant(billing_client)
    started = await billing_client.post(
        f"/v1/platform/tenants/{trial.id}/subscription", json={"plan": plan["code"], "trial_days": 30}, headers=PLATFORM
    )
    assert started.json()["status"] == "trialing"
    free = await make_tenant(billing_client, plan=plan["code"])
    for tenant in (trial, free):
        await activity(billing_runtime, tenant, [(await tenant.enrol())["id"] for _ in range(5)], events_each=400)
    await close_billing_periods(billing_runtime, after_this_period())
    assert [p["status"] for p in (await billing(trial))["closed_periods"]] == ["waived"]
    assert [p["status"] for p in (await billing(free))["closed_periods"]] == ["not_billable"]
    assert _usage_items(localstripe, await customer_of(billing_client, trial)) == []


async def test_the_worker_closes_periods_on_its_own_and_only_with_billing_on(
    billing_client: AppClient, billing_runtime: Runtime, runtime: Runtime, localstripe: LocalStripe
) -> None:
    """``tick`` (``fealty worker`` and the worker inside ``fealty serve``) closes due periods; a worker without a
    Stripe key (the ``runtime`` fixture's app) leaves them open for one that has it."""
    from core.worker import tick

    tenant, customer = await _overaged(billing_client, billing_runtime)
    with time_machine.travel(after_this_period(), tick=True):
        keyless = await tick(runtime, tenant.id)
        assert keyless.kinds.get("billing.close_periods") == 1 and not keyless.failed
        assert (await billing(tenant))["closed_periods"] == []
        report = await tick(billing_runtime, tenant.id)
    assert report.kinds.get("billing.close_periods") == 1 and not report.failed
    assert [i["amount"] for i in _usage_items(localstripe, customer)] == [OVERAGE_MINOR]
    assert [p["status"] for p in (await billing(tenant))["closed_periods"]] == ["billed"]


async def test_a_subscription_that_ended_in_the_month_still_owes_its_overage_once(
    billing_client: AppClient, billing_runtime: Runtime, localstripe: LocalStripe
) -> None:
    """The subscription ends mid-month (Stripe ends it; its webhook says so): the month's overage up to then is not
    forgotten. localstripe cannot invoice a customer without a live subscription, so the overage is an invoice item
    on the customer (not on the ended subscription), the period is ``owed``, and Stripe puts the item on the
    customer's next invoice: the first one of the subscription the tenant comes back with."""
    from tests.billing.support import deliver

    tenant, customer = await _overaged(billing_client, billing_runtime)
    subscription = (await billing(tenant))["subscription"]["id"]
    localstripe.http.delete(f"/v1/subscriptions/{subscription}").raise_for_status()
    deleted = next(e for e in localstripe.events_of(customer) if e["type"] == "customer.subscription.deleted")
    assert (await deliver(billing_client, deleted)).json()["outcome"] == "applied"
    assert (await billing(tenant))["status"] == "canceled"

    for later in (timedelta(0), timedelta(days=1)):  # closing twice bills once
        report = await close_billing_periods(billing_runtime, after_this_period() + later)
        assert not report.errors
    items = _usage_items(localstripe, customer)
    assert [(i["amount"], i["subscription"], i["invoice"]) for i in items] == [(OVERAGE_MINOR, None, None)]
    state = await billing(tenant)
    assert [(p["status"], p["active_members"], p["events"], p["overage_amount"]) for p in state["closed_periods"]] == [
        ("owed", 3, 1500, "2.50")
    ]
    assert state["closed_periods"][0]["stripe_invoice_item_id"] == items[0]["id"]
    period = utcnow().strftime("%Y-%m")
    listed = (await billing_client.get(f"/v1/platform/usage?period={period}&limit=500", headers=PLATFORM)).json()
    assert [u["status"] for u in listed["items"] if u["tenant_id"] == str(tenant.id)] == ["owed"]

    # The tenant comes back: the new subscription's first invoice carries the owed overage, and is paid.
    plan = state["plan"]["code"]
    restarted = await tenant.post("/v1/billing/subscription", json={"plan": plan})
    assert restarted.status_code == 201, restarted.text
    first = next(
        i for i in localstripe.invoices(customer) if i["subscription"] == restarted.json()["subscription"]["id"]
    )
    lines = localstripe.get(f"/v1/invoices/{first['id']}/lines")["data"]
    assert OVERAGE_MINOR in [line["amount"] for line in lines] and first["status"] == "paid"
    assert first["amount_paid"] == 4900 + OVERAGE_MINOR
