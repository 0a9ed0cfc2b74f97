"""Environment-backed settings: every knob is a ``FEALTY_*`` variable, read once into one typed object.

Reading is strict, because a forgiven mistake becomes a production incident: an unknown ``FEALTY_*`` variable (a
typo such as ``FEALTY_DATABSE_URL``) refuses to start with a "did you mean" hint; each value is decoded to its
field's type by msgspec and every error names the variable; booleans accept only true/false/1/0/yes/no. Every
problem is reported at once (:class:`SettingsError`). Secrets are masked in the repr (and so in logs and
tracebacks) and in ``fealty config``. ``FEALTY_TEST_*`` and ``FEALTY_BENCH_*`` belong to the test suite and the
benchmark, not to the application, and are not checked here.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

import msgspec

ENV_PREFIX = "FEALTY_"
#: Variables of the test suite and the benchmark, which share the prefix but are not application settings.
FOREIGN_PREFIXES = ("FEALTY_TEST_", "FEALTY_BENCH_")
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
#: Fields whose values never appear in a repr, a log line or ``fealty config``.
SECRET_FIELDS = frozenset(
    {
        "platform_key",
        "stripe_api_key",
        "stripe_webhook_secret",
        "aws_access_key_id",
        "aws_secret_access_key",
        "care_link_secret",
    }
)
#: Fields holding URLs whose password part is masked.
URL_FIELDS = frozenset({"database_url", "migrate_database_url", "redis_url", "worker_listen_url"})
MASK = "********"
#: The shortest ``FEALTY_PLATFORM_KEY`` accepted: a guessable operator key would open every tenant.
MIN_PLATFORM_KEY_LENGTH = 32


class SettingsError(ValueError):
    """One or more ``FEALTY_*`` variables are wrong; ``problems`` holds one line per variable, each naming it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


def _parse_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected one of true/false/1/0/yes/no, got {raw!r}")


def _decode(raw: str, kind: Any) -> Any:
    """One variable's text as its field's type (msgspec's lax conversion of strings to numbers)."""
    if kind in (bool, bool | None):
        return _parse_bool(raw)
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind in (str, str | None):
        return raw
    try:
        return msgspec.convert(raw.strip(), kind, strict=False)
    except msgspec.ValidationError as exc:
        detail = str(exc).split(" - at ", 1)[0]
        if detail.startswith("Expected `int`, got"):
            detail = "expected a whole number"
        elif detail.startswith("Expected `float`, got"):
            detail = "expected a number"
        raise ValueError(f"{detail[0].lower()}{detail[1:]}, got {raw!r}") from None


def mask_url(url: str) -> str:
    """``scheme://user:********@host/db``: a URL with its password hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':' + MASK if colon else ''}{at}{host}"


def masked(name: str, value: Any) -> Any:
    """A setting's value as it may be shown: secrets masked (empty ones shown empty), URL passwords hidden."""
    if name in SECRET_FIELDS:
        return MASK if value else value
    if name in URL_FIELDS and isinstance(value, str):
        return mask_url(value)
    return value


