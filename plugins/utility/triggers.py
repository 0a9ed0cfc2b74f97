"""The care occasions the utility plugin raises (``GET /v1/care/triggers``), with their variables and samples."""

from __future__ import annotations

from typing import Any, Literal

from core import CareTrigger

_OUTAGE: dict[str, str] = {
    "outage_id": "str",
    "kind": "str",
    "account_number": "str",
    "premises_address": "str",
    "starts_at": "datetime",
    "ends_at": "datetime",
    "etr": "datetime",
    "reason": "str",
    "contact_line": "str",
    "restored_at": "datetime",
    "stage": "str",
    "late": "bool",
}
_SAMPLE: dict[str, Any] = {
    "outage_id": "0190c0de-0000-7000-8000-000000000001",
    "kind": "planned",
    "account_number": "3200123456",
    "premises_address": "88 Zhongshan Road, Nanjing",
    "starts_at": "2027-03-10T08:00:00+08:00",
    "ends_at": "2027-03-10T16:00:00+08:00",
    "etr": None,
    "reason": "Line maintenance",
    "contact_line": "95598",
    "restored_at": None,
    "stage": "notice",
    "late": False,
}


def _trigger(
    name: str,
    description: str,
    purpose: Literal["service", "marketing", "safety"],
    category: str,
    extra: dict[str, str],
    samples: dict[str, Any],
) -> CareTrigger:
    return CareTrigger(name, description, purpose, category, _OUTAGE | extra, _SAMPLE | samples)


TRIGGERS = (
    _trigger(
        "utility.planned_notice",
        "A planned outage's notice at its lead time (priority customers earlier); late says it went after its due "
        "moment.",
        "service",
        "notice",
        {"days_before": "int"},
        {"days_before": 7},
    ),
    _trigger(
        "utility.planned_reminder",
        "A reminder of a planned outage (6 days and 1 day before by default).",
        "service",
        "reminder",
        {"days_before": "int"},
        {"stage": "reminder:1", "days_before": 1},
    ),
    _trigger(
        "utility.planned_changed",
        "A planned outage's window changed: told to everyone already told.",
        "service",
        "notice",
        {"previous_starts_at": "datetime", "previous_ends_at": "datetime"},
        {
            "stage": "changed:1",
            "previous_starts_at": "2027-03-09T08:00:00+08:00",
            "previous_ends_at": "2027-03-09T16:00:00+08:00",
        },
    ),
    _trigger(
        "utility.planned_cancelled",
        "A planned outage was cancelled: told to everyone already told.",
        "service",
        "notice",
        {},
        {"stage": "cancelled"},
    ),
    _trigger(
        "utility.outage_alert",
        "An unplanned outage was confirmed: a safety alert with the estimated restoration time.",
        "safety",
        "notice",
        {},
        {"kind": "unplanned", "stage": "alert", "etr": "2027-03-10T20:00:00+08:00", "ends_at": None},
    ),
    _trigger(
        "utility.etr_update",
        "An unplanned outage's estimated restoration time changed by more than the tenant's threshold.",
        "safety",
        "notice",
        {"previous_etr": "datetime"},
        {"kind": "unplanned", "stage": "etr:1", "etr": "2027-03-10T22:00:00+08:00", "previous_etr": None},
    ),
    _trigger(
        "utility.restored",
        "The supply is back.",
        "service",
        "notice",
        {},
        {"kind": "unplanned", "stage": "restored", "restored_at": "2027-03-10T23:00:00+08:00"},
    ),
    _trigger(
        "utility.compensation",
        "Compensation under the guaranteed standards was paid (points or a bill credit).",
        "service",
        "notice",
        {
            "amount": "decimal",
            "paid_now": "decimal",
            "currency": "str",
            "hours": "decimal",
            "method": "str",
            "points": "int",
            "category": "str",
        },
        {
            "kind": "unplanned",
            "stage": "compensation",
            "amount": "95.00",
            "paid_now": "95.00",
            "currency": "GBP",
            "hours": "15.00",
            "method": "bill_credit",
            "points": 0,
            "category": "normal",
        },
    ),
    CareTrigger(
        "utility.peak_event",
        "A peak-time event announced the day before: use less during it and earn a rebate per kWh saved.",
        "service",
        "notice",
        {
            "peak_event_id": "str",
            "name": "str",
            "starts_at": "datetime",
            "ends_at": "datetime",
            "rate_per_kwh": "decimal",
            "account_number": "str",
        },
        {
            "peak_event_id": "0190c0de-0000-7000-8000-000000000002",
            "name": "Evening peak",
            "starts_at": "2027-07-14T17:00:00+08:00",
            "ends_at": "2027-07-14T20:00:00+08:00",
            "rate_per_kwh": "1.25",
            "account_number": "3200123456",
        },
    ),
)
