"""A tenant's microfinance settings (``PATCH /v1/program {"plugin_settings": {"microfinance": {...}}}``).

Every figure of docs/domain.md ("Rural microfinance") is a field here with that page's figure as its default; unknown
fields are refused, so a misspelt setting is a 422 naming ``plugin_settings.microfinance.<field>``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Component = Literal["penalty", "fee", "interest", "principal"]
COMPONENTS: tuple[Component, ...] = ("penalty", "fee", "interest", "principal")
Days = Annotated[int, Meta(ge=1, le=3650)]
Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
TierCode = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class MicrofinanceSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Instalments of all the borrower's active loans at most this share of monthly household income (0.5: 50%).
    max_repayment_share: Annotated[float, Meta(ge=0, le=1)] = 0.5
    #: Order in which a repayment pays each instalment's parts (Fineract's default: penalties, fees, interest,
    #: principal), oldest instalment first.
    allocation_order: list[Component] = msgspec.field(default_factory=lambda: list(COMPONENTS))
    #: Rounding of every amount to the currency's minor unit (Fineract's default is half-even).
    rounding: Literal["half_even", "half_up"] = "half_even"
    #: Upper bounds of the arrears buckets in days past due: 1-30, 31-60, 61-90, 91+.
    arrears_buckets: Annotated[list[Days], Meta(min_length=1, max_length=12)] = msgspec.field(
        default_factory=lambda: [30, 60, 90]
    )
    #: China's five-category classification by days past due: normal (0), special mention (1..90), substandard
    #: (91..180), doubtful (181..360), loss (361+). None: not shown.
    five_category_bounds: Annotated[list[Days], Meta(min_length=3, max_length=3)] | None = msgspec.field(
        default_factory=lambda: [90, 180, 360]
    )
    #: Joint-liability groups: members at most.
    group_size: Annotated[int, Meta(ge=2, le=50)] = 5
    #: A use-of-funds visit within this many days of disbursement, then a visit every ``visit_every_days``.
    use_of_funds_days: Days = 30
    visit_every_days: Days = 30
    #: Visit tasks are raised this many days before they fall due.
    visit_lead_days: Annotated[int, Meta(ge=0, le=60)] = 7
    #: Falling attendance: present at fewer than this share of the group's last ``attendance_meetings`` meetings.
    attendance_warning_share: Annotated[float, Meta(ge=0, le=1)] = 0.75
    attendance_meetings: Annotated[int, Meta(ge=1, le=52)] = 4
    #: Days to do a follow-up task raised by an early-warning signal.
    task_due_days: Annotated[int, Meta(ge=0, le=60)] = 3
    #: Points per instalment paid in full on or before its due date, and a bonus every ``streak_length`` in a row.
    points_per_on_time_instalment: Annotated[int, Meta(ge=0, le=1_000_000)] = 10
    streak_length: Annotated[int, Meta(ge=2, le=520)] = 6
    streak_bonus: Annotated[int, Meta(ge=0, le=1_000_000)] = 50
    #: Points credited once when a loan closes with a clean record.
    clean_cycle_bonus: Annotated[int, Meta(ge=0, le=1_000_000)] = 100
    #: A clean record: never more than this many days past due.
    clean_max_days_past_due: Annotated[int, Meta(ge=0, le=365)] = 0
    #: The tier a borrower with a clean record is given (信用户, credit household); None: no tier.
    credit_household_tier: TierCode | None = "credit_household"
    #: Interest rebate a perfectly repaid loan is eligible for, in percentage points of the annual rate.
    interest_rebate_points: Annotated[float, Meta(ge=0, le=100)] = 3.0
    #: Progressive lending: the next loan may be this much larger after a clean cycle, up to the product's maximum.
    next_cycle_increase_percent: Annotated[int, Meta(ge=0, le=1000)] = 20
    #: Fair collection: contact hours (local), at most ``collection_contacts_per_7_days`` in 7 days across channels.
    contact_hours: tuple[Clock, Clock] = ("08:00", "19:00")
    collection_contacts_per_7_days: Annotated[int, Meta(ge=1, le=100)] = 7
    #: A repayment reminder this many days before an instalment falls due (None: none).
    reminder_days_before: Annotated[int, Meta(ge=0, le=30)] | None = 1
    #: Set up the credit-household tier when the program has no tiers.
    seed_defaults: bool = True
