"""The billing rules, table by table: no database, no Stripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.billing import rules
from core.billing.rules import BillingState, PlanTerms, SubscriptionFacts

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=7)
EARLIER = NOW - timedelta(days=2)
LONG_AGO = NOW - timedelta(days=8)


@pytest.mark.parametrize(
    ("facts", "previous", "since", "expected"),
    [
        # no subscription
        (SubscriptionFacts(None), "active", None, BillingState("none")),
        # in good standing
        (SubscriptionFacts("active"), "none", None, BillingState("active")),
        (SubscriptionFacts("trialing", invoiced=False), "none", None, BillingState("trialing")),
        # localstripe's trial: incomplete, never invoiced, trial in the future
        (
            SubscriptionFacts("incomplete", NOW + timedelta(days=14), invoiced=False),
            "none",
            None,
            BillingState("trialing"),
        ),
        # ... but an incomplete subscription whose trial is over, or that has invoiced, is a failed first payment
        (
            SubscriptionFacts("incomplete", NOW - timedelta(days=1), invoiced=False),
            "trialing",
            None,
            BillingState("past_due", NOW),
        ),
        (
            SubscriptionFacts("incomplete", None, invoiced=True, unpaid_invoice=True),
            "none",
            None,
            BillingState("past_due", NOW),
        ),
        # a failed renewal: past due from the first failure, suspended when the grace period is over
        (SubscriptionFacts("past_due", unpaid_invoice=True), "active", None, BillingState("past_due", NOW)),
        (SubscriptionFacts("past_due", unpaid_invoice=True), "past_due", EARLIER, BillingState("past_due", EARLIER)),
        (SubscriptionFacts("past_due", unpaid_invoice=True), "past_due", LONG_AGO, BillingState("suspended", LONG_AGO)),
        (SubscriptionFacts("past_due"), "past_due", NOW - GRACE, BillingState("suspended", NOW - GRACE)),
        # an open invoice whose payment failed makes an active subscription past due
        (SubscriptionFacts("active", unpaid_invoice=True), "active", None, BillingState("past_due", NOW)),
        # suspended stays suspended until paid, whatever the clock says
        (SubscriptionFacts("past_due", unpaid_invoice=True), "suspended", EARLIER, BillingState("suspended", EARLIER)),
        # paying resumes
        (SubscriptionFacts("active"), "suspended", LONG_AGO, BillingState("active")),
        (SubscriptionFacts("active"), "past_due", EARLIER, BillingState("active")),
        # Stripe gave up
        (SubscriptionFacts("unpaid", unpaid_invoice=True), "past_due", EARLIER, BillingState("suspended", EARLIER)),
        (SubscriptionFacts("incomplete_expired"), "past_due", None, BillingState("suspended", NOW)),
        # the subscription ended: paid up -> canceled, unpaid -> suspended
        (SubscriptionFacts("canceled"), "active", None, BillingState("canceled")),
        (SubscriptionFacts("canceled", unpaid_invoice=True), "past_due", EARLIER, BillingState("suspended", EARLIER)),
        (SubscriptionFacts("canceled"), "suspended", EARLIER, BillingState("canceled")),
    ],
)
def test_billing_state_is_derived_from_the_facts(
    facts: SubscriptionFacts, previous: str, since: datetime | None, expected: BillingState
) -> None:
    assert rules.derive_billing_state(facts, previous=previous, past_due_since=since, now=NOW, grace=GRACE) == expected


def test_every_derived_status_is_known_and_only_suspended_and_canceled_refuse_writes() -> None:
    assert set(rules.WRITES_REFUSED) == {"suspended", "canceled"}
    assert set(rules.WRITES_REFUSED) < set(rules.BILLING_STATUSES)


@pytest.mark.parametrize(
    ("stored", "since", "expected"),
    [
        ("past_due", EARLIER, "past_due"),
        ("past_due", NOW - GRACE, "suspended"),  # the worker has not run yet: enforced anyway
        ("past_due", None, "past_due"),
        ("active", LONG_AGO, "active"),
        ("suspended", None, "suspended"),
    ],
)
def test_effective_status_suspends_when_grace_is_over(stored: str, since: datetime | None, expected: str) -> None:
    assert rules.effective_status(stored, since, NOW, GRACE) == expected


def test_billing_warning_names_the_deadline() -> None:
    warning = rules.billing_warning("past_due", datetime(2026, 11, 29, 12, tzinfo=UTC))
    assert warning is not None and warning.startswith("past_due; suspends at 2026-11-29T12:00:00Z")
    assert "suspended" in (rules.billing_warning("suspended", None) or "")
    assert rules.billing_warning("active", None) is None and rules.billing_warning("trialing", None) is None


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        (datetime(2026, 11, 22, 12, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),
        # a time given in another zone is placed by its UTC instant
        (
            datetime.fromisoformat("2027-03-01T00:30:00+01:00"),
            datetime(2027, 2, 1, tzinfo=UTC),
            datetime(2027, 3, 1, tzinfo=UTC),
        ),
    ],
)
def test_usage_periods_are_calendar_months_in_utc(at: datetime, start: datetime, end: datetime) -> None:
    assert rules.usage_period(at) == (start, end)


def test_usage_key_names_tenant_and_period() -> None:
    assert rules.usage_key("t1", datetime(2026, 11, 1, tzinfo=UTC)) == "fealty-usage-t1-2026-11"


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal("49.00"), "GBP", 4900),
        (Decimal("0.505"), "EUR", 51),
        (Decimal("1200"), "JPY", 1200),
        (Decimal("1.2345"), "KWD", 1235),
    ],
)
def test_minor_units(amount: Decimal, currency: str, minor: int) -> None:
    assert rules.to_minor_units(amount, currency) == minor


FLAT = PlanTerms(
    currency="GBP",
    monthly_price=Decimal("49"),
    included_active_members=100,
    included_events=10_000,
    overage_price_per_member=Decimal("0.25"),
    overage_price_per_1000_events=Decimal("1.50"),
)
BLOCKS = PlanTerms(
    currency="EUR",
    pricing="per_block",
    monthly_price=Decimal("20"),
    block_size=500,
    included_events=5_000,
    overage_price_per_1000_events=Decimal("1.00"),
)


@pytest.mark.parametrize(
    ("terms", "active", "events", "members_over", "events_over", "amount", "quantity"),
    [
        (FLAT, 0, 0, 0, 0, Decimal("0.00"), 1),
        (FLAT, 100, 10_000, 0, 0, Decimal("0.00"), 1),
        (FLAT, 101, 10_000, 1, 0, Decimal("0.25"), 1),
        (FLAT, 140, 10_001, 40, 1, Decimal("11.50"), 1),  # 40 x 0.25 + one started thousand x 1.50
        (FLAT, 100, 12_500, 0, 2_500, Decimal("4.50"), 1),  # three started thousands
        (BLOCKS, 0, 0, 0, 0, Decimal("0.00"), 1),
        (BLOCKS, 500, 5_000, 0, 0, Decimal("0.00"), 1),
        (BLOCKS, 501, 10_000, 0, 0, Decimal("0.00"), 2),  # two blocks include 10,000 events
        (BLOCKS, 1_400, 16_000, 0, 1_000, Decimal("1.00"), 3),
    ],
)
def test_overage_and_quantity(
    terms: PlanTerms, active: int, events: int, members_over: int, events_over: int, amount: Decimal, quantity: int
) -> None:
    overage = rules.overage_of(terms, active_members=active, events=events)
    assert (overage.members, overage.events, overage.amount, overage.quantity) == (
        members_over,
        events_over,
        amount,
        quantity,
    )
    assert overage.currency == terms.currency


def test_projected_events_extrapolate_linearly() -> None:
    period = rules.usage_period(NOW)
    start, end = period
    halfway = start + (end - start) / 2
    assert rules.projected_events(300, period, halfway) == 600
    assert rules.projected_events(300, period, end + timedelta(days=3)) == 300
    assert rules.projected_events(0, period, start) == 0


def test_a_new_price_is_a_new_stripe_plan() -> None:
    assert rules.stripe_plan_id("growth", "GBP", 4900) == "fealty-growth-gbp-4900"
    assert rules.stripe_plan_id("growth", "GBP", 5900) != rules.stripe_plan_id("growth", "GBP", 4900)
    assert rules.stripe_product_id("growth") == "fealty-growth"
