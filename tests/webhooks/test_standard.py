"""Standard Webhooks: deliveries verified with the standardwebhooks library's own verifier; endpoints of before keep
Fealty's scheme until their secret is rotated; opting in; both schemes during a rotation; the documented receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.db.engine import tenant_session
from core.runtime import Runtime
from core.testing import TenantHandle
from core.webhooks.models import WebhookEndpoint
from core.webhooks.signing import (
    InvalidSignature,
    is_standard_secret,
    new_legacy_secret,
    new_secret,
    standard_headers,
    verify_signature,
)
from tests.webhooks.helpers import Receiver, add_endpoint, drain, emit_events

BODY = b'{"id":"e1","type":"points.earned","data":{"points":5}}'


def test_standard_headers_follow_the_specification() -> None:
    secret = new_secret()
    assert is_standard_secret(secret) and not is_standard_secret(new_legacy_secret())
    headers = standard_headers("msg_1", [secret], BODY, 1_800_000_000)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, b"msg_1.1800000000." + BODY, hashlib.sha256).digest()).decode()
    assert headers == {"webhook-id": "msg_1", "webhook-timestamp": "1800000000", "webhook-signature": f"v1,{expected}"}


async def _legacy(runtime: Runtime, tenant: TenantHandle, endpoint_id: str) -> str:
    """Make an endpoint as they were before Standard Webhooks: the old kind of secret and scheme (the migration
    gives every existing endpoint ``fealty-v1``)."""
    secret = new_legacy_secret()
    async with tenant_session(runtime.sessionmaker, tenant.id) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == uuid.UUID(endpoint_id))
            .values(secret=secret, signature_scheme="fealty-v1")
        )
    return secret


async def test_a_new_endpoint_is_verified_by_the_standard_webhooks_library(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    assert endpoint["signature_scheme"] == "standard" and is_standard_secret(endpoint["secret"])
    await emit_events(worker, tenant, ("points.earned", {"points": 5}))
    await drain(worker, tenant)
    (request,) = hook.requests
    assert request.signature_error is None and request.status == 200
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)  # the library's own verifier
    assert payload["type"] == "points.earned"
    assert request.headers["webhook-id"] == request.headers["fealty-delivery-id"]  # the delivery id is signed
    assert "fealty-signature" not in request.headers
    # Anything altered fails the library's check: the body, the signed id, the timestamp; another secret too.
    for body, headers in (
        (request.body.replace(b"5", b"6"), request.headers),
        (request.body, request.headers | {"webhook-id": "another"}),
        (request.body, request.headers | {"webhook-timestamp": str(int(request.headers["webhook-timestamp"]) + 1)}),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)


async def test_an_endpoint_of_before_keeps_its_scheme_until_rotated(
    tenant: TenantHandle, worker: Runtime, receiver: Receiver
) -> None:
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    old = hook.secret = await _legacy(worker, tenant, endpoint["id"])
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert (await tenant.get(url)).json()["signature_scheme"] == "fealty-v1"

    await emit_events(worker, tenant, ("points.earned", {"points": 1}))
    await drain(worker, tenant)
    before = hook.requests[-1]
    assert before.signature_error is None and "webhook-signature" not in before.headers
    verify_signature(old, before.headers["fealty-signature"], before.body)

    # Opting in without a new secret is impossible (the old secrets are not Standard Webhooks keys): a clear 409.
    refused = await tenant.patch(url, json={"signature_scheme": "standard"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/webhook-secret-not-standard")
    assert refused.json()["field"] == "signature_scheme"
    assert (await tenant.get(url)).json()["signature_scheme"] == "fealty-v1"  # nothing changed

    # Rotation moves it to Standard Webhooks; during the grace period the old secret still signs, the old way.
    rotated = await tenant.post(f"{url}/rotate-secret", json={"keep_previous_hours": 2})
    assert rotated.status_code == 200 and rotated.json()["signature_scheme"] == "standard"
    new = hook.secret = rotated.json()["secret"]
    await emit_events(worker, tenant, ("points.earned", {"points": 2}))
    await drain(worker, tenant)
    during = hook.requests[-1]
    assert during.signature_error is None
    Webhook(new).verify(during.body, during.headers)  # a receiver already switched
    verify_signature(old, during.headers["fealty-signature"], during.body)  # a receiver not yet switched
    with pytest.raises(InvalidSignature):
        verify_signature(new, during.headers["fealty-signature"], during.body)

    # An endpoint may go back to the old scheme (its receiver is being upgraded), and forth again.
    back = await tenant.patch(url, json={"signature_scheme": "fealty-v1"})
    assert back.status_code == 200 and back.json()["signature_scheme"] == "fealty-v1"
    await emit_events(worker, tenant, ("points.earned", {"points": 3}))
    await drain(worker, tenant)
    verify_signature(new, hook.requests[-1].headers["fealty-signature"], hook.requests[-1].body)
    assert (await tenant.patch(url, json={"signature_scheme": "standard"})).status_code == 200


async def test_a_bad_scheme_is_a_422_naming_the_field(tenant: TenantHandle, receiver: Receiver) -> None:
    hook = receiver.hook()
    endpoint = await add_endpoint(tenant, receiver, hook, ["*"])
    bad = await tenant.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"signature_scheme": "hmac-md5"})
    assert bad.status_code == 422 and bad.json()["field"] == "signature_scheme"


def test_the_documented_receiver_verifies_both_schemes() -> None:
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = page.split("## Webhook signatures", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict = {}
    exec(compile(code.group(1), "docs/operations.md", "exec"), namespace)
    verify, errors = namespace["verify_fealty_request"], namespace["VERIFICATION_ERRORS"]
    import time

    now = int(time.time())
    standard = new_secret()
    verify(standard, {"Webhook-Id": "d1"} | standard_headers("d1", [standard], BODY, now), BODY)
    legacy = new_legacy_secret()
    from core.webhooks.signing import signature_header

    verify(legacy, {"Fealty-Signature": signature_header([legacy], BODY, now)}, BODY)
    with pytest.raises(errors):
        verify(standard, standard_headers("d1", [standard], BODY, now), BODY + b" ")
    with pytest.raises(errors):
        verify(legacy, {"Fealty-Signature": signature_header([legacy], BODY, now)}, BODY + b" ")
