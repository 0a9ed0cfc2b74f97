"""Amazon SES (email) and SNS (SMS): the only module that imports boto3 for messaging.

One :class:`AwsMessaging` per process holds one SES and one SNS client (boto3 clients are thread-safe) and a bounded
thread pool, because boto3 is synchronous: each send runs in that pool, so the event loop never blocks and at most
``aws_concurrency`` sends are in flight (the HTTP connection pool is sized to match, so connections are reused).
The endpoint, region and credentials are settings: tests and local runs point them at a moto server.

Email goes out as raw MIME through ``send_raw_email`` so that our own headers (``List-Unsubscribe``,
``List-Unsubscribe-Post`` of RFC 8058, and ``X-Fealty-Reference``, the occasion's idempotency reference) reach the
recipient. SMS goes out through SNS ``publish`` to a phone number.

Errors are sorted for the caller's retry policy, and no boto3 exception leaves this module:

* :class:`ProviderThrottled` -- the provider asks us to slow down (SES ``Throttling``, SNS ``Throttled``...): retry
  later with backoff, and lower the send rate;
* :class:`ProviderTransientError` -- the provider or the network failed (5xx, timeouts, connection refused): retry
  with backoff;
* :class:`ProviderPermanentError` -- the provider refused this message (unverified sender, invalid address or
  number, message too long...): sending it again cannot help; record it failed.

Personal data (addresses, numbers, bodies) is never logged here; only the reference and the error code are.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, TypeVar

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from core.settings import Settings

log = structlog.get_logger("fealty.aws")

T = TypeVar("T")

#: The header that carries the idempotency reference of a message (its occasion), so a copy sent again after a
#: crash is recognisable as the same message downstream.
REFERENCE_HEADER = "X-Fealty-Reference"

#: Error codes that mean "slow down" (SES, SNS, and AWS's generic ones).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "KMSThrottlingException",
        "MaxSendRateExceeded",
    }
)
#: Error codes that mean "the provider failed; the same request may well succeed later".
TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMSDisabledException",
        "KMSInvalidStateException",
    }
)
#: Headers the adapter writes itself; callers' ``headers`` may not replace them.
_OWN_HEADERS = frozenset({"from", "to", "reply-to", "subject", "date", "message-id", "mime-version", "content-type"})


class ProviderError(Exception):
    """A send failed. ``code`` is the provider's error code (or the kind of network failure)."""

    def __init__(self, message: str, *, code: str, reference: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reference = reference


class ProviderThrottled(ProviderError):
    """The provider is limiting our rate: retry later with backoff."""


class ProviderTransientError(ProviderError):
    """The provider or the network failed: retry later with backoff."""


class ProviderPermanentError(ProviderError):
    """The provider refused this message for good: record it as failed."""


@dataclass(frozen=True, slots=True)
class AwsConfig:
    endpoint_url: str | None = None
    region: str = "eu-west-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    #: Sends in flight at once (thread pool and HTTP connection pool size).
    concurrency: int = 10
    #: Attempts per send inside botocore (1: no retry here, the caller's delivery loop retries with backoff).
    max_attempts: int = 1
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsConfig:
        return cls(
            endpoint_url=settings.aws_endpoint_url or None,
            region=settings.aws_region,
            access_key_id=settings.aws_access_key_id or None,
            secret_access_key=settings.aws_secret_access_key or None,
            concurrency=max(1, settings.aws_concurrency),
            max_attempts=max(1, settings.aws_max_attempts),
            connect_timeout=settings.aws_timeout_seconds,
            read_timeout=settings.aws_timeout_seconds,
        )


def build_email(
    *,
    source: str,
    to: str,
    reply_to: str | None,
    subject: str,
    text: str,
    html: str | None,
    headers: Mapping[str, str] | None,
    reference: str,
) -> EmailMessage:
    """The MIME message: text (and HTML as its alternative), our headers, the caller's extra headers."""
    message = EmailMessage()
    message["From"] = source
    message["To"] = to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = source.rpartition("@")[2].rstrip(">").strip() or None
    message["Message-ID"] = make_msgid(domain=domain)
    message[REFERENCE_HEADER] = reference
    for name, value in (headers or {}).items():
        if name.lower() in _OWN_HEADERS or name.lower() == REFERENCE_HEADER.lower():
            raise ValueError(f"header {name} is set by the adapter")
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
            raise ValueError(f"header {name} contains a line break")
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _address_only(value: str) -> str:
    """``Ann <ann@example.com>`` -> ``ann@example.com`` (SES's Destinations take bare addresses)."""
    try:
        return Address(addr_spec=value).addr_spec
    except (ValueError, IndexError):
        from email.utils import parseaddr

        return parseaddr(value)[1] or value


def classify(exc: BaseException, reference: str | None = None) -> ProviderError:
    """A boto3/botocore failure as one of our three provider errors."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = str(error.get("Message") or code)
        if code in THROTTLING_CODES or status == 429:
            return ProviderThrottled(detail, code=code, reference=reference)
        if code in TRANSIENT_CODES or status >= 500:
            return ProviderTransientError(detail, code=code, reference=reference)
        return ProviderPermanentError(detail, code=code, reference=reference)
    if isinstance(exc, ConnectionError | HTTPClientError):
        return ProviderTransientError(type(exc).__name__, code=type(exc).__name__, reference=reference)
    if isinstance(exc, BotoCoreError):
        # Parameter validation and the like: the request itself is wrong.
        return ProviderPermanentError(type(exc).__name__, code=type(exc).__name__, reference=reference)
    raise exc


class AwsMessaging:
    """Email through SES and SMS through SNS, off the event loop, with errors sorted for retries."""

    def __init__(self, config: AwsConfig) -> None:
        self.config = config
        boto_config = Config(
            region_name=config.region,
            retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
            max_pool_connections=config.concurrency,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name=config.region,
        )
        self._ses = session.client("ses", endpoint_url=config.endpoint_url, config=boto_config)
        self._sns = session.client("sns", endpoint_url=config.endpoint_url, config=boto_config)
        self._executor = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="fealty-aws")

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsMessaging:
        return cls(AwsConfig.from_settings(settings))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._ses.close()
        self._sns.close()

    async def _run(self, what: str, reference: str, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except (ClientError, BotoCoreError) as exc:
            error = classify(exc, reference)
            log.info("aws.send_failed", what=what, reference=reference, code=error.code, kind=type(error).__name__)
            raise error from None

    async def send_email(
        self,
        *,
        source: str,
        to: str,
        reply_to: str | None = None,
        subject: str,
        text: str,
        html: str | None = None,
        headers: Mapping[str, str] | None = None,
        reference: str,
    ) -> str:
        """Send one email through SES ``send_raw_email``; returns SES's message id."""
        try:
            message = build_email(
                source=source,
                to=to,
                reply_to=reply_to,
                subject=subject,
                text=text,
                html=html,
                headers=headers,
                reference=reference,
            )
            raw = message.as_bytes()
        except (ValueError, TypeError, IndexError) as exc:
            # A malformed address or header: no provider would take it.
            raise ProviderPermanentError(str(exc), code="InvalidMessage", reference=reference) from None
        call = functools.partial(
            self._ses.send_raw_email,
            Source=source,
            Destinations=[_address_only(to)],
            RawMessage={"Data": raw},
        )
        response: dict[str, Any] = await self._run("ses.send_raw_email", reference, call)
        return str(response["MessageId"])

    async def send_sms(
        self,
        *,
        to: str,
        body: str,
        sender_id: str | None = None,
        reference: str,
        transactional: bool = True,
    ) -> str:
        """Send one SMS through SNS ``publish`` to ``to`` (E.164); returns SNS's message id.

        ``transactional`` picks SNS's SMS type: Transactional (service, safety: highest reliability) or Promotional
        (marketing: cheapest)."""
        attributes: dict[str, dict[str, str]] = {
            "AWS.SNS.SMS.SMSType": {
                "DataType": "String",
                "StringValue": "Transactional" if transactional else "Promotional",
            }
        }
        if sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id}
        call = functools.partial(self._sns.publish, PhoneNumber=to, Message=body, MessageAttributes=attributes)
        response: dict[str, Any] = await self._run("sns.publish", reference, call)
        return str(response["MessageId"])
