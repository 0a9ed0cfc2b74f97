"""Fixtures for the utility plugin's tests: the plugin registered, a tenant that enabled it, accounts, outages and
care rules for the plugin's triggers."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.plugin.manager import PluginManager
from core.testing import MakeTenant, TenantHandle, registering
from plugins import utility

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def fealty_plugins() -> Callable[[], PluginManager]:
    return registering(utility.PLUGIN)


async def enable_utility(tenant: TenantHandle, **settings: Any) -> TenantHandle:
    body: dict[str, Any] = {"plugins": ["utility"], "plugin_settings": {"utility": settings}}
    response = await tenant.patch("/v1/program", json=body)
    assert response.status_code == 200, response.text
    return tenant


@pytest.fixture
async def utility_tenant(make_tenant: MakeTenant) -> TenantHandle:
    """A power company in London (GBP) with the plugin on its default settings (the UK's figures)."""
    return await enable_utility(await make_tenant())


async def account(
    tenant: TenantHandle,
    *,
    feeder: str = "F1",
    area: str = "A1",
    customer_class: str = "residential",
    member: dict[str, Any] | None = None,
    status: int = 201,
    **fields: Any,
) -> dict[str, Any]:
    """A member (enrolled unless given) and an account of theirs on ``feeder``."""
    n = next(_ids)
    if member is None:
        member = await tenant.enrol(
            f"cust-{n}-{uuid.uuid4().hex[:6]}", email=f"c{n}@example.com", phone=f"+4479111{n:05d}"
        )
    body = {
        "member_id": member["id"],
        "account_number": fields.pop("account_number", f"AC{n:06d}{uuid.uuid4().hex[:4]}"),
        "premises_address": fields.pop("premises_address", f"{n} High Street"),
        "feeder": feeder,
        "area": area,
        "customer_class": customer_class,
    } | fields
    response = await tenant.post("/v1/utility/accounts", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def outage(tenant: TenantHandle, status: int = 201, **fields: Any) -> dict[str, Any]:
    """An unplanned outage on F1 that began an hour ago (or the fields given)."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "kind": "unplanned",
        "feeders": ["F1"],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "etr": (now + timedelta(hours=3)).isoformat(),
        "reason": "Cable fault",
        "contact_line": "105",
    } | fields
    response = await tenant.post("/v1/utility/outages", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def planned(tenant: TenantHandle, starts_at: datetime, hours: int = 8, **fields: Any) -> dict[str, Any]:
    return await outage(
        tenant,
        kind="planned",
        starts_at=starts_at.isoformat(),
        ends_at=(starts_at + timedelta(hours=hours)).isoformat(),
        etr=None,
        reason="Line maintenance",
        **fields,
    )


TEXTS = {"en": {"subject": "{{ stage }} {{ account_number }} late={{ late }}", "body": "Outage {{ outage_id }}"}}


PEAK_TEXTS = {"en": {"subject": "{{ name }} {{ account_number }}", "body": "Save at {{ starts_at }}"}}


async def care_rules(tenant: TenantHandle, *triggers: str, channels: list[str] | None = None) -> dict[str, str]:
    """A template and an active rule for each trigger (default channel: email)."""
    made = {}
    for trigger in triggers:
        texts = PEAK_TEXTS if trigger == "utility.peak_event" else TEXTS
        template = await tenant.post(
            "/v1/care/templates", json={"name": f"t-{uuid.uuid4().hex[:8]}", "trigger": trigger, "texts": texts}
        )
        assert template.status_code == 201, template.text
        rule = await tenant.post(
            "/v1/care/rules",
            json={
                "name": f"r-{uuid.uuid4().hex[:8]}",
                "trigger": trigger,
                "template_id": template.json()["id"],
                "channels": channels or ["email"],
            },
        )
        assert rule.status_code == 201, rule.text
        made[trigger] = rule.json()["id"]
    return made


async def messages(tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await tenant.get(
            "/v1/messages", params=params | ({"cursor": cursor} if cursor else {}) | {"limit": 200}
        )
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json().get("next_cursor")
        if not cursor:
            return items
