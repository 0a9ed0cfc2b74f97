"""The platform operator's API: creating, listing, suspending tenants."""

from __future__ import annotations

import uuid

import pytest

from core.idempotency.service import REDACTED
from core.testing import AppClient as AsyncTestClient
from core.testing import MakeTenant, TenantHandle, create_tenant


async def test_create_tenant_returns_an_admin_key_that_works(client: AsyncTestClient, platform_headers: dict) -> None:
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/v1/platform/tenants",
        json={"name": "Acme Fuel", "slug": slug, "timezone": "Asia/Shanghai", "currency": "cny", "country": "cn"},
        headers=platform_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tenant"]["slug"] == slug and body["tenant"]["status"] == "active"
    assert body["api_key"]["scopes"] == ["admin"]
    secret = body["api_key"]["secret"]
    program = await client.get("/v1/program", headers={"Authorization": f"Bearer {secret}"})
    assert program.status_code == 200
    assert program.json()["currency"] == "CNY" and program.json()["country"] == "CN"
    assert program.json()["timezone"] == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "slug": "Bad Slug", "timezone": "UTC", "currency": "EUR"}, "slug"),
        ({"name": "x", "slug": "ok-slug", "timezone": "Mars/Olympus", "currency": "EUR"}, "timezone"),
        ({"name": "x", "slug": "ok-slug", "timezone": "UTC", "currency": "XXY"}, "currency"),
        ({"name": "x", "slug": "ok-slug", "timezone": "UTC", "currency": "EUR", "country": "ZZ"}, "country"),
        ({"name": "", "slug": "ok-slug", "timezone": "UTC", "currency": "EUR"}, "name"),
        ({"name": "x", "slug": "ok-slug", "timezone": "UTC"}, "currency"),
        ({"name": "x", "slug": "ok-slug", "timezone": "UTC", "currency": "EUR", "extra": 1}, "extra"),
        ({"name": "x", "slug": "ok-slug", "timezone": "UTC", "currency": "EUR", "plugins": ["nope"]}, "plugins"),
    ],
)
async def test_create_tenant_rejects_bad_input(
    client: AsyncTestClient, platform_headers: dict, body: dict, field: str
) -> None:
    before = await client.get("/v1/platform/tenants?limit=500", headers=platform_headers)
    response = await client.post("/v1/platform/tenants", json=body, headers=platform_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field
    after = await client.get("/v1/platform/tenants?limit=500", headers=platform_headers)
    assert len(after.json()["items"]) == len(before.json()["items"])  # nothing written


async def test_duplicate_slug_is_a_conflict(make_tenant: MakeTenant, client: AsyncTestClient) -> None:
    first = await make_tenant()
    with pytest.raises(AssertionError, match="409"):
        await create_tenant(client, slug=first.slug)


async def test_platform_endpoints_need_the_platform_key(client: AsyncTestClient, tenant: TenantHandle) -> None:
    assert (await client.get("/v1/platform/tenants")).status_code == 401
    wrong = await client.get("/v1/platform/tenants", headers={"Authorization": "Bearer ftp_wrong"})
    assert wrong.status_code == 401
    # A tenant's admin key is not a platform key.
    assert (await client.get("/v1/platform/tenants", headers=tenant.headers)).status_code == 401


async def test_list_get_and_paginate_tenants(
    client: AsyncTestClient, platform_headers: dict, make_tenant: MakeTenant
) -> None:
    made = [await make_tenant() for _ in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/platform/tenants?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=platform_headers)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert {str(t.id) for t in made} <= set(seen)
    one = await client.get(f"/v1/platform/tenants/{made[0].id}", headers=platform_headers)
    assert one.status_code == 200 and one.json()["slug"] == made[0].slug
    missing = await client.get(f"/v1/platform/tenants/{uuid.uuid4()}", headers=platform_headers)
    assert missing.status_code == 404


async def test_suspended_tenant_is_refused_and_resumes(
    client: AsyncTestClient, platform_headers: dict, tenant: TenantHandle
) -> None:
    member = await tenant.enrol(name="Kept Member")
    await tenant.credit(member["id"], 40)
    patched = await client.patch(
        f"/v1/platform/tenants/{tenant.id}", json={"status": "suspended"}, headers=platform_headers
    )
    assert patched.status_code == 200 and patched.json()["status"] == "suspended"
    refused = await tenant.get(f"/v1/members/{member['id']}")
    assert refused.status_code == 403 and refused.json()["type"].endswith("/tenant-disabled")
    await client.patch(f"/v1/platform/tenants/{tenant.id}", json={"status": "active"}, headers=platform_headers)
    again = await tenant.get(f"/v1/members/{member['id']}")
    # Nothing was deleted: the member, its details and its points are as they were.
    assert again.status_code == 200
    assert (again.json()["external_id"], again.json()["name"]) == (member["external_id"], "Kept Member")
    assert (await tenant.balance(member["id"]))["available"] == 40


async def test_tenant_creation_is_idempotent_and_never_stores_the_secret(
    client: AsyncTestClient, platform_headers: dict
) -> None:
    slug = f"idem-{uuid.uuid4().hex[:6]}"
    body = {"name": "Idem", "slug": slug, "timezone": "UTC", "currency": "EUR"}
    headers = platform_headers | {"Idempotency-Key": f"create-{slug}"}
    first = await client.post("/v1/platform/tenants", json=body, headers=headers)
    second = await client.post("/v1/platform/tenants", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["tenant"] == first.json()["tenant"]
    assert first.json()["api_key"]["secret"].startswith("fty_")
    assert second.json()["api_key"]["secret"] == REDACTED
    listing = await client.get("/v1/platform/tenants?limit=500", headers=platform_headers)
    assert [t["slug"] for t in listing.json()["items"]].count(slug) == 1


async def test_platform_can_issue_a_recovery_key(
    client: AsyncTestClient, platform_headers: dict, tenant: TenantHandle
) -> None:
    response = await client.post(
        f"/v1/platform/tenants/{tenant.id}/api-keys",
        json={"name": "recovery", "scopes": ["admin"]},
        headers=platform_headers,
    )
    assert response.status_code == 201
    new_key = response.json()["secret"]
    assert (await client.get("/v1/program", headers={"Authorization": f"Bearer {new_key}"})).status_code == 200


async def test_tenants_show_their_program_time_zone_and_currency(
    client: AsyncTestClient, platform_headers: dict
) -> None:
    slug = f"tz-{uuid.uuid4().hex[:6]}"
    body = {"name": "Zoned", "slug": slug, "timezone": "Asia/Shanghai", "currency": "cny"}
    created = await client.post("/v1/platform/tenants", json=body, headers=platform_headers)
    assert created.status_code == 201, created.text
    tenant = created.json()["tenant"]
    assert (tenant["timezone"], tenant["currency"]) == ("Asia/Shanghai", "CNY")
    url = f"/v1/platform/tenants/{tenant['id']}"
    assert {k: (await client.get(url, headers=platform_headers)).json()[k] for k in ("timezone", "currency")} == {
        "timezone": "Asia/Shanghai",
        "currency": "CNY",
    }
    # The tenant changes its program: the platform sees the change (and every tenant in a page has its own).
    tenant_auth = {"Authorization": f"Bearer {created.json()['api_key']['secret']}"}
    changed = await client.patch(
        "/v1/program", json={"timezone": "Europe/Paris", "currency": "EUR"}, headers=tenant_auth
    )
    assert changed.status_code == 200, changed.text
    renamed = await client.patch(url, json={"name": "Zoned again"}, headers=platform_headers)
    assert (renamed.json()["timezone"], renamed.json()["currency"]) == ("Europe/Paris", "EUR")
    cursor, found = None, None
    while found is None:
        page = (
            await client.get(
                "/v1/platform/tenants",
                params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                headers=platform_headers,
            )
        ).json()
        assert all(t["timezone"] and t["currency"] for t in page["items"])
        found = next((t for t in page["items"] if t["id"] == tenant["id"]), None)
        cursor = page["next_cursor"]
        if found is None:
            assert cursor, "the new tenant is not listed"
    assert (found["timezone"], found["currency"]) == ("Europe/Paris", "EUR")


async def _plan(client: AsyncTestClient, platform_headers: dict, **fields: object) -> str:
    code = f"plan-{uuid.uuid4().hex[:8]}"
    body = {"code": code, "name": code, "currency": "EUR", "monthly_price": "10"} | fields
    response = await client.post("/v1/platform/plans", json=body, headers=platform_headers)
    assert response.status_code == 201, response.text
    return code


async def test_a_tenant_is_only_put_on_a_plan_that_is_offered(client: AsyncTestClient, platform_headers: dict) -> None:
    """Plans are data, whether billing is on or not (it is off here): an unknown or retired plan is a 422 naming
    ``plan``, and nothing is written."""
    retired = await _plan(client, platform_headers, active=False)
    slug = f"plan-{uuid.uuid4().hex[:6]}"
    body = {"name": "Planned", "slug": slug, "timezone": "UTC", "currency": "EUR"}
    for plan in ("nope", retired):
        refused = await client.post("/v1/platform/tenants", json=body | {"plan": plan}, headers=platform_headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "plan" and refused.json()["type"].endswith("/validation-error")
    offered = await _plan(client, platform_headers)
    created = await client.post("/v1/platform/tenants", json=body | {"plan": offered}, headers=platform_headers)
    assert created.status_code == 201, created.text  # the slug was still free: nothing had been written
    assert created.json()["tenant"]["plan"] == offered
    url = f"/v1/platform/tenants/{created.json()['tenant']['id']}"
    moved = await client.patch(url, json={"plan": "nope"}, headers=platform_headers)
    assert moved.status_code == 422 and moved.json()["field"] == "plan"
    assert (await client.get(url, headers=platform_headers)).json()["plan"] == offered
    other = await _plan(client, platform_headers)
    assert (await client.patch(url, json={"plan": other}, headers=platform_headers)).json()["plan"] == other
    assert (await client.patch(url, json={"plan": None}, headers=platform_headers)).json()["plan"] is None


async def test_an_operator_chosen_platform_key_works_whatever_its_form(sqlite_url: str) -> None:
    """FEALTY_PLATFORM_KEY may be any secret of 32 characters or more (not only the generated ``ftp_`` form)."""
    import httpx

    from core.app import create_app
    from core.plugin.manager import PluginManager
    from core.testing import settings_for_tests

    chosen = "Zk3v9+operator/chosen secret, long enough!"
    app = create_app(settings_for_tests(sqlite_url, platform_key=chosen), plugins=PluginManager())
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        made = await http.post(
            "/v1/platform/tenants",
            json={"name": "Op", "slug": f"op-{uuid.uuid4().hex[:8]}", "timezone": "UTC", "currency": "EUR"},
            headers={"Authorization": f"Bearer {chosen}"},
        )
        assert made.status_code == 201, made.text
        assert (
            await http.get("/v1/platform/tenants", headers={"Authorization": f"Bearer {chosen}"})
        ).status_code == 200
        for wrong in (chosen[:-1], "ftp_" + chosen, chosen + "x"):
            refused = await http.get("/v1/platform/tenants", headers={"Authorization": f"Bearer {wrong}"})
            assert refused.status_code == 401, wrong


def test_a_short_platform_key_refuses_to_start_and_says_why() -> None:
    from click.testing import CliRunner

    from core.cli import main
    from core.settings import Settings, SettingsError, get_settings

    with pytest.raises(SettingsError, match="FEALTY_PLATFORM_KEY must be at least 32 characters long"):
        Settings.from_env({"FEALTY_PLATFORM_KEY": "short-secret"})
    assert Settings.from_env({"FEALTY_PLATFORM_KEY": "x" * 32}).platform_key == "x" * 32
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["config"], env={"FEALTY_PLATFORM_KEY": "ftp_too-short"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "FEALTY_PLATFORM_KEY must be at least 32 characters long (it has 13)" in result.output
    assert "ftp_too-short" not in result.output  # the secret itself is never echoed
