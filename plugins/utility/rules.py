"""The power utility's rules as pure functions (no I/O): compensation, notice stages, the peak-time baseline."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from plugins.utility.settings import UtilitySettings

DOMESTIC_CLASSES = frozenset({"residential"})


def minor_unit(currency: str) -> Decimal:
    """The currency's minor unit (JPY and KRW have none; the rest of the tenants' currencies have cents)."""
    return Decimal(1) if currency.upper() in {"JPY", "KRW", "VND", "CLP", "ISK"} else Decimal("0.01")


def money(value: Decimal, currency: str) -> Decimal:
    return value.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Compensation:
    #: ``normal``, a severe category, or an exempt one.
    category: str
    #: ``domestic`` or ``business``.
    kind: str
    hours: Decimal
    amount: Decimal
    #: Why: ``within_standard``, ``exempt``, ``payment``, ``payment+increments``, ``capped``.
    basis: str
    increments: int


def hours_between(start: datetime, end: datetime) -> Decimal:
    """Whole minutes, as hours (two decimals): what a customer would count on a clock."""
    minutes = max(0, int((end - start).total_seconds() // 60))
    return (Decimal(minutes) / Decimal(60)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def compensation(
    settings: UtilitySettings, category: str, customer_class: str, minutes: int, currency: str
) -> Compensation:
    """What one account is owed for an outage of ``minutes`` in ``category`` (Guaranteed Standards).

    Normal weather: nothing when restored within the threshold (12 h; exactly 12 h is within); else the payment for
    the customer's kind (95 domestic, 190 business) plus the increment (45) for each *complete* further period
    (12 h), capped when the tenant sets a cap. Severe categories: their threshold (24 h / 48 h), payment (80) and
    increment (40 per complete further 6 h), capped (2,000), domestic and business alike. Exempt categories: nothing.
    """
    kind = "domestic" if customer_class in DOMESTIC_CLASSES else "business"
    hours = (Decimal(max(0, minutes)) / Decimal(60)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if category in settings.exempt_categories:
        return Compensation(category, kind, hours, money(Decimal(0), currency), "exempt", 0)
    if category == "normal":
        threshold, increment_hours = settings.normal_threshold_hours, settings.normal_increment_hours
        payment = settings.normal_payment_domestic if kind == "domestic" else settings.normal_payment_business
        increment, cap = settings.normal_increment, settings.normal_cap
    else:
        severe = settings.severe_categories[category]
        threshold, increment_hours = severe.threshold_hours, severe.increment_hours
        payment, increment, cap = severe.payment, severe.increment, severe.cap
    if minutes <= threshold * 60:
        return Compensation(category, kind, hours, money(Decimal(0), currency), "within_standard", 0)
    increments = (minutes - threshold * 60) // (increment_hours * 60)
    amount = payment + increment * increments
    basis = "payment+increments" if increments else "payment"
    if cap is not None and amount > cap:
        amount, basis = cap, "capped"
    return Compensation(category, kind, hours, money(amount, currency), basis, increments)


def planned_counted_from(
    settings: UtilitySettings,
    zone: ZoneInfo,
    window: tuple[datetime, datetime],
    out_from: datetime,
    notified_at: datetime | None,
) -> datetime:
    """Where the restoration standard's clock starts for one account of a planned outage (``window``: its start and
    end as the customers were last told).

    Under the UK Guaranteed Standards (SI 2015/699) a planned interruption notified with the required notice
    (``planned_min_notice_days``, 2 days; a notice counts when it went by that moment plus ``late_grace_minutes``,
    as a late notice does) is not a failure as long as the supply is back by the end of the notified window: when
    it overruns, it is compensable like an unplanned interruption *from the window's end* (the normal 12 hours then
    run from there). An account not told the window with that notice (told late, or never) is compensable like an
    unplanned interruption from the moment it lost supply (``out_from``)."""
    starts_at, ends_at = window
    required = days_before(starts_at, settings.planned_min_notice_days, zone)
    if notified_at is not None and notified_at <= required + timedelta(minutes=settings.late_grace_minutes):
        return max(out_from, ends_at)
    return out_from


def points_for(amount: Decimal, settings: UtilitySettings) -> int:
    """Currency as points at the tenant's rate (half up)."""
    return int((amount * settings.points_per_unit).to_integral_value(rounding=ROUND_HALF_UP))


