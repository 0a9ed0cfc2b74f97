"""Environment-backed settings: every knob is a ``FEALTY_*`` variable, read once into one typed object."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "FEALTY_"


def _parse(raw: str, kind: Any) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """All runtime configuration. Each field ``foo`` is read from ``FEALTY_FOO``."""

    #: SQLAlchemy async URL. SQLite file by default; ``postgresql+asyncpg://...`` in production.
    database_url: str = "sqlite+aiosqlite:///fealty.db"
    #: URL used by ``fealty migrate`` (the owner role). Defaults to ``database_url``.
    migrate_database_url: str = ""
    #: PostgreSQL role the application switches to on every connection (owns nothing, no BYPASSRLS).
    database_app_role: str = "fealty_app"
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_echo: bool = False
    #: Refuse any Core statement on a tenant table without a tenant_id criterion. Default: on for SQLite; off for
    #: PostgreSQL, where row-level security enforces it (the test suite turns it on for both).
    strict_tenant_checks: bool | None = None

    #: The platform operator key. When unset, ``fealty serve`` generates one on first start and prints it once.
    platform_key: str = ""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Run the worker inside ``fealty serve`` (the default on SQLite).
    embedded_worker: bool | None = None
    worker_poll_seconds: float = 1.0
    #: How long a claimed job is a worker's before another may take it over (a worker that died).
    job_lease_seconds: int = 300
    #: Rows per transaction in background batches, and a pause between batches to spare the database.
    worker_batch_size: int = 1000
    worker_batch_pause_seconds: float = 0.0
    #: How often each tenant's recurring jobs run, in seconds.
    release_every_seconds: int = 60
    expire_every_seconds: int = 3600
    housekeeping_every_seconds: int = 3600
    dispatch_every_seconds: int = 60
    #: Apply migrations when ``fealty serve`` starts (the default on SQLite).
    migrate_on_start: bool | None = None

    log_level: str = "INFO"
    log_json: bool = True

    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 1024 * 1024
    #: How long an Idempotency-Key is remembered, in hours (at least 24).
    idempotency_ttl_hours: int = 48
    #: Requests per second a tenant may make (token bucket, burst = 2x). 0 disables.
    rate_limit_per_second: float = 0.0
    #: Events dated further ahead than this many minutes are refused.
    max_event_future_minutes: int = 15
    #: Group commit of single events and balance reads arriving together from one key (off: one transaction each).
    group_commit: bool = True

    #: Outbound webhooks: attempts before a delivery is dead-lettered (replay revives it).
    webhook_max_attempts: int = 8
    #: Retry delay after attempt n: about base x 2^(n-1) seconds (+-20% jitter), at most the cap.
    webhook_backoff_base_seconds: float = 60.0
    webhook_backoff_cap_seconds: float = 6 * 3600.0
    #: Each POST to a receiver must finish within this many seconds.
    webhook_timeout_seconds: float = 10.0
    #: POSTs in flight at once per worker and tenant.
    webhook_concurrency: int = 10
    #: Accept endpoints on loopback addresses (http:// allowed there): local development and tests. Turn off in
    #: production so that no tenant can make the workers call services on their own host.
    webhook_allow_loopback: bool = True

    #: Stripe: secret key, API base (point at localstripe in tests), webhook signing secret.
    #: Stripe: secret key (empty: billing disabled), API base (point at localstripe in tests and local runs),
    #: webhook signing secret, network retries and timeout of each Stripe call.
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    stripe_max_network_retries: int = 2
    stripe_timeout_seconds: float = 15.0
    #: Days a past-due tenant keeps writing before it is suspended.
    billing_grace_days: int = 7
    #: Minutes after a usage period (a calendar month, UTC) ends before the worker closes and bills it, so that
    #: every transaction that counted into it has committed.
    billing_close_delay_minutes: int = 60

    #: AWS (S3, SES, SNS) endpoint override, for moto in tests or local runs.
    aws_endpoint_url: str = ""
    aws_region: str = "eu-west-1"
    #: AWS credentials (empty: boto3's own chain -- environment, instance role...).
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    #: SES/SNS sends in flight at once per process (thread pool and connection pool), attempts per send inside
    #: botocore (the care worker retries with backoff itself), and the timeout of each call.
    aws_concurrency: int = 10
    aws_max_attempts: int = 1
    aws_timeout_seconds: float = 15.0

    #: Customer care: how often core occasions are looked for (birthdays, lapsing members...) and due messages
    #: delivered, in seconds; messages claimed per round; attempts before a message is recorded failed; the retry
    #: delay after attempt n (about base x 2^(n-1) s, at most the cap); sends per second per tenant (0: no limit).
    care_occasions_every_seconds: int = 300
    care_deliver_every_seconds: int = 15
    care_deliver_batch: int = 200
    care_max_attempts: int = 8
    care_backoff_base_seconds: float = 30.0
    care_backoff_cap_seconds: float = 3600.0
    care_send_rate_per_second: float = 0.0

    #: Entry-point plugins to load (empty: every installed ``fealty.plugins`` entry point).
    plugins: tuple[str, ...] = field(default_factory=tuple)
    load_entry_point_plugins: bool = True

    @property
    def max_event_future(self) -> timedelta:
        return timedelta(minutes=self.max_event_future_minutes)

    @property
    def idempotency_ttl(self) -> timedelta:
        """How long an Idempotency-Key is remembered: the setting, never less than the 24 hours the API promises."""
        return timedelta(hours=max(24, self.idempotency_ttl_hours))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def billing_enabled(self) -> bool:
        """Billing runs only with a Stripe key; without one, tenants are never billed and Stripe is never called."""
        return bool(self.stripe_api_key)

    @property
    def owner_database_url(self) -> str:
        return self.migrate_database_url or self.database_url

    @property
    def runs_embedded_worker(self) -> bool:
        return self.is_sqlite if self.embedded_worker is None else self.embedded_worker

    @property
    def migrates_on_start(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.database_url.split("///", 1)[1])

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = hints[f.name]
            if kind == bool | None:
                kind = bool
            values[f.name] = _parse(raw, kind)
        values.update(overrides)
        return cls(**values)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings.from_env()
