"""The billing gate: what a tenant's billing standing lets a request do. The HTTP middleware asks it once per request
(:func:`admit`) and sends the warning it returns; the refusals' words (402 problems saying how to resume) live here,
with billing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.billing import rules
from core.errors import FealtyError, SubscriptionEnded, TenantSuspended


@dataclass(frozen=True)
class Admission:
    #: What ``Fealty-Billing-Warning`` says (None when in good standing): on every response, refusals included.
    warning: str | None
    #: The 402 problem to answer instead, when the request may not proceed.
    refusal: FealtyError | None


def admit(
    billing_status: str | None,
    past_due_since: datetime | None,
    now: datetime,
    grace: timedelta,
    *,
    writes: bool,
    allowed_when_suspended: bool,
) -> Admission:
    """The ``Fealty-Billing-Warning`` a response carries, and the 402 problem refusing a write that a suspended (or
    ended) subscription may not make."""
    status = rules.effective_status(billing_status or "none", past_due_since, now, grace)
    deadline = rules.grace_ends_at(past_due_since, grace) if status == "past_due" else None
    warning = rules.billing_warning(status, deadline)
    if not writes or status not in rules.WRITES_REFUSED or allowed_when_suspended:
        return Admission(warning, None)
    if status == "canceled":
        return Admission(
            warning,
            SubscriptionEnded(
                "Writes are refused because the subscription has ended. Reads, exports and billing keep working; "
                "start a subscription (POST /v1/billing/subscription) to resume. Nothing was deleted.",
            ),
        )
    return Admission(
        warning,
        TenantSuspended(
            "Writes are suspended because the subscription is unpaid. Reads, exports and billing keep working; "
            "pay the open invoice (POST /v1/billing/pay) or attach a new payment method "
            "(POST /v1/billing/payment-method) to resume at once. Nothing was deleted.",
        ),
    )
