"""The SES/SNS adapter against a real moto server (and, for throttling and outages, a real HTTP server that answers
what AWS answers then): what SES and SNS received, and how each failure is sorted for the delivery loop's retries."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.adapters.aws import (
    REFERENCE_HEADER,
    AwsConfig,
    AwsMessaging,
    ProviderPermanentError,
    ProviderThrottled,
    ProviderTransientError,
)
from core.settings import Settings
from tests.moto_server import MotoServer, _free_port

DOMAIN = "care.fealty.test"


@pytest.fixture(scope="module")
def verified(moto_server: MotoServer) -> MotoServer:
    moto_server.verify_domain(DOMAIN)
    return moto_server


def messaging_for(url: str, **overrides: object) -> AwsMessaging:
    values: dict[str, object] = {
        "endpoint_url": url,
        "region": "eu-west-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "concurrency": 4,
        "max_attempts": 1,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    } | overrides
    return AwsMessaging(AwsConfig(**values))  # type: ignore[arg-type]


def unique_address() -> str:
    return f"member-{uuid.uuid4().hex[:12]}@example.com"


async def test_email_goes_out_as_raw_mime_with_our_headers(verified: MotoServer) -> None:
    aws = messaging_for(verified.url)
    to = unique_address()
    reference = f"occ-{uuid.uuid4().hex}"
    try:
        message_id = await aws.send_email(
            source=f"Café Nord <hello@{DOMAIN}>",
            to=to,
            reply_to=f"care@{DOMAIN}",
            subject="Joyeux anniversaire, Zoë — 生日快乐",
            text="Happy birthday!\nYour gift is waiting.",
            html="<p>Happy birthday!</p>",
            headers={
                "List-Unsubscribe": "<https://fealty.test/v1/care/unsubscribe?token=abc>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            reference=reference,
        )
    finally:
        await aws.close()
    [mail] = verified.emails(to=to)
    assert mail.id == message_id
    assert mail.source == f"Café Nord <hello@{DOMAIN}>"
    assert mail.headers["List-Unsubscribe"] == "<https://fealty.test/v1/care/unsubscribe?token=abc>"
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.headers[REFERENCE_HEADER] == reference
    assert mail.headers["Reply-To"] == f"care@{DOMAIN}"
    assert mail.subject == "Joyeux anniversaire, Zoë — 生日快乐"
    assert mail.body("plain") == "Happy birthday!\nYour gift is waiting.\n"
    assert mail.body("html") == "<p>Happy birthday!</p>\n"


async def test_the_same_reference_is_visible_on_a_second_copy(verified: MotoServer) -> None:
    """At least once: a copy sent again after a crash carries the same reference, so it is recognisable."""
    aws = messaging_for(verified.url)
    to, reference = unique_address(), f"occ-{uuid.uuid4().hex}"
    try:
        first = await aws.send_email(source=f"hi@{DOMAIN}", to=to, subject="s", text="t", reference=reference)
        second = await aws.send_email(source=f"hi@{DOMAIN}", to=to, subject="s", text="t", reference=reference)
    finally:
        await aws.close()
    assert first != second
    assert [m.headers[REFERENCE_HEADER] for m in verified.emails(to=to)] == [reference, reference]


async def test_many_sends_in_flight_at_once(verified: MotoServer) -> None:
    aws = messaging_for(verified.url, concurrency=8)
    to = unique_address()
    try:
        ids = await asyncio.gather(
            *(
                aws.send_email(source=f"hi@{DOMAIN}", to=to, subject="s", text=str(i), reference=f"r{i}")
                for i in range(40)
            )
        )
    finally:
        await aws.close()
    assert len(set(ids)) == 40
    assert len(verified.emails(to=to)) == 40


async def test_unverified_sender_is_a_permanent_error(verified: MotoServer) -> None:
    aws = messaging_for(verified.url)
    to = unique_address()
    try:
        with pytest.raises(ProviderPermanentError) as caught:
            await aws.send_email(source="someone@unverified.test", to=to, subject="s", text="t", reference="r-1")
    finally:
        await aws.close()
    assert caught.value.code == "MessageRejected"
    assert caught.value.reference == "r-1"
    assert verified.emails(to=to) == []


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Subject": "other"}, "set by the adapter"),
        ({"X-Evil": "a\r\nBcc: victim@example.com"}, "line break"),
    ],
)
async def test_hostile_headers_are_refused_before_any_send(
    verified: MotoServer, headers: dict[str, str], problem: str
) -> None:
    aws = messaging_for(verified.url)
    to = unique_address()
    try:
        with pytest.raises(ProviderPermanentError, match=problem):
            await aws.send_email(source=f"hi@{DOMAIN}", to=to, subject="s", text="t", headers=headers, reference="r")
    finally:
        await aws.close()
    assert verified.emails(to=to) == []


async def test_sms_goes_out_through_sns(verified: MotoServer) -> None:
    aws = messaging_for(verified.url)
    number = f"+3362{uuid.uuid4().int % 10**7:07d}"
    try:
        message_id = await aws.send_sms(
            to=number, body="Votre colis arrive demain. STOP 36180", sender_id="CafeNord", reference="r"
        )
    finally:
        await aws.close()
    [sms] = verified.sms(to=number)
    assert sms.id == message_id
    assert sms.message == "Votre colis arrive demain. STOP 36180"


async def test_invalid_phone_number_is_a_permanent_error(verified: MotoServer) -> None:
    aws = messaging_for(verified.url)
    try:
        with pytest.raises(ProviderPermanentError):
            await aws.send_sms(to="not-a-number", body="hello", reference="r")
    finally:
        await aws.close()


# --- throttling and outages: a real HTTP server answering as AWS does when it is throttling or failing ----------------


class _Answer:
    status = 400
    body = b""


def _error_body(code: str, namespace: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{code} from the test server</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
    ).encode()


@pytest.fixture
def failing_aws() -> Iterator[tuple[str, type[_Answer], list[int]]]:
    """An HTTP server on loopback that answers every request with ``answer.status`` and ``answer.body``."""
    answer = type("Answer", (_Answer,), {})
    hits: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits.append(1)
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer, hits
    server.shutdown()
    server.server_close()
    thread.join()


SES_NS = "http://ses.amazonaws.com/doc/2010-12-01/"
SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "Throttling", ProviderThrottled),
        (429, "TooManyRequests", ProviderThrottled),
        (503, "ServiceUnavailable", ProviderTransientError),
        (500, "InternalFailure", ProviderTransientError),
        (400, "MessageRejected", ProviderPermanentError),
        (400, "AccountSendingPausedException", ProviderPermanentError),
    ],
)
async def test_ses_errors_are_sorted_for_retries(
    failing_aws: tuple[str, type[_Answer], list[int]], status: int, code: str, expected: type[Exception]
) -> None:
    url, answer, hits = failing_aws
    answer.status, answer.body = status, _error_body(code, SES_NS)
    aws = messaging_for(url)
    try:
        with pytest.raises(expected) as caught:
            await aws.send_email(source=f"hi@{DOMAIN}", to=unique_address(), subject="s", text="t", reference="r")
    finally:
        await aws.close()
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert len(hits) == 1  # no hidden retries inside the adapter: the delivery loop owns backoff


async def test_sns_throttling_is_throttled(failing_aws: tuple[str, type[_Answer], list[int]]) -> None:
    url, answer, _ = failing_aws
    answer.status, answer.body = 400, _error_body("Throttled", SNS_NS)
    aws = messaging_for(url)
    try:
        with pytest.raises(ProviderThrottled):
            await aws.send_sms(to="+33612345678", body="hi", reference="r")
    finally:
        await aws.close()


async def test_botocore_retries_when_configured(failing_aws: tuple[str, type[_Answer], list[int]]) -> None:
    url, answer, hits = failing_aws
    answer.status, answer.body = 503, _error_body("ServiceUnavailable", SES_NS)
    aws = messaging_for(url, max_attempts=3)
    try:
        with pytest.raises(ProviderTransientError):
            await aws.send_email(source=f"hi@{DOMAIN}", to=unique_address(), subject="s", text="t", reference="r")
    finally:
        await aws.close()
    assert len(hits) == 3


async def test_unreachable_endpoint_is_transient() -> None:
    aws = messaging_for(f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(ProviderTransientError):
            await aws.send_sms(to="+33612345678", body="hi", reference="r")
    finally:
        await aws.close()


def test_settings_build_the_config() -> None:
    settings = Settings(
        aws_endpoint_url="http://127.0.0.1:1", aws_access_key_id="k", aws_secret_access_key="s", aws_concurrency=0
    )
    config = AwsConfig.from_settings(settings)
    assert config.endpoint_url == "http://127.0.0.1:1"
    assert config.concurrency == 1
    assert AwsConfig.from_settings(Settings()).endpoint_url is None
