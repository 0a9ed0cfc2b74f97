"""The protection policy, table-driven: every row is (message, member, settings, now) -> the exact verdict.

Instants are UTC; the comments give the member's wall clock. Paris moves to summer time on 2026-03-29 at 01:00 UTC
and back on 2026-10-25 at 01:00 UTC; New York on 2026-03-08 and 2026-11-01; Shanghai has no DST.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from core.care.policy import (
    Defer,
    MemberFacts,
    MessageFacts,
    ProtectionSettings,
    Send,
    Suppress,
    Verdict,
    decide,
    local_instant,
    next_in_window,
)

PARIS, NEW_YORK, SHANGHAI = "Europe/Paris", "America/New_York", "Asia/Shanghai"
DEFAULTS = ProtectionSettings()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def member(tz: str = PARIS, **fields: object) -> MemberFacts:
    return MemberFacts(timezone=tz, **fields)  # type: ignore[arg-type]


def sent(*entries: tuple[date, str, str]) -> dict[tuple[date, str, str], int]:
    out: dict[tuple[date, str, str], int] = {}
    for entry in entries:
        out[entry] = out.get(entry, 0) + 1
    return out


EMAIL_SERVICE = MessageFacts(channel="email", purpose="service", category="notice")
SMS_MARKETING = MessageFacts(channel="sms", purpose="marketing", category="offer")
MARKETING_OK = {("sms", "marketing"): True}
GREETING = MessageFacts(channel="email", purpose="marketing", category="greeting")
GREETING_OK = {("email", "marketing"): True}
REMINDER = MessageFacts(channel="sms", purpose="service", category="reminder")
SAFETY = MessageFacts(channel="sms", purpose="safety", category="notice")
COLLECTION = MessageFacts(channel="sms", purpose="service", category="collection")

CASES: list[tuple[str, MessageFacts, MemberFacts, ProtectionSettings, datetime, Verdict]] = [
    # --- quiet hours, in the member's own zone --------------------------------------------------------------------
    ("service at noon goes", EMAIL_SERVICE, member(), DEFAULTS, utc(2026, 1, 15, 11), Send()),
    # 22:30 CET on the eve of the spring change -> 08:00 CEST, which is 06:00 UTC (not 07:00)
    (
        "quiet hours across the spring DST change",
        EMAIL_SERVICE,
        member(),
        DEFAULTS,
        utc(2026, 3, 28, 21, 30),
        Defer(utc(2026, 3, 29, 6), "quiet_hours"),
    ),
    # 22:00 CEST on the eve of the autumn change -> 08:00 CET, which is 07:00 UTC (not 06:00)
    (
        "quiet hours across the autumn DST change",
        EMAIL_SERVICE,
        member(),
        DEFAULTS,
        utc(2026, 10, 24, 20),
        Defer(utc(2026, 10, 25, 7), "quiet_hours"),
    ),
    # New York changes a week and more before Europe: 23:00 EST on 2026-03-07 -> 08:00 EDT = 12:00 UTC
    (
        "quiet hours across New York's DST change",
        EMAIL_SERVICE,
        member(NEW_YORK),
        DEFAULTS,
        utc(2026, 3, 8, 4),
        Defer(utc(2026, 3, 8, 12), "quiet_hours"),
    ),
    # one instant, three zones: 02:00 UTC is 03:00 in Paris, 10:00 in Shanghai, 21:00 the evening before in New York
    (
        "same instant, Paris night",
        EMAIL_SERVICE,
        member(PARIS),
        DEFAULTS,
        utc(2026, 1, 15, 2),
        Defer(utc(2026, 1, 15, 7), "quiet_hours"),
    ),
    ("same instant, Shanghai morning", EMAIL_SERVICE, member(SHANGHAI), DEFAULTS, utc(2026, 1, 15, 2), Send()),
    (
        "same instant, New York evening",
        EMAIL_SERVICE,
        member(NEW_YORK),
        DEFAULTS,
        utc(2026, 1, 15, 2),
        Defer(utc(2026, 1, 15, 13), "quiet_hours"),
    ),
    ("quiet hours end exactly at 08:00", EMAIL_SERVICE, member(), DEFAULTS, utc(2026, 1, 15, 7), Send()),
    (
        "quiet hours start exactly at 21:00",
        EMAIL_SERVICE,
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 20),
        Defer(utc(2026, 1, 16, 7), "quiet_hours"),
    ),
    (
        "tenant-tuned quiet hours 22:00-07:00",
        EMAIL_SERVICE,
        member(),
        replace(DEFAULTS, quiet_hours=(time(22), time(7))),
        utc(2026, 1, 15, 20, 30),
        Send(),
    ),
    ("quiet hours off", EMAIL_SERVICE, member(), replace(DEFAULTS, quiet_hours=None), utc(2026, 1, 15, 2), Send()),
    ("safety ignores quiet hours", SAFETY, member(), DEFAULTS, utc(2026, 1, 15, 2), Send()),
    (
        "the tenant's webhook has no quiet hours",
        replace(EMAIL_SERVICE, channel="webhook"),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 2),
        Send(),
    ),
    # --- consent, opt-outs, suppressions ---------------------------------------------------------------------------
    ("marketing without consent", SMS_MARKETING, member(), DEFAULTS, utc(2026, 1, 15, 11), Suppress("no_consent")),
    (
        "marketing after withdrawal",
        SMS_MARKETING,
        member(consents={("sms", "marketing"): False}),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("no_consent"),
    ),
    (
        "marketing consent for another channel",
        SMS_MARKETING,
        member(consents={("email", "marketing"): True}),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("no_consent"),
    ),
    ("marketing with consent", SMS_MARKETING, member(consents=MARKETING_OK), DEFAULTS, utc(2026, 1, 15, 11), Send()),
    ("service needs no marketing consent", REMINDER, member(), DEFAULTS, utc(2026, 1, 15, 11), Send()),
    (
        "service after STOP",
        REMINDER,
        member(opted_out_channels=frozenset({"sms"})),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("opted_out"),
    ),
    (
        "safety after STOP",
        SAFETY,
        member(opted_out_channels=frozenset({"sms"})),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Send(),
    ),
    (
        "STOP on SMS leaves email",
        EMAIL_SERVICE,
        member(opted_out_channels=frozenset({"sms"})),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Send(),
    ),
    (
        "suppressed address, even safety",
        SAFETY,
        member(suppressed=True),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("address_suppressed"),
    ),
    ("no address", EMAIL_SERVICE, member(has_address=False), DEFAULTS, utc(2026, 1, 15, 11), Suppress("no_address")),
    ("anonymised member", SAFETY, member(active=False), DEFAULTS, utc(2026, 1, 15, 11), Suppress("member_inactive")),
    # --- caps (marketing), per local day, 7 days, month ------------------------------------------------------------
    (
        "daily cap: next day at 08:00 local",
        SMS_MARKETING,
        member(consents=MARKETING_OK, sent=sent((date(2026, 1, 15), "marketing", "offer"))),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 16, 7), "daily_cap"),
    ),
    (
        "service messages are not capped",
        REMINDER,
        member(sent=sent(*[(date(2026, 1, 15), "service", "notice")] * 5)),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Send(),
    ),
    (
        "yesterday's marketing does not count today",
        SMS_MARKETING,
        member(consents=MARKETING_OK, sent=sent((date(2026, 1, 14), "marketing", "offer"))),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Send(),
    ),
    # 23:30 UTC on the 15th is 07:30 on the 16th in Shanghai: the 15th's message is yesterday's there
    (
        "the day is the member's local day",
        SMS_MARKETING,
        member(SHANGHAI, consents=MARKETING_OK, sent=sent((date(2026, 1, 15), "marketing", "offer"))),
        DEFAULTS,
        utc(2026, 1, 15, 23, 30),
        Defer(utc(2026, 1, 16, 0), "quiet_hours"),
    ),
    (
        "monthly cap: the first of next month",
        SMS_MARKETING,
        member(consents=MARKETING_OK, sent=sent(*[(date(2026, 1, d), "marketing", "offer") for d in range(1, 9)])),
        DEFAULTS,
        utc(2026, 1, 20, 11),
        Defer(utc(2026, 2, 1, 7), "monthly_cap"),
    ),
    (
        "7-day cap (2 a week): held until the older send leaves the window",
        SMS_MARKETING,
        member(
            consents=MARKETING_OK,
            sent=sent((date(2026, 1, 14), "marketing", "offer"), (date(2026, 1, 15), "marketing", "offer")),
        ),
        replace(DEFAULTS, marketing_per_day=None, marketing_per_7_days=2),
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 21, 7), "weekly_cap"),
    ),
    (
        "caps off",
        SMS_MARKETING,
        member(consents=MARKETING_OK, sent=sent(*[(date(2026, 1, 15), "marketing", "offer")] * 3)),
        replace(DEFAULTS, marketing_per_day=None, marketing_per_month=None),
        utc(2026, 1, 15, 11),
        Send(),
    ),
    (
        "safety ignores caps",
        replace(SAFETY, purpose="safety"),
        member(sent=sent(*[(date(2026, 1, 15), "safety", "notice")] * 9)),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Send(),
    ),
    # --- greetings and same-day categories -------------------------------------------------------------------------
    (
        "greeting before 09:00 waits",
        GREETING,
        member(consents=GREETING_OK),
        DEFAULTS,
        utc(2026, 1, 15, 7, 30),
        Defer(utc(2026, 1, 15, 8), "greeting_hours"),
    ),
    (
        "greeting after 20:00 with a one-day validity is suppressed",
        replace(GREETING, valid_until=utc(2026, 1, 15, 23)),
        member(consents=GREETING_OK),
        DEFAULTS,
        utc(2026, 1, 15, 19, 30),
        Suppress("expired", "greeting_hours"),
    ),
    (
        "no greeting on the day of a payment reminder",
        GREETING,
        member(consents=GREETING_OK, sent=sent((date(2026, 1, 15), "service", "reminder"))),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 16, 8), "category_conflict"),
    ),
    (
        "a birthday greeting on a reminder day is lost, not sent late",
        replace(GREETING, valid_until=utc(2026, 1, 15, 23)),
        member(consents=GREETING_OK, sent=sent((date(2026, 1, 15), "service", "reminder"))),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("expired", "category_conflict"),
    ),
    (
        "no payment reminder on the day of a greeting",
        REMINDER,
        member(sent=sent((date(2026, 1, 15), "marketing", "greeting"))),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 16, 7), "category_conflict"),
    ),
    # --- holidays --------------------------------------------------------------------------------------------------
    (
        "no collection on a holiday",
        COLLECTION,
        member(holidays=frozenset({date(2026, 1, 1)})),
        DEFAULTS,
        utc(2026, 1, 1, 11),
        Defer(utc(2026, 1, 2, 7), "holiday"),
    ),
    (
        "nor on the holiday after it",
        COLLECTION,
        member(SHANGHAI, holidays=frozenset({date(2026, 2, 17), date(2026, 2, 18)})),
        DEFAULTS,
        utc(2026, 2, 17, 3),
        Defer(utc(2026, 2, 19, 0), "holiday"),
    ),
    (
        "a notice on a holiday goes",
        EMAIL_SERVICE,
        member(holidays=frozenset({date(2026, 1, 1)})),
        DEFAULTS,
        utc(2026, 1, 1, 11),
        Send(),
    ),
    # --- validity --------------------------------------------------------------------------------------------------
    (
        "expired",
        replace(EMAIL_SERVICE, valid_until=utc(2026, 1, 15, 11)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("expired"),
    ),
    (
        "quiet hours end after the validity",
        replace(EMAIL_SERVICE, valid_until=utc(2026, 1, 16, 6, 59)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 22),
        Suppress("expired", "quiet_hours"),
    ),
    (
        "quiet hours end within the validity",
        replace(EMAIL_SERVICE, valid_until=utc(2026, 1, 16, 7, 1)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 22),
        Defer(utc(2026, 1, 16, 7), "quiet_hours"),
    ),
    # --- plugins' verdicts, most restrictive wins -------------------------------------------------------------------
    (
        "a plugin suppresses",
        replace(COLLECTION, plugin_verdicts=(Send(), Suppress("microfinance.fair_collection"))),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("microfinance.fair_collection"),
    ),
    (
        "the later of two plugin deferrals",
        replace(
            COLLECTION,
            plugin_verdicts=(Defer(utc(2026, 1, 15, 12), "a.later"), Defer(utc(2026, 1, 15, 14), "b.latest")),
        ),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 15, 14), "b.latest"),
    ),
    (
        "a plugin's deferral into quiet hours is pushed to their end",
        replace(COLLECTION, plugin_verdicts=(Defer(utc(2026, 1, 15, 20, 30), "microfinance.contact_hours"),)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 16, 7), "microfinance.contact_hours"),
    ),
    (
        "a plugin suppression does not override a missing consent",
        replace(SMS_MARKETING, plugin_verdicts=(Suppress("x.y"),)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Suppress("no_consent"),
    ),
    (
        "a plugin may hold even safety",
        replace(SAFETY, plugin_verdicts=(Defer(utc(2026, 1, 15, 12), "x.hold"),)),
        member(),
        DEFAULTS,
        utc(2026, 1, 15, 11),
        Defer(utc(2026, 1, 15, 12), "x.hold"),
    ),
]


@pytest.mark.parametrize(
    ("message", "facts", "settings", "now", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decide(
    message: MessageFacts, facts: MemberFacts, settings: ProtectionSettings, now: datetime, expected: Verdict
) -> None:
    assert decide(message, facts, settings, now) == expected


def test_a_deferred_message_is_sent_at_the_moment_it_was_deferred_to() -> None:
    """Deciding again at the instant of a deferral sends (no message is deferred forever)."""
    for _, message, facts, settings, _now, expected in CASES:
        if isinstance(expected, Defer) and not message.plugin_verdicts:
            assert decide(message, facts, settings, expected.until) == Send(), expected


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),  # 02:30 happens twice: the first one (CEST)
        (date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 30)),  # 02:30 never happens: 03:30 CEST
        (date(2026, 3, 29), time(8), utc(2026, 3, 29, 6)),
        (date(2026, 3, 28), time(8), utc(2026, 3, 28, 7)),
    ],
)
def test_wall_clock_instants_in_a_zone_with_dst(day: date, at: time, expected: datetime) -> None:
    assert local_instant(day, at, ZoneInfo(PARIS)) == expected


def test_windows_that_wrap_midnight() -> None:
    zone = ZoneInfo(PARIS)
    night_shift = (time(22), time(6))
    assert next_in_window(utc(2026, 1, 15, 22), night_shift, zone) == utc(2026, 1, 15, 22)  # 23:00 local
    assert next_in_window(utc(2026, 1, 15, 11), night_shift, zone) == utc(2026, 1, 15, 21)  # 12:00 -> 22:00
