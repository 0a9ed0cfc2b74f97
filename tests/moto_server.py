"""A real moto server (S3, SES, SNS) for the whole test suite, and what it received.

Loaded for every test through ``pytest_plugins`` in the root conftest.py. The session fixture ``moto_server`` starts
``moto.server`` on a free 127.0.0.1 port the first time a test asks for it (one per xdist worker) and stops it at the
end of the session. Tests point the app at it with :meth:`MotoServer.settings` (``aws_endpoint_url`` and friends) and
assert on what SES and SNS received through moto's state endpoint (``/moto-api/data.json``), never on a mock of boto3.

    def test_sends(moto_server):
        moto_server.verify_domain("shop.example")       # SES only sends from verified identities
        ... the code under test sends through core.adapters.aws ...
        [mail] = moto_server.emails(to="ann@example.com")
        assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

moto keeps its state for the whole session: filter by an address or reference unique to your test rather than
counting everything (``reset()`` exists, but other tests on the same worker share the server).
"""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "eu-west-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    """One ``send_raw_email`` as SES (moto) received it, with its MIME message parsed."""

    id: str
    source: str
    destinations: list[str]
    raw: str
    message: EmailMessage = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.message.items()}

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ReceivedSms:
    """One SNS ``publish`` to a phone number as moto received it."""

    id: str
    phone_number: str
    message: str


class MotoServer:
    """``moto.server`` as a child process on a free loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.region = REGION
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                if self.http.get("/moto-api/data.json").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start within 60 s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.http.close()

    # --- pointing code at it -------------------------------------------------------------------------------------

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The app settings that send everything AWS to this server (pass to ``settings_for_tests(url, **...)``)."""
        return {
            "aws_endpoint_url": self.url,
            "aws_region": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        } | overrides

    def boto3_client(self, service: str) -> Any:
        """A bare boto3 client on this server (set-up steps and the benches' baseline)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def verify_domain(self, domain: str) -> None:
        """Let SES send from any address at ``domain`` (moto refuses unverified senders, as SES does)."""
        self.boto3_client("ses").verify_domain_identity(Domain=domain)

    def verify_email(self, address: str) -> None:
        self.boto3_client("ses").verify_email_identity(EmailAddress=address)

    # --- what it received ----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """moto's whole model state (``/moto-api/data.json``): ``{service: {model: [instance attributes]}}``."""
        response = self.http.get("/moto-api/data.json")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def emails(self, *, to: str | None = None, header: tuple[str, str] | None = None) -> list[ReceivedEmail]:
        """Raw emails SES accepted, oldest first; ``to`` keeps those with that destination, ``header`` those with
        that header value (e.g. ``("X-Fealty-Reference", ref)``)."""
        found = []
        for item in self.state().get("ses", {}).get("RawMessage", []):
            message = email.message_from_string(item["raw_data"], policy=email.policy.default)
            received = ReceivedEmail(
                id=item["id"],
                source=item["source"],
                destinations=list(item["destinations"]),
                raw=item["raw_data"],
                message=message,  # type: ignore[arg-type]
            )
            if to is not None and not any(to in d for d in received.destinations):
                continue
            if header is not None and received.message.get(header[0]) != header[1]:
                continue
            found.append(received)
        return found

    def sms(self, *, to: str | None = None) -> list[ReceivedSms]:
        """SMS messages SNS accepted (``publish`` to a phone number), oldest first; ``to`` filters by number."""
        found = [
            ReceivedSms(id=item["message_id"], phone_number=item["phone_number"], message=item["message"])
            for item in self.state().get("sns", {}).get("SMS", [])
        ]
        return [m for m in found if to is None or m.phone_number == to]

    def reset(self) -> None:
        """Forget everything (every service). Only for tests that own the server's whole state."""
        self.http.post("/moto-api/reset").raise_for_status()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.close()
