"""Prometheus metrics of the API, recorded by its middleware (one layer fewer than a generic metrics middleware)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("fealty_requests_total", "API requests", ["method", "route", "status"])
LATENCY = Histogram(
    "fealty_request_duration_seconds",
    "API request duration",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