# --- planned outage notices ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    #: ``notice``, ``reminder:6``..., or ``priority_notice``.
    name: str
    days: int
    due_at: datetime
    priority: bool


def days_before(start: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The same wall-clock time ``days`` calendar days before ``start`` in ``zone`` (right across DST changes: 7 days
    before 09:00 is 09:00, whether that is 167, 168 or 169 hours earlier). A wall time that does not exist that day
    (the spring gap) is read as the clock reads it after the change."""
    local = start.astimezone(zone)
    day = local.date() - timedelta(days=days)
    wall = datetime(day.year, day.month, day.day, local.hour, local.minute, local.second, tzinfo=zone)
    return wall.astimezone(UTC)


def planned_stages(settings: UtilitySettings, start: datetime, zone: ZoneInfo) -> list[Stage]:
    """The notice stages of a planned outage starting at ``start``, earliest first: the priority customers' notice,
    everyone's notice, then the reminders."""
    stages = [
        Stage(
            "priority_notice",
            settings.priority_notice_days,
            days_before(start, settings.priority_notice_days, zone),
            True,
        ),
        Stage("notice", settings.notice_days, days_before(start, settings.notice_days, zone), False),
    ]
    for days in sorted(set(settings.reminder_days), reverse=True):
        stages.append(Stage(f"reminder:{days}", days, days_before(start, days, zone), False))
    return stages


def is_late(stage: Stage, now: datetime, settings: UtilitySettings) -> bool:
    return now > stage.due_at + timedelta(minutes=settings.late_grace_minutes)


def etr_changed(old: datetime | None, new: datetime | None, settings: UtilitySettings) -> bool:
    """An ETR change worth telling: set for the first time, cleared, or moved by more than the threshold."""
    if old is None or new is None:
        return old != new
    return abs((new - old).total_seconds()) > settings.etr_change_minutes * 60


def is_still_out(text: str, settings: UtilitySettings) -> bool:
    """A reply saying the power is still out (any of the tenant's phrases, case and spacing ignored)."""
    said = " ".join(text.casefold().split()).strip(" .!。！")
    return any(" ".join(p.casefold().split()) in said for p in settings.still_out_replies)


# --- peak-time rebates -----------------------------------------------------------------------------------------------


def similar_days(event_day: date, before: int) -> list[date]:
    """The last ``before`` days like ``event_day`` (weekdays for a weekday, weekend days for a weekend day),
    latest first, never the event's own day."""
    weekend = event_day.weekday() >= 5
    found: list[date] = []
    day = event_day
    while len(found) < before:
        day -= timedelta(days=1)
        if (day.weekday() >= 5) == weekend:
            found.append(day)
    return found


def baseline(usage_by_day: dict[date, Decimal], days: Sequence[date], top: int) -> Decimal | None:
    """The mean of the ``top`` highest usages among ``days`` (the days with reads only); None without enough reads
    (fewer than ``top`` days with reads): no rebate can be computed fairly."""
    usages = sorted((usage_by_day[d] for d in days if d in usage_by_day), reverse=True)
    if len(usages) < top:
        return None
    chosen = usages[:top]
    return (sum(chosen, Decimal(0)) / Decimal(top)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def peak_rebate(
    baseline_kwh: Decimal | None, event_kwh: Decimal, rate: Decimal, currency: str
) -> tuple[Decimal, Decimal]:
    """(kWh saved, rebate): what was used below the baseline during the event, never negative."""
    if baseline_kwh is None:
        return Decimal(0), money(Decimal(0), currency)
    saved = max(Decimal(0), baseline_kwh - event_kwh).quantize(Decimal("0.001"))
    return saved, money(saved * rate, currency)


def announce_at(start: datetime, days: int, zone: ZoneInfo) -> datetime:
    """When a peak event is announced: the start of the local day ``days`` before the event's day ("the day
    before": from midnight, so the message goes at the first moment quiet hours allow that day)."""
    day = start.astimezone(zone).date() - timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def sum_kwh(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal(0))


def within_months(start: datetime, end: datetime, months: int) -> bool:
    """``end`` is before ``start`` plus ``months`` calendar months (the 12-month claw-back window)."""
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    month += 1
    limit = start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))
    return end < limit
