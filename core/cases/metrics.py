"""Prometheus metrics of cases (``/metrics``): SLA breaches recorded, by clock (first reply, resolution)."""

from __future__ import annotations

from prometheus_client import Counter

BREACHES = Counter("fealty_case_sla_breaches_total", "Case SLA breaches recorded, by clock", ["clock"])
for _clock in ("first_reply", "resolution"):
    BREACHES.labels(clock=_clock)  # shown at 0 before the first breach
