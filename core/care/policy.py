"""Protection: whether a care message may go to a member now, later, or never. One pure function, no I/O.

:func:`decide` is applied just before a message is queued and again at delivery (under a lock, by
:func:`core.care.protection.reserve`). It answers :class:`Send`, :class:`Defer` (until the next allowed moment,
never dropped) or :class:`Suppress` (with a stable reason code), from three sets of facts:

* :class:`MessageFacts` -- the message: channel, purpose (service, marketing, safety), category (greeting,
  notice, reminder, collection, survey...), how long it is worth sending (``valid_until``), and what plugins said
  about it (``fealty_care_protection``);
* :class:`MemberFacts` -- the member: time zone, consent per channel and purpose, channels opted out of, whether the
  address is on the tenant's suppression list, what was sent to them on each recent local day, the tenant's holidays;
* :class:`ProtectionSettings` -- the tenant's tunables: quiet hours, greeting hours, caps, categories that never go
  out on the same day, categories held on holidays.

The rules, in order (the first that applies decides a suppression; every timing rule is then satisfied at once by
the earliest instant that passes all of them):

1. past ``valid_until``: suppressed ``expired``;
2. an anonymised (inactive) member: ``member_inactive``; an address on the suppression list (bounced, complained,
   blocked): ``address_suppressed`` -- this holds even for safety messages, since no one receives them there;
3. consent: marketing needs a grant for the channel (``no_consent``); a channel the member opted out of for service
   too (STOP) takes service messages (``opted_out``); safety always goes;
4. a plugin's :class:`Suppress` (e.g. ``microfinance.fair_collection``);
5. timing, skipped by safety messages: quiet hours (default 21:00-08:00, ``quiet_hours``), greetings only in greeting
   hours (default 09:00-20:00, ``greeting_hours``), marketing caps per local day, rolling 7 local days and local
   calendar month (``daily_cap``, ``weekly_cap``, ``monthly_cap``), never two exclusive categories (a greeting and a
   payment reminder) to one member on the same local day (``category_conflict``), collection contact never on a
   holiday (``holiday``), and any plugin's :class:`Defer`;
6. the earliest moment satisfying all of them is ``now`` (:class:`Send`), a later moment before ``valid_until``
   (:class:`Defer` with the reason that held it first) or none in time (:class:`Suppress` ``expired`` with that
   reason as ``detail``).

Local times are computed in the member's IANA zone with :mod:`zoneinfo`, so the deferred instant is right across a
DST change (08:00 local is 07:00 UTC on one side of it and 06:00 on the other in Paris). A wall-clock boundary that
falls twice (the autumn hour) is taken at its first occurrence; one that does not exist (the spring gap) is taken
one gap-length later, as a clock that was not set forward would read it.

The ``webhook`` channel goes to the tenant's own system, not to the member: consent, suppressions and quiet hours are
the tenant's to apply there, so only validity, the member's state, plugin verdicts, caps and categories apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Channel = Literal["email", "sms", "webhook"]
Purpose = Literal["service", "marketing", "safety"]

#: Stable reason codes (the record shows them; tests and tenants rely on them).
REASONS: dict[str, str] = {
    "expired": "the message's validity ended before it could be sent",
    "member_inactive": "the member was anonymised",
    "address_suppressed": "the address is on the tenant's suppression list (bounce, complaint or blocked)",
    "no_address": "the member has no address for this channel",
    "opted_out": "the member opted out of this channel",
    "no_consent": "marketing without the member's consent for this channel",
    "quiet_hours": "quiet hours in the member's time zone",
    "greeting_hours": "greetings go out only in greeting hours",
    "daily_cap": "the member's marketing messages for the day were reached",
    "weekly_cap": "the member's marketing messages for 7 days were reached",
    "monthly_cap": "the member's marketing messages for the month were reached",
    "category_conflict": "a message of an exclusive category (a greeting and a payment reminder) went out that day",
    "holiday": "no collection contact on a holiday",
}

#: How far ahead :func:`decide` looks for an allowed moment (a monthly cap can hold a message for a month).
HORIZON_DAYS = 400


# --- verdicts ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send it now."""


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: try again at ``until`` (UTC), the next moment every rule allows."""

    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Suppress:
    """Never send it. ``reason`` is a stable code; ``detail`` says more (for ``expired``: what held it)."""

    reason: str
    detail: str = ""


Verdict = Send | Defer | Suppress


# --- facts ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFacts:
    channel: str
    purpose: str
    category: str = "notice"
    #: After this instant the message is worth nothing (a birthday greeting next week): suppressed, not sent late.
    valid_until: datetime | None = None
    #: The trigger that made it (``birthday``, ``microfinance.repayment_due``...), for plugins' protections.
    trigger: str = ""
    #: What plugins' ``fealty_care_protection`` answered (None answers left out); most restrictive wins.
    plugin_verdicts: tuple[Verdict, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberFacts:
    #: The member's IANA time zone (the tenant's when the member has none).
    timezone: str
    #: Explicit consents from the member's consent history: ``(channel, purpose) -> granted``. Absent: never given.
    consents: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    #: Channels the member opted out of entirely (service too), e.g. an SMS STOP.
    opted_out_channels: frozenset[str] = frozenset()
    #: The member's address on this channel is on the tenant's suppression list.
    suppressed: bool = False
    #: The member has an address on this channel (webhooks need none).
    has_address: bool = True
    #: False once the member is anonymised.
    active: bool = True
    #: Messages sent (reserved) to the member per local day, purpose and category, for recent days.
    sent: Mapping[tuple[date, str, str], int] = field(default_factory=dict)
    #: The tenant's holidays around now (local dates).
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def count_between(self, first: date, last: date, *, purpose: str | None = None, category: str | None = None) -> int:
        """Messages sent on local days ``first..last`` (inclusive), optionally of one purpose and category."""
        return sum(
            n
            for (day, p, c), n in self.sent.items()
            if first <= day <= last and (purpose is None or p == purpose) and (category is None or c == category)
        )

    def categories_on(self, day: date) -> frozenset[str]:
        return frozenset(c for (d, _, c), n in self.sent.items() if d == day and n > 0)


@dataclass(frozen=True, slots=True)
class ProtectionSettings:
    """A tenant's protections. Every window is ``(start, end)`` in local wall-clock time; it may wrap midnight."""

    #: No message (safety apart) in this window. None: no quiet hours.
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(8, 0))
    #: Greetings only inside this window.
    greeting_hours: tuple[time, time] | None = (time(9, 0), time(20, 0))
    greeting_categories: frozenset[str] = frozenset({"greeting"})
    #: Marketing caps per member (None: no cap): per local day, per 7 local days (rolling), per local calendar month.
    marketing_per_day: int | None = 1
    marketing_per_7_days: int | None = None
    marketing_per_month: int | None = 8
    #: Pairs of categories never sent to one member on the same local day.
    exclusive_categories: frozenset[frozenset[str]] = frozenset(
        {frozenset({"greeting", "reminder"}), frozenset({"greeting", "collection"})}
    )
    #: Categories never sent on the tenant's holidays.
    holiday_categories: frozenset[str] = frozenset({"collection"})


