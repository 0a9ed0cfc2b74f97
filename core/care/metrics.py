"""Prometheus metrics of customer care: messages by the state they reached and their channel (``/metrics``)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter

MESSAGES = Counter(
    "fealty_care_messages_total",
    "Care messages that reached a state (queued, deferred, sent, failed, suppressed), by channel",
    ["state", "channel"],
)


def count(states: Iterable[tuple[str, str]]) -> None:
    """Count ``(state, channel)`` transitions (once the transaction that made them is about to commit)."""
    for (state, channel), n in Tally(states).items():
        MESSAGES.labels(state=state, channel=channel).inc(n)
