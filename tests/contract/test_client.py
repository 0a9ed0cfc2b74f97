"""A real client: ``openapi-python-client`` generates a Python package from the served schema, and the README's
five-minute tour runs through it (a tenant, a member, an idempotent credit, the balance and the ledger, a refused
debit as a problem document). A schema a generator cannot read, or one that lies about a route, fails here."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from core.testing import TEST_PLATFORM_KEY, LiveServer

OPENAPI_PYTHON_CLIENT = Path(sys.executable).with_name("openapi-python-client")


def _generate(server: LiveServer, where: Path) -> Any:
    schema = where / "openapi.json"
    schema.write_bytes(httpx.get(f"{server.url}/schema/openapi.json", timeout=30).content)
    package = f"fealty_client_{uuid.uuid4().hex[:8]}"
    config = where / "generator.yaml"
    # No formatting of the generated code (it is only imported); binary answers (charts) read as files.
    config.write_text(
        "post_hooks: []\ncontent_type_overrides:\n"
        "  image/png: application/octet-stream\n  image/svg+xml: application/octet-stream\n"
    )
    done = subprocess.run(
        [
            str(OPENAPI_PYTHON_CLIENT),
            "generate",
            "--path",
            str(schema),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            package,
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    # Every operation generated: the generator says so when it has to leave one (or a model) out.
    assert "Warning" not in report and "Unable" not in report, report
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(where))


def test_the_readme_tour_through_a_generated_client(contract_server: LiveServer, tmp_path: Path) -> None:
    client = _generate(contract_server, tmp_path)
    name = client.__name__
    api = lambda module: importlib.import_module(f"{name}.api.{module}")  # noqa: E731
    models = importlib.import_module(f"{name}.models")

    # 1. The platform operator creates a tenant; the answer holds its first admin API key.
    platform = client.AuthenticatedClient(base_url=contract_server.url, token=TEST_PLATFORM_KEY)
    slug = f"grand-{uuid.uuid4().hex[:6]}"
    made = api("platform.create_tenant").sync(
        client=platform,
        body=models.TenantCreate(
            name="Grand Hotels", slug=slug, timezone="Europe/London", currency="GBP", country="GB"
        ),
    )
    assert isinstance(made, models.TenantCreated), made
    tenant = client.AuthenticatedClient(base_url=contract_server.url, token=made.api_key.secret)

    # 2. Enrol a member (email and phone normalised; consents kept per channel and purpose).
    consent = models.ConsentIn(
        channel=models.ConsentInChannel.EMAIL, purpose=models.ConsentInPurpose.MARKETING, granted=True, source="web"
    )
    member = api("members.enrol_member").sync(
        client=tenant,
        body=models.MemberCreate(
            external_id="G-1001", name="Ada", email="Ada@Example.com", phone="07911 123456", consents=[consent]
        ),
    )
    assert isinstance(member, models.MemberOut), member
    assert (member.email, member.phone) == ("ada@example.com", "+447911123456")

    # 3. Credit points twice with one Idempotency-Key: applied once, the second answer replayed.
    adjust = api("ledger.adjust_points")
    credit = models.AdjustIn(points=500, reason="welcome bonus")
    first = adjust.sync_detailed(member.id, client=tenant, body=credit, idempotency_key="welcome-G-1001")
    again = adjust.sync_detailed(member.id, client=tenant, body=credit, idempotency_key="welcome-G-1001")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.parsed.entry.id == first.parsed.entry.id

    # 4. The balance and the ledger.
    balance = api("ledger.get_balance").sync(member.id, client=tenant)
    assert isinstance(balance, models.BalanceOut), balance
    assert balance.available == 500
    ledger = api("ledger.get_ledger").sync(member.id, client=tenant)
    assert [(e.kind, e.points) for e in ledger.items] == [("adjust", 500)]

    # A debit larger than the balance: a problem document the client parses, and nothing written.
    refused = adjust.sync_detailed(member.id, client=tenant, body=models.AdjustIn(points=-600, reason="too much"))
    assert refused.status_code == 409
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.type_.endswith("/insufficient-points")
    assert api("ledger.get_balance").sync(member.id, client=tenant).available == 500
