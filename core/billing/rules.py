"""Billing rules as pure functions: the billing state machine, usage periods, overage and per-block quantities.

No I/O here: the service feeds these functions what Stripe and the database say, so every rule is tested by a table.

The billing state machine (``tenants.billing_status``)::

    none ──start──► trialing ──trial ends, paid──► active ◄──────────── paid ───────┐
                       │                             │                              │
                       └──────── payment fails ──────┴──► past_due ──grace over──► suspended
                                                                 (writes allowed,    (writes refused, 402;
                                                                  admins warned)      reads and billing work)
    active/trialing ──subscription ends, paid──► canceled (writes refused until a new subscription)
    any ──subscription ends unpaid──► suspended

It is derived, never stepped: the same facts (Stripe's newest subscription state, the open invoices, the time)
always give the same status, so webhooks may arrive in any order, twice, or late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision

BILLING_STATUSES = ("none", "trialing", "active", "past_due", "suspended", "canceled")
#: Billing states in which a tenant's writes are refused (402), except on routes marked ``allowed_when_suspended``.
WRITES_REFUSED = frozenset({"suspended", "canceled"})
#: Stripe subscription statuses of a subscription that is over.
ENDED_SUBSCRIPTION_STATUSES = frozenset({"canceled", "incomplete_expired"})
PRICING = ("flat", "per_block")
EVENTS_PER_PRICE_UNIT = 1000


@dataclass(frozen=True, slots=True)
class SubscriptionFacts:
    """What the billing status is derived from."""

    #: Stripe's status of the tenant's subscription; None when the tenant has none.
    status: str | None
    trial_end: datetime | None = None
    #: The subscription has issued an invoice (a trial has not).
    invoiced: bool = True
    #: The tenant has an open invoice whose payment was attempted and failed.
    unpaid_invoice: bool = False


@dataclass(frozen=True, slots=True)
class BillingState:
    status: str
    #: When the current delinquency began (the grace period runs from here); None when the tenant is in good standing.
    past_due_since: datetime | None = None


def derive_billing_state(
    facts: SubscriptionFacts, *, previous: str, past_due_since: datetime | None, now: datetime, grace: timedelta
) -> BillingState:
    """The billing status the facts call for.

    * no subscription: ``none``;
    * Stripe gave up (``unpaid``, ``incomplete_expired``) or the subscription ended with an unpaid invoice:
      ``suspended``; ended with everything paid: ``canceled``;
    * a failed payment (``past_due``, ``incomplete``, or an open invoice whose payment failed): ``past_due`` until
      the grace period after the first failure is over, then ``suspended``; a suspended tenant stays suspended until
      it pays, whatever the clock says;
    * otherwise ``trialing`` or ``active``.

    localstripe never reports ``trialing``: a subscription with a future ``trial_end`` that has issued no invoice is in
    its trial whatever its status (on Stripe such a subscription is always ``trialing``, so the rule changes nothing).
    """
    status = facts.status
    if status is None:
        return BillingState("none")
    since = past_due_since or now
    if status in ("unpaid", "incomplete_expired"):
        return BillingState("suspended", since)
    if status == "canceled":
        return BillingState("suspended", since) if facts.unpaid_invoice else BillingState("canceled")
    in_trial = status == "trialing" or (
        status == "incomplete" and not facts.invoiced and facts.trial_end is not None and facts.trial_end > now
    )
    delinquent = facts.unpaid_invoice or (status in ("past_due", "incomplete") and not in_trial)
    if delinquent:
        if previous == "suspended" or now >= since + grace:
            return BillingState("suspended", since)
        return BillingState("past_due", since)
    return BillingState("trialing" if in_trial else "active")


def grace_ends_at(past_due_since: datetime | None, grace: timedelta) -> datetime | None:
    return None if past_due_since is None else past_due_since + grace


def effective_status(stored: str, past_due_since: datetime | None, now: datetime, grace: timedelta) -> str:
    """The status to enforce now: a past-due tenant whose grace period is over is suspended even before the worker
    has recorded it."""
    deadline = grace_ends_at(past_due_since, grace)
    if stored == "past_due" and deadline is not None and now >= deadline:
        return "suspended"
    return stored


def billing_warning(status: str, deadline: datetime | None) -> str | None:
    """The ``Fealty-Billing-Warning`` header for a tenant not in good standing (None when it is)."""
    if status == "past_due":
        when = f"; suspends at {rfc3339(deadline)}" if deadline else ""
        return f"past_due{when}; pay the open invoice or attach a new payment method (GET /v1/billing)"
    if status == "suspended":
        return "suspended; writes are refused until the open invoice is paid (GET /v1/billing)"
    if status == "canceled":
        return "canceled; writes are refused until a subscription is started (POST /v1/billing/subscription)"
    return None


def rfc3339(value: datetime) -> str:
    """``2026-11-29T12:00:00Z`` (whole seconds, UTC)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- usage periods ----------------------------------------------------------------------------------------------------


