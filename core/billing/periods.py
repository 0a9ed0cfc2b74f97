"""Closing usage periods: bill each tenant's overage to Stripe exactly once per period.

:func:`close_billing_periods` is self-contained and idempotent, so it can run from the worker's tick, from a job
queue, by hand (``fealty billing close-periods``), twice in a row or in several workers at once:

* each (tenant, period) has one ``billing_usage`` row (its primary key), created with ``ON CONFLICT DO NOTHING``;
* closing a row happens in one transaction that holds the row's lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a
  second worker skips a row being closed; SQLite's writers are serialised) and re-checks that it is still open, so
  only one worker ever bills it, and the row is marked closed in the same commit;
* the Stripe invoice item carries an idempotency key and a metadata key derived from tenant and period; before
  creating it the closer looks for an item with that key, so even a worker that died after Stripe answered but
  before its commit leaves a period that the next run closes without billing it again.

A period is closed ``FEALTY_BILLING_CLOSE_DELAY_MINUTES`` after it ends, when every transaction that counted
activity into it has long committed: the close sums the period's counters (see core.billing.usage) and records the
totals with what was billed. Without a Stripe key nothing is closed (usage keeps counting).

A subscription that ended during the period (canceled, or ended unpaid) still owes the overage of the activity it
had: the invoice item is created on the customer without a subscription and the period is ``owed``; Stripe adds a
customer's pending invoice items to its next invoice (a new subscription's first one, for a tenant that comes back).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import and_, exists, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.billing import plans, rules
from core.billing.models import BillingUsage, Plan, UsageCount
from core.billing.service import apply_subscription, lock_tenant, stripe_gateway
from core.billing.usage import dialect_of, usage_of
from core.db.base import table_of
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.tenancy.models import Tenant

log = structlog.get_logger("fealty.billing")

usage = table_of(BillingUsage)
counts = table_of(UsageCount)
tenants = table_of(Tenant)
BATCH = 500


@dataclass
class CloseReport:
    closed: int = 0
    billed: int = 0
    #: Rows this run found closed, or being closed, by another worker.
    skipped: int = 0
    #: Amount billed per currency.
    amounts: dict[str, Decimal] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def last_closable_period(now: datetime, delay: timedelta) -> tuple[datetime, datetime]:
    """The newest period that ended at least ``delay`` ago."""
    current_start, _ = rules.usage_period(now - delay)
    return rules.usage_period(current_start - timedelta(microseconds=1))


async def ensure_usage_rows(runtime: Runtime, period: tuple[datetime, datetime], now: datetime) -> None:
    """A usage row for every tenant subscribed or with activity in ``period``, so that none is forgotten (a subscribed
    tenant even with no activity). Idempotent; cheap (one INSERT ... SELECT over the tenants, per close)."""
    start, end = period
    counted = select(counts.c.tenant_id).where(counts.c.tenant_id == tenants.c.id, counts.c.period_start == start)
    async with tenant_session(runtime.sessionmaker, None) as session:
        dialect = dialect_of(session)
        subscribed = select(
            tenants.c.id,
            literal(start, usage.c.period_start.type),
            literal(end, usage.c.period_end.type),
            literal(0),
            literal(0),
            literal("open"),
            literal(now, usage.c.updated_at.type),
        ).where(
            or_(
                and_(
                    tenants.c.stripe_subscription_id.is_not(None),
                    tenants.c.subscription_status.not_in(rules.ENDED_SUBSCRIPTION_STATUSES),
                ),
                exists(counted),
            )
        )
        await session.execute(
            dialect.insert(usage)
            .from_select(
                ["tenant_id", "period_start", "period_end", "events", "active_members", "status", "updated_at"],
                subscribed,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "period_start"])
        )


async def close_billing_periods(runtime: Runtime, now: datetime) -> CloseReport:
    """Close every usage period that ended at least the close delay before ``now``: bill the overage, set the
    per-block quantity, record what was billed. Safe to run any number of times, anywhere, at once."""
    report = CloseReport()
    if stripe_gateway(runtime) is None:
        # Billing is off (no Stripe key): leave every period open, so that a worker started without its key by
        # mistake never closes as "not billable" what a correctly configured one would bill.
        return report
    delay = timedelta(minutes=runtime.settings.billing_close_delay_minutes)
    period = last_closable_period(now, delay)
    await ensure_usage_rows(runtime, period, now)
    cutoff = now - delay
    async with tenant_session(runtime.sessionmaker, None, writes=False) as session:
        due = (
            await session.execute(
                select(usage.c.tenant_id, usage.c.period_start)
                .where(usage.c.status == "open", usage.c.period_end <= cutoff)
                .order_by(usage.c.period_start, usage.c.tenant_id)
                .limit(BATCH)
            )
        ).all()
    for tenant_id, period_start in due:
        try:
            async with tenant_session(runtime.sessionmaker, tenant_id) as session:
                await _close_one(session, runtime, tenant_id, period_start, now, report)
        except Exception as exc:  # one tenant's failure (Stripe down) must not stop the others; retried next run
            log.exception(
                "billing_period_close_failed", tenant_id=str(tenant_id), period=rules.period_label(period_start)
            )
            report.errors.append(f"{tenant_id} {rules.period_label(period_start)}: {type(exc).__name__}")
    return report


async def _close_one(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: uuid.UUID,
    period_start: datetime,
    now: datetime,
    report: CloseReport,
) -> None:
    row = (
        await session.execute(
            select(usage)
            .where(usage.c.tenant_id == tenant_id, usage.c.period_start == period_start, usage.c.status == "open")
            .with_for_update(skip_locked=True)
        )
    ).first()
    if row is None:
        report.skipped += 1  # closed already, or being closed by another worker right now
        return
    label = rules.period_label(period_start)
    tenant = await lock_tenant(session, tenant_id)
    plan = await session.get(Plan, tenant.plan_code) if tenant.plan_code else None
    gateway = stripe_gateway(runtime)
    totals = await usage_of(session, tenant_id, period_start)
    values: dict[str, object] = {
        "plan_code": tenant.plan_code,
        "events": totals.events,
        "active_members": totals.active_members,
        "closed_at": now,
        "updated_at": now,
    }
    billable = (
        gateway is not None
        and plan is not None
        and tenant.stripe_customer_id is not None
        and tenant.stripe_subscription_id is not None
    )
    #: The subscription ended (in this period: a tenant without one counts no activity): its usage is still owed.
    ended = tenant.subscription_status in rules.ENDED_SUBSCRIPTION_STATUSES
    if not billable:
        values["status"] = "not_billable"
    elif tenant.billing_status == "trialing" and not ended:
        values["status"] = "waived"
    else:
        assert gateway is not None and plan is not None
        assert tenant.stripe_customer_id is not None and tenant.stripe_subscription_id is not None
        terms = plans.terms_of(plan)
        overage = rules.overage_of(terms, active_members=totals.active_members, events=totals.events)
        values |= {
            "overage_members": overage.members,
            "overage_events": overage.events,
            "overage_amount": overage.amount,
            "currency": overage.currency,
            "status": "no_charge",
        }
        key = rules.usage_key(tenant_id, period_start)
        if overage.amount > 0:
            item = await gateway.find_invoice_item(
                tenant.stripe_customer_id, metadata_key="fealty_usage_key", value=key
            )
            if item is None:
                item = await gateway.create_invoice_item(
                    customer_id=tenant.stripe_customer_id,
                    # An ended subscription invoices nothing more: the item waits on the customer instead.
                    subscription_id=None if ended else tenant.stripe_subscription_id,
                    amount=rules.to_minor_units(overage.amount, overage.currency),
                    currency=overage.currency,
                    description=(
                        f"Usage {label} beyond plan {plan.name}: {overage.members} active members "
                        f"and {overage.events} events over what the plan includes"
                        + (" (the subscription has ended)" if ended else "")
                    ),
                    metadata={"fealty_usage_key": key, "fealty_tenant_id": str(tenant_id), "fealty_period": label},
                    idempotency_key=key,
                )
            values |= {"status": "owed" if ended else "billed", "stripe_invoice_item_id": item.id}
            report.billed += 1
            report.amounts[overage.currency] = report.amounts.get(overage.currency, Decimal(0)) + overage.amount
        if terms.pricing == "per_block" and not ended:
            values["quantity"] = overage.quantity
            if overage.quantity != tenant.subscription_quantity:
                subscription = await gateway.update_subscription(
                    tenant.stripe_subscription_id,
                    item_id=tenant.subscription_item_id,
                    quantity=overage.quantity,
                    idempotency_key=f"{key}-quantity-{overage.quantity}",
                )
                await apply_subscription(
                    session,
                    runtime.settings,
                    tenant,
                    subscription,
                    now=now,
                    reason=f"quantity follows the {totals.active_members} active members of {label}",
                )
    await session.execute(
        update(usage).where(usage.c.tenant_id == tenant_id, usage.c.period_start == period_start).values(values)
    )
    report.closed += 1
    log.info("billing_period_closed", tenant_id=str(tenant_id), period=label, status=values["status"])
