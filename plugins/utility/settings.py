"""A tenant's power-utility settings (``PATCH /v1/program {"plugin_settings": {"utility": {...}}}``).

Every figure of docs/domain.md ("Power utilities") is a field here with that page's figure as its default (the UK's
Guaranteed Standards for compensation, China's 7-day planned-outage notice); a tenant in another country sets its
own. Unknown fields are refused, so a misspelt setting is a 422 naming ``plugin_settings.utility.<field>``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
#: An amount of the tenant's currency (checked non-negative in ``__post_init__``: msgspec bounds no Decimal).
Money = Decimal
Hours = Annotated[int, Meta(ge=1, le=24 * 30)]
Days = Annotated[int, Meta(ge=0, le=365)]
Points = Annotated[int, Meta(ge=0, le=10_000_000)]
Words = Annotated[str, Meta(min_length=1, max_length=200)]

#: The Priority Services Register's categories (Ofgem's needs codes, grouped as docs/domain.md lists them).
PSR_CATEGORIES = (
    "medical_equipment",
    "pension_age",
    "disability",
    "children_under_5",
    "pregnancy",
    "after_hospital",
)
CUSTOMER_CLASSES = ("residential", "sme", "large", "public")


class SevereCategory(msgspec.Struct, forbid_unknown_fields=True):
    """A severe-weather category: no payment before ``threshold_hours``; then ``payment`` plus ``increment`` for each
    complete further ``increment_hours``, at most ``cap`` in all (docs/domain.md: 24 h or 48 h, GBP 80 plus 40 per
    further 6 hours, cap GBP 2,000; domestic and business alike)."""

    threshold_hours: Hours
    payment: Money
    increment: Money
    increment_hours: Hours
    cap: Money | None = None


def _default_severe() -> dict[str, SevereCategory]:
    return {
        "severe_1": SevereCategory(24, Decimal(80), Decimal(40), 6, Decimal(2000)),
        "severe_2": SevereCategory(48, Decimal(80), Decimal(40), 6, Decimal(2000)),
    }


class ServiceLevel(msgspec.Struct, forbid_unknown_fields=True):
    """What an SME of a credit rating gets: a response time, a priority line, invitations to events."""

    response_hours: Hours
    priority_line: bool = False
    events: bool = False
    #: Restricted service (e.g. prepayment only, no deferred payment): a low rating.
    restricted: bool = False


def _default_service_levels() -> dict[str, ServiceLevel]:
    return {
        "A": ServiceLevel(4, priority_line=True, events=True),
        "B": ServiceLevel(8, priority_line=True),
        "C": ServiceLevel(24),
        "D": ServiceLevel(48, restricted=True),
    }


class UtilitySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # --- accounts ----------------------------------------------------------------------------------------------
    #: Categories of needs the tenant records beyond the register's own (``PSR_CATEGORIES``).
    psr_extra_categories: Annotated[list[Code], Meta(max_length=50)] = msgspec.field(default_factory=list)
    #: A PSR record is reviewed this many days after it was recorded when no review date is given (Ofgem: every
    #: two years).
    psr_review_days: Annotated[int, Meta(ge=1, le=3650)] = 730
    #: SME service by credit rating (tenant's ratings, e.g. A-D).
    service_levels: dict[Annotated[str, Meta(min_length=1, max_length=8)], ServiceLevel] = msgspec.field(
        default_factory=_default_service_levels
    )
    #: Customer classes whose accounts are priority customers (earlier notice, a call task), besides PSR accounts.
    priority_classes: list[Literal["residential", "sme", "large", "public"]] = msgspec.field(
        default_factory=lambda: ["large"]
    )
    #: Who is given call tasks for priority accounts without a named account manager.
    priority_desk: Words = "priority-desk"
    # --- planned outages ---------------------------------------------------------------------------------------
    #: The notice, days before the start (China's supply regulation: at least 7; UK legal minimum 2).
    notice_days: Annotated[int, Meta(ge=1, le=90)] = 7
    #: Reminders, days before the start (docs/domain.md: 6 and 1).
    reminder_days: Annotated[list[Annotated[int, Meta(ge=1, le=90)]], Meta(max_length=5)] = msgspec.field(
        default_factory=lambda: [6, 1]
    )
    #: Priority customers' notice, days before (earlier than everyone's), with a call task for their manager.
    priority_notice_days: Annotated[int, Meta(ge=1, le=90)] = 10
    #: A notice sent more than this many minutes after its due moment says it is late.
    late_grace_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 60
    #: The notice a planned interruption needs, days before its start (UK, SI 2015/699: 2 days). An account told
    #: the window at least this early is owed compensation only when the supply comes back late, counted from the
    #: window's end; an account told later (or never) is compensated as for an unplanned outage, from the start.
    planned_min_notice_days: Annotated[int, Meta(ge=0, le=90)] = 2
    # --- unplanned outages -------------------------------------------------------------------------------------
    #: An ETR change larger than this (minutes) is told to every affected account.
    etr_change_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 30
    #: Replies that mean "the power is still out", any language (matched case-insensitively, trimmed).
    still_out_replies: Annotated[list[Words], Meta(max_length=20)] = msgspec.field(
        default_factory=lambda: ["still out", "no power", "仍然停电", "还在停电"]
    )
    # --- compensation (UK Guaranteed Standards) ----------------------------------------------------------------
    #: Normal weather: restored within this many hours, or a payment is due.
    normal_threshold_hours: Hours = 12
    normal_payment_domestic: Money = Decimal(95)
    normal_payment_business: Money = Decimal(190)
    #: ... plus this for each complete further ``normal_increment_hours``.
    normal_increment: Money = Decimal(45)
    normal_increment_hours: Hours = 12
    #: Normal-weather cap (the UK sets none).
    normal_cap: Money | None = None
    severe_categories: dict[Code, SevereCategory] = msgspec.field(default_factory=_default_severe)
    #: Outage categories that pay nothing (exceptional events the regulations exempt).
    exempt_categories: list[Code] = msgspec.field(default_factory=lambda: ["exempt"])
    #: Paid as points (``points_per_unit`` per currency unit) or as a bill credit for the tenant's billing system
    #: (announced by the ``utility.bill_credits`` webhook event).
    compensation_payment: Literal["points", "bill_credit"] = "bill_credit"
    #: Points per currency unit, for compensation and credits paid as points.
    points_per_unit: Decimal = Decimal(100)
    #: A customer the automatic payment missed may claim up to this many days after restoration (UK: 3 months).
    claim_window_days: Annotated[int, Meta(ge=1, le=3650)] = 90
    # --- rewards -----------------------------------------------------------------------------------------------
    #: Points for a bill paid on or before its due date (nothing when late).
    on_time_points: Points = 50
    #: One-time credits (currency), paid as points at ``points_per_unit``; clawed back when cancelled within
    #: ``clawback_months`` (docs/domain.md: 5 each).
    paperless_credit: Money = Decimal(5)
    autopay_credit: Money = Decimal(5)
    clawback_months: Annotated[int, Meta(ge=0, le=120)] = 12
    #: Peak-time rebate per kWh saved against the baseline (docs/domain.md: 1.25), currency, paid as points.
    peak_rebate_per_kwh: Money = Decimal("1.25")
    #: Baseline: the mean of the highest ``baseline_top`` of the last ``baseline_days`` similar days (weekdays for
    #: a weekday event, weekend days for a weekend event) before the event, over the same hours.
    baseline_days: Annotated[int, Meta(ge=1, le=60)] = 10
    baseline_top: Annotated[int, Meta(ge=1, le=60)] = 3
    #: Peak events are announced this many days before (docs/domain.md: the day before).
    peak_notice_days: Annotated[int, Meta(ge=0, le=30)] = 1

    def __post_init__(self) -> None:
        amounts = {
            name: getattr(self, name)
            for name in (
                "normal_payment_domestic",
                "normal_payment_business",
                "normal_increment",
                "normal_cap",
                "points_per_unit",
                "paperless_credit",
                "autopay_credit",
                "peak_rebate_per_kwh",
            )
        }
        for code, category in self.severe_categories.items():
            for part in ("payment", "increment", "cap"):
                amounts[f"severe_categories.{code}.{part}"] = getattr(category, part)
        for name, value in amounts.items():
            if value is not None and not (value.is_finite() and 0 <= value <= 1_000_000):
                raise ValueError(f"field `{name}` must be between 0 and 1000000")
        if self.baseline_top > self.baseline_days:
            raise ValueError("baseline_top must be at most baseline_days")
        if any(d >= self.notice_days for d in self.reminder_days):
            raise ValueError("field `reminder_days` must be fewer days than notice_days")
        if self.priority_notice_days < self.notice_days:
            raise ValueError("priority_notice_days must be at least notice_days")
        overlap = set(self.exempt_categories) & (set(self.severe_categories) | {"normal"})
        if overlap:
            raise ValueError(f"exempt_categories overlaps the paying categories: {sorted(overlap)}")

    def psr_categories(self) -> tuple[str, ...]:
        return PSR_CATEGORIES + tuple(c for c in self.psr_extra_categories if c not in PSR_CATEGORIES)

    def weather_categories(self) -> tuple[str, ...]:
        return ("normal", *self.severe_categories, *self.exempt_categories)