def usage_period(at: datetime) -> tuple[datetime, datetime]:
    """The usage period containing ``at``: the calendar month in UTC, ``[start, end)``."""
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_label(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m")


def usage_key(tenant_id: object, period_start: datetime) -> str:
    """Names one tenant's usage period everywhere: Stripe idempotency key and invoice item metadata."""
    return f"fealty-usage-{tenant_id}-{period_label(period_start)}"


# --- money ------------------------------------------------------------------------------------------------------------


def currency_exponent(currency: str) -> int:
    return int(get_currency_precision(currency.upper()))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``12.34 GBP`` -> ``1234``; rounded half up to the currency's precision."""
    exponent = currency_exponent(currency)
    return int((amount * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    exponent = currency_exponent(currency)
    return (Decimal(amount) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-currency_exponent(currency)), rounding=ROUND_HALF_UP)


# --- plans, overage and quantities ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """What a plan charges.

    ``flat``: ``monthly_price`` a month covers ``included_active_members`` and ``included_events``; each active member
    over that costs ``overage_price_per_member`` and each started thousand events over it
    ``overage_price_per_1000_events``.

    ``per_block``: ``monthly_price`` is the price of one block of ``block_size`` active members; the subscription's
    quantity follows the number of blocks; each block includes ``included_events`` events, and events over that are
    charged like a flat plan's. Active members never run over (the quantity grows instead).
    """

    currency: str
    pricing: str = "flat"
    monthly_price: Decimal = Decimal(0)
    block_size: int | None = None
    included_active_members: int = 0
    included_events: int = 0
    overage_price_per_member: Decimal = Decimal(0)
    overage_price_per_1000_events: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Overage:
    #: Active members over the included number (flat plans).
    members: int
    #: Events over the included number.
    events: int
    amount: Decimal
    currency: str
    #: The subscription quantity the usage calls for: the number of blocks (per-block plans), 1 otherwise.
    quantity: int


def blocks_for(terms: PlanTerms, active_members: int) -> int:
    if terms.pricing != "per_block" or not terms.block_size:
        return 1
    return max(1, math.ceil(active_members / terms.block_size))


def overage_of(terms: PlanTerms, *, active_members: int, events: int) -> Overage:
    """What ``active_members`` and ``events`` in one period cost beyond the plan's monthly price."""
    quantity = blocks_for(terms, active_members)
    if terms.pricing == "per_block":
        members_over = 0
        included_events = terms.included_events * quantity
    else:
        members_over = max(0, active_members - terms.included_active_members)
        included_events = terms.included_events
    events_over = max(0, events - included_events)
    event_units = math.ceil(events_over / EVENTS_PER_PRICE_UNIT)
    amount = members_over * terms.overage_price_per_member + event_units * terms.overage_price_per_1000_events
    return Overage(members_over, events_over, quantize(amount, terms.currency), terms.currency, quantity)


def projected_events(events: int, period: tuple[datetime, datetime], now: datetime) -> int:
    """Events at the end of the period if they keep coming at the pace so far (linear)."""
    start, end = period
    elapsed = (min(max(now, start), end) - start).total_seconds()
    if elapsed <= 0:
        return events
    return math.ceil(events * (end - start).total_seconds() / elapsed)


def stripe_plan_id(code: str, currency: str, unit_amount: int) -> str:
    """The Stripe plan for a plan at one price. A new price is a new Stripe plan (Stripe's prices are immutable);
    subscriptions on the old one keep it until they change plan."""
    return f"fealty-{code}-{currency.lower()}-{unit_amount}"


def stripe_product_id(code: str) -> str:
    return f"fealty-{code}"