@dataclass(frozen=True, slots=True, repr=False)
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
    #: PostgreSQL is reached through PgBouncer in transaction pooling mode: no startup parameters and no prepared
    #: statement cache (the application role and the tenant are set in each transaction in any case).
    database_pgbouncer: bool = False
    #: Refuse any Core statement on a tenant table without a tenant_id criterion. Default: on for SQLite; off for
    #: PostgreSQL, where row-level security enforces it (the test suite turns it on for both).
    strict_tenant_checks: bool | None = None

    #: The platform operator key: any secret of at least :data:`MIN_PLATFORM_KEY_LENGTH` characters the operator
    #: chooses (a shorter one refuses to start). When unset, ``fealty serve`` generates one on first start and prints
    #: it once.
    platform_key: str = ""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Run the worker inside ``fealty serve`` (the default on SQLite).
    embedded_worker: bool | None = None
    #: How often a worker looks for due work when nothing woke it (on PostgreSQL, LISTEN/NOTIFY wakes it at once).
    worker_poll_seconds: float = 1.0
    #: Jobs a worker runs at once (default: 1 on SQLite, 4 on PostgreSQL); at most one per tenant, so one busy
    #: tenant cannot take every slot.
    worker_concurrency: int | None = None
    #: Wake workers with PostgreSQL LISTEN/NOTIFY when work is queued (polling stays as the fallback).
    worker_listen: bool = True
    #: The URL the LISTEN connection uses (default: the database URL). Behind PgBouncer in transaction pooling
    #: mode, point it at PostgreSQL itself (or a session-pooling port): LISTEN needs a session of its own.
    worker_listen_url: str = ""
    #: The worker's own Prometheus metrics port (0: none). ``fealty worker --metrics-port`` overrides it.
    worker_metrics_port: int = 0
    #: Where ``fealty serve --workers N`` keeps Prometheus' multiprocess files (default: a temporary directory of
    #: its own), so that every scrape of /metrics adds up all the processes.
    metrics_dir: str = ""
    #: How often the recurring schedule follows changed tenants, and re-reads every tenant, in seconds.
    schedule_sync_seconds: int = 30
    schedule_full_sync_seconds: int = 3600
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

    #: Retention: finished jobs, delivered outbox rows, finished webhook deliveries and processed Stripe events older
    #: than this many days are deleted by the worker, in batches; dead jobs and dead deliveries are kept longer so
    #: the operator can look into them. A tenant may keep its own deliveries for less or longer, within bounds.
    retention_days: int = 30
    retention_dead_days: int = 90
    retention_min_days: int = 1
    retention_max_days: int = 365
    retention_every_seconds: int = 86400

    log_level: str = "INFO"
    log_json: bool = True

    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 1024 * 1024
    #: How long an Idempotency-Key is remembered, in hours (at least 24).
    idempotency_ttl_hours: int = 48
    #: Requests per second a tenant may make (token bucket, burst = 2x). 0 disables.
    rate_limit_per_second: float = 0.0
    #: Redis holding the rate limits' buckets, shared by every API process (``redis://host:6379/0``). Empty: each
    #: process limits on its own. If Redis cannot be reached, limits fall back to in-process, with a warning.
    redis_url: str = ""
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
    #: The platform's S3 bucket for background exports (``POST /v1/exports``; a tenant may name its own bucket), and
    #: how long a presigned download link works, in minutes.
    exports_bucket: str = "fealty-exports"
    exports_link_minutes: int = 15

    #: Customer care: how often core occasions are looked for (birthdays, lapsing members...) and due messages
    #: delivered, in seconds; messages claimed per round; attempts before a message is recorded failed; the retry
    #: delay after attempt n (about base x 2^(n-1) s, at most the cap); sends per second per tenant (0: no limit).
    care_occasions_every_seconds: int = 300
    care_deliver_every_seconds: int = 60
    care_deliver_batch: int = 200
    care_max_attempts: int = 8
    care_backoff_base_seconds: float = 30.0
    care_backoff_cap_seconds: float = 3600.0
    care_send_rate_per_second: float = 0.0

    #: The address members and providers reach this API at, for links in messages (unsubscribe). Empty:
    #: ``http://{host}:{port}``.
    public_url: str = ""
    #: Signing key of unsubscribe links (HMAC). Empty: a key generated once and kept in the database, shared by
    #: every process. Changing it invalidates the links already sent.
    care_link_secret: str = ""
    #: How long an unsubscribe link works, in days.
    care_unsubscribe_link_days: int = 180

    #: Cases: how often the worker looks for SLA breaches, in seconds. Surveys: the longest an invitation's signed
    #: response link can work, in days (each survey sets its own, up to twice this); how often the worker invites
    #: after events, in seconds.
    cases_breach_every_seconds: int = 60
    survey_link_days: int = 365
    survey_invitations_every_seconds: int = 900

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
    def worker_slots(self) -> int:
        """Jobs a worker runs at once: the setting, else 1 on SQLite (one writer at a time) and 4 elsewhere."""
        if self.worker_concurrency is not None:
            return max(1, self.worker_concurrency)
        return 1 if self.is_sqlite else 4

    @property
    def listen_url(self) -> str:
        return self.worker_listen_url or self.database_url

    @property
    def migrates_on_start(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.database_url.split("///", 1)[1])

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.effective())
        return f"Settings({shown})"

    def effective(self) -> Iterator[tuple[str, Any]]:
        """Every setting and its value, secrets masked: what ``fealty config`` prints and what a repr shows."""
        for f in fields(self):
            yield f.name, masked(f.name, getattr(self, f.name))

    @classmethod
    def variable(cls, name: str) -> str:
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``FEALTY_*`` from ``environ`` (default: the process environment), then apply ``overrides``
        (already typed values, as tests pass them). Raises :class:`SettingsError` naming every wrong variable."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        known = {cls.variable(f.name): f.name for f in fields(cls)}
        problems: list[str] = []
        values: dict[str, Any] = {}
        for variable in sorted(env):
            if not variable.startswith(ENV_PREFIX) or variable.startswith(FOREIGN_PREFIXES):
                continue
            name = known.get(variable)
            if name is None:
                close = difflib.get_close_matches(variable, list(known), n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]}?" if close else " (`fealty config` lists them)"
                problems.append(f"{variable} is not a Fealty setting{hint}")
                continue
            try:
                values[name] = _decode(env[variable], hints[name])
            except ValueError as exc:
                problems.append(f"{variable}: {exc}")
        unknown = set(overrides) - set(known.values())
        problems += [f"{name!r} is not a Fealty setting" for name in sorted(unknown)]
        values.update({k: v for k, v in overrides.items() if k not in unknown})
        key = values.get("platform_key", "")
        if key and len(key) < MIN_PLATFORM_KEY_LENGTH:
            problems.append(
                f"{cls.variable('platform_key')} must be at least {MIN_PLATFORM_KEY_LENGTH} characters long "
                f"(it has {len(key)}): choose a long random secret, e.g. `openssl rand -base64 32`, or unset it "
                "and `fealty serve` generates one"
            )
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    def sources(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Where each setting came from: ``environment`` or ``default``."""
        env = os.environ if environ is None else environ
        return {f.name: "environment" if self.variable(f.name) in env else "default" for f in fields(self)}


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings.from_env()


#: Where a session finds the settings of the process that opened it (set on the runtime's sessionmaker).
SESSION_SETTINGS_KEY = "fealty.settings"


def settings_of(session: Any) -> Settings:
    """The settings of the process that opened ``session`` (an ``AsyncSession``; the environment's for a session made
    elsewhere)."""
    found = session.info.get(SESSION_SETTINGS_KEY)
    if isinstance(found, Settings):
        return found
    return get_settings()
