"""Billing tenants through Stripe.

* :mod:`~core.billing.rules` -- the pure rules: billing state machine, usage periods, overage, per-block quantity;
* :mod:`~core.billing.models` -- plans, Stripe events received, usage, active members, invoices, billing history;
* :mod:`~core.billing.plans` -- plans and their idempotent synchronisation to Stripe (``fealty billing sync-plans``);
* :mod:`~core.billing.customers` -- the tenant's Stripe customer, made once with the tenant;
* :mod:`~core.billing.service` -- payment methods, subscriptions, and ``apply_billing_status`` (the one place a
  tenant's billing status changes, which calls ``notify_billing_status_changed``);
* :mod:`~core.billing.usage` -- ``record_activity``, the metering call of event ingestion;
* :mod:`~core.billing.periods` -- ``close_billing_periods``: the overage billed once per tenant and period;
* :mod:`~core.billing.webhooks` -- Stripe's webhooks, verified, de-duplicated and order-proof;
* :mod:`~core.billing.limits` -- the plan's member limit; :mod:`~core.billing.api` -- the HTTP routes.

Stripe itself is reached only through :mod:`core.adapters.stripe`.
"""
