"""Prometheus metrics of the worker: jobs by kind and outcome, how late due jobs start, how long they run,
and the schedule's work. ``fealty worker`` serves them on a port of its own (``FEALTY_WORKER_METRICS_PORT``); an API
process running the embedded worker shows them on its ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("fealty_jobs_total", "Jobs run by the worker, by kind and outcome", ["kind", "outcome"])
LATENESS = Histogram(
    "fealty_job_lateness_seconds",
    "How long after its due time a job started",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DURATION = Histogram(
    "fealty_job_duration_seconds",
    "How long a job ran",
    ["kind"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)
RUNNING = Gauge("fealty_jobs_running", "Jobs running in this process", multiprocess_mode="livesum")
SCHEDULED = Counter("fealty_schedule_runs_total", "Recurring runs turned into due jobs")
RETRIES = Counter("fealty_job_retries_total", "Failed job attempts that will be retried, by kind", ["kind"])
PURGED = Counter("fealty_retention_deleted_total", "Rows deleted by retention, by table", ["table"])
