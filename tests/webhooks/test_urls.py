"""Which endpoint URLs are accepted: https anywhere public, http only on loopback, never private IP literals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.adapters.webhook_http import retry_after_seconds
from core.errors import ValidationFailed
from core.webhooks.service import check_event_types, retry_delay
from core.webhooks.urls import check_endpoint_url

ACCEPTED = [
    "https://example.com/hooks/fealty",
    "https://hooks.example.co.uk:8443/a?b=c",
    "https://8.8.8.8/hook",
    "https://[2001:4860:4860::8888]/hook",
    "http://127.0.0.1:8080/hook",
    "http://127.9.9.9/hook",
    "http://localhost:3000/hook",
    "http://[::1]:3000/hook",
    "https://localhost/hook",
]

REFUSED = [
    ("http://example.com/hook", "https://"),
    ("ftp://example.com/hook", "absolute https"),
    ("example.com/hook", "absolute https"),
    ("https:///hook", "absolute https"),
    ("https://user:pass@example.com/hook", "user name"),
    ("https://user@example.com/hook", "user name"),
    ("https://example.com/hook#frag", "fragment"),
    ("https://10.0.0.5/hook", "private"),
    ("https://172.20.1.1/hook", "private"),
    ("https://192.168.1.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "private"),  # cloud metadata
    ("https://[fd00:ec2::254]/hook", "private"),
    ("https://[fe80::1]/hook", "private"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),  # IPv4-mapped IPv6
    ("https://0.0.0.0/hook", "private"),
    ("https://167772161/hook", "private"),  # 10.0.0.1 written as one number
    ("https://0xa9.0xfe.0xa9.0xfe/hook", "private"),  # 169.254.169.254 in hex
    ("http://10.0.0.5/hook", "https://"),
    ("https://exa mple.com/hook", "spaces"),
    ("https://bad_host!.com/hook", "host name"),
    ("https://example.com:99999/hook", "not a valid URL"),
    ("https://example.com/" + "a" * 2048, "2048"),
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted(url: str) -> None:
    assert check_endpoint_url(url) == url


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused(url: str, why: str) -> None:
    with pytest.raises(ValidationFailed, match=why) as refused:
        check_endpoint_url(url)
    assert refused.value.field == "url"


def test_loopback_can_be_switched_off() -> None:
    with pytest.raises(ValidationFailed, match="loopback"):
        check_endpoint_url("https://127.0.0.1/hook", allow_loopback=False)
    with pytest.raises(ValidationFailed, match="loopback"):
        check_endpoint_url("http://localhost/hook", allow_loopback=False)
    assert check_endpoint_url("https://example.com/hook", allow_loopback=False)


def test_event_types_are_checked_and_deduplicated() -> None:
    assert check_event_types(["points.earned", "tier.changed", "points.earned"]) == ["points.earned", "tier.changed"]
    assert check_event_types(["*"]) == ["*"]
    with pytest.raises(ValidationFailed) as unknown:
        check_event_types(["points.earned", "points.stolen"])
    assert unknown.value.field == "event_types[1]"
    with pytest.raises(ValidationFailed) as empty:
        check_event_types([])
    assert empty.value.field == "event_types"


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    for attempt, nominal in [(1, 60), (2, 120), (3, 240), (4, 480)]:
        delays = {retry_delay(attempt, base=60, cap=3600).total_seconds() for _ in range(20)}
        assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays), (attempt, delays)
        assert len(delays) > 1  # jitter spreads the retries of many deliveries
    assert retry_delay(20, base=60, cap=3600) <= timedelta(seconds=3600 * 1.2)
    # A receiver's Retry-After is honoured when longer, but never beyond the cap.
    assert retry_delay(1, base=60, cap=3600, retry_after=900) == timedelta(seconds=900)
    assert retry_delay(1, base=60, cap=3600, retry_after=10**6) == timedelta(seconds=3600)


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Tue, 01 Jan 2030 12:05:00 GMT", now) == 300
    assert retry_after_seconds("Tue, 01 Jan 2030 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
