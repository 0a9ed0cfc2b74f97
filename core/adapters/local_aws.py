"""A local stand-in for SES and SNS (moto's server, in this process) for ``fealty demo`` when no AWS endpoint is
configured: the demo's messages really go through boto3 to a server that keeps them, and nothing leaves the machine.

moto is a development dependency: without it, :func:`start` returns None and the demo's messages stay queued.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3

ACCESS_KEY = "demo"
SECRET_KEY = "demo"
REGION = "eu-west-1"


@dataclass
class LocalAws:
    url: str
    server: Any

    def settings(self) -> dict[str, Any]:
        return {
            "aws_endpoint_url": self.url,
            "aws_region": REGION,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }

    def received(self) -> tuple[int, int]:
        """How many emails and SMS the server accepted."""
        import httpx

        state = httpx.get(f"{self.url}/moto-api/data.json", timeout=30).json()
        return len(state.get("ses", {}).get("RawMessage", [])), len(state.get("sns", {}).get("SMS", []))

    def stop(self) -> None:
        self.server.stop()


def start(domains: Iterable[str]) -> LocalAws | None:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    # Its web server would log every request it answers to the demo's output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    local = LocalAws(f"http://127.0.0.1:{port}", server)
    ses = boto3.client(
        "ses",
        endpoint_url=local.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    for domain in domains:
        ses.verify_domain_identity(Domain=domain)
    return local
