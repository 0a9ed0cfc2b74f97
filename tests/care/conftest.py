"""Fixtures for the care engine's tests: the app's SES/SNS pointed at the suite's moto server, a tenant with a sender,
and helpers to run the worker's care jobs."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio

from core.adapters.aws import AwsConfig, AwsMessaging
from core.care import delivery
from core.care.messages import Raised
from core.care.occasions import evaluate
from core.care.protection_models import CareSettings
from core.clock import utcnow
from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import TenantHandle
from tests.moto_server import MotoServer

SENDER_DOMAIN = "care.fealty.test"


@pytest.fixture
def care_runtime(runtime: Runtime, moto_server: MotoServer) -> Runtime:
    """The app's runtime, its care delivery sending to moto."""
    return use_moto(runtime, moto_server)


def use_moto(runtime: Runtime, moto_server: MotoServer) -> Runtime:
    """Point ``runtime``'s care delivery at the suite's moto server (once per app), senders at SENDER_DOMAIN."""
    if delivery.MESSAGING_KEY not in runtime.extras:
        moto_server.verify_domain(SENDER_DOMAIN)
        client = AwsMessaging(
            AwsConfig(
                endpoint_url=moto_server.url,
                region=moto_server.region,
                access_key_id=moto_server.access_key,
                secret_access_key=moto_server.secret_key,
            )
        )
        runtime.extras[delivery.MESSAGING_KEY] = client
        runtime.closers.append(client.close)
    return runtime


async def set_sender(runtime: Runtime, tenant_id: uuid.UUID, **protection: Any) -> None:
    async with tenant_session(runtime.sessionmaker, tenant_id) as session:
        session.add(
            CareSettings(
                tenant_id=tenant_id,
                email_from=f"hello@{SENDER_DOMAIN}",
                email_reply_to=None,
                sms_sender_id="Fealty",
                protection=protection,
            )
        )


@pytest_asyncio.fixture
async def care_tenant(tenant: TenantHandle, care_runtime: Runtime) -> TenantHandle:
    await set_sender(care_runtime, tenant.id)
    return tenant


Occasions = Callable[..., Awaitable[Raised]]
Deliver = Callable[..., Awaitable[dict[str, int]]]


@pytest.fixture
def find_occasions(care_runtime: Runtime) -> Occasions:
    async def run(tenant: TenantHandle, now: datetime | None = None) -> Raised:
        return await evaluate(care_runtime, tenant.id, now or utcnow())

    return run


@pytest.fixture
def deliver(care_runtime: Runtime) -> Deliver:
    async def run(tenant: TenantHandle, now: datetime | None = None) -> dict[str, int]:
        total: dict[str, int] = {}
        while True:
            counts = await delivery.deliver_round(care_runtime, tenant.id, now)
            if not counts:
                return total
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value

    return run


async def template(tenant: TenantHandle, trigger: str | None = None, **texts: Any) -> dict[str, Any]:
    body = texts or {"en": {"subject": "Hello {{ member.first_name }}", "body": "Dear {{ member.name }}, welcome."}}
    response = await tenant.post(
        "/v1/care/templates", json={"name": f"t-{uuid.uuid4().hex[:8]}", "trigger": trigger, "texts": body}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def rule(tenant: TenantHandle, trigger: str, template_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"r-{uuid.uuid4().hex[:8]}",
        "trigger": trigger,
        "template_id": template_id,
        "channels": ["email"],
    } | fields
    response = await tenant.post("/v1/care/rules", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def messages(tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    response = await tenant.get("/v1/messages", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