# --- wall-clock arithmetic in a zone ----------------------------------------------------------------------------------


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant when the wall clock in ``zone`` reads ``at`` on ``day`` (first occurrence when it reads it
    twice; one gap-length later when it never does)."""
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


def in_window(at: time, window: tuple[time, time]) -> bool:
    start, end = window
    if start == end:
        return True
    if start < end:
        return start <= at < end
    return at >= start or at < end


def next_in_window(instant: datetime, window: tuple[time, time], zone: ZoneInfo) -> datetime:
    """The earliest instant at or after ``instant`` whose local time in ``zone`` lies in ``window``."""
    local = instant.astimezone(zone)
    if in_window(local.time(), window):
        return instant
    start = window[0]
    today_start = local_instant(local.date(), start, zone)
    if today_start > instant:
        return today_start
    return local_instant(local.date() + timedelta(days=1), start, zone)


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    return local_instant(day, time(0, 0), zone)


# --- the policy -------------------------------------------------------------------------------------------------------


def _restrictive(verdicts: tuple[Verdict, ...]) -> tuple[Suppress | None, Defer | None]:
    suppress = next((v for v in verdicts if isinstance(v, Suppress)), None)
    defers = [v for v in verdicts if isinstance(v, Defer)]
    return suppress, max(defers, key=lambda d: d.until, default=None)


def _day_hold(day: date, message: MessageFacts, member: MemberFacts, settings: ProtectionSettings) -> str:
    """Why nothing of this message may go out on local ``day`` ('' when it may)."""
    if message.category in settings.holiday_categories and day in member.holidays:
        return "holiday"
    if message.purpose == "marketing":
        per_day, per_week, per_month = (
            settings.marketing_per_day,
            settings.marketing_per_7_days,
            settings.marketing_per_month,
        )
        if per_day is not None and member.count_between(day, day, purpose="marketing") >= per_day:
            return "daily_cap"
        if per_week is not None and member.count_between(day - timedelta(days=6), day, purpose="marketing") >= per_week:
            return "weekly_cap"
        if per_month is not None and member.count_between(day.replace(day=1), day, purpose="marketing") >= per_month:
            return "monthly_cap"
    sent_that_day = member.categories_on(day)
    for pair in settings.exclusive_categories:
        if message.category in pair and (pair - {message.category}) & sent_that_day:
            return "category_conflict"
    return ""


def _earliest(
    message: MessageFacts, member: MemberFacts, settings: ProtectionSettings, now: datetime, plugin_defer: Defer | None
) -> tuple[datetime, str]:
    """The earliest instant at or after ``now`` that every timing rule allows, and the reason that first held it."""
    zone = member.zone
    windows: list[tuple[tuple[time, time], str]] = []
    if settings.quiet_hours is not None and message.channel != "webhook":
        quiet_start, quiet_end = settings.quiet_hours
        windows.append(((quiet_end, quiet_start), "quiet_hours"))
    if settings.greeting_hours is not None and message.category in settings.greeting_categories:
        windows.append((settings.greeting_hours, "greeting_hours"))
    candidate, first_reason = now, ""
    if plugin_defer is not None and plugin_defer.until > candidate:
        candidate, first_reason = plugin_defer.until, plugin_defer.reason
    limit = now + timedelta(days=HORIZON_DAYS)
    while candidate < limit:
        day = candidate.astimezone(zone).date()
        hold = _day_hold(day, message, member, settings)
        if hold:
            candidate, first_reason = start_of_day(day + timedelta(days=1), zone), first_reason or hold
            continue
        moved = False
        for window, reason in windows:
            later = next_in_window(candidate, window, zone)
            if later != candidate:
                candidate, first_reason, moved = later, first_reason or reason, True
                break
        if not moved:
            return candidate, first_reason
    return candidate, first_reason or "expired"


def decide(message: MessageFacts, member: MemberFacts, settings: ProtectionSettings, now: datetime) -> Verdict:
    """Send now, defer until the next allowed moment, or suppress with a reason. ``now`` is an aware datetime."""
    if message.valid_until is not None and now >= message.valid_until:
        return Suppress("expired")
    if not member.active:
        return Suppress("member_inactive")
    to_member = message.channel != "webhook"
    if to_member and not member.has_address:
        return Suppress("no_address")
    if to_member and member.suppressed:
        return Suppress("address_suppressed")
    if to_member and message.purpose == "marketing" and member.consents.get((message.channel, "marketing")) is not True:
        return Suppress("no_consent")
    if to_member and message.purpose != "safety" and message.channel in member.opted_out_channels:
        return Suppress("opted_out")
    plugin_suppress, plugin_defer = _restrictive(message.plugin_verdicts)
    if plugin_suppress is not None:
        return plugin_suppress
    if message.purpose == "safety":
        if plugin_defer is None:
            return Send()
        earliest, reason = plugin_defer.until, plugin_defer.reason
    else:
        earliest, reason = _earliest(message, member, settings, now, plugin_defer)
    if earliest <= now:
        return Send()
    if message.valid_until is not None and earliest >= message.valid_until:
        return Suppress("expired", detail=reason)
    if earliest >= now + timedelta(days=HORIZON_DAYS):
        return Suppress("expired", detail=reason)
    return Defer(earliest, reason)
