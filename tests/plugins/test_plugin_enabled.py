"""``fealty_plugin_enabled``: core calls it once when a tenant enables a plugin, in that request's transaction, with
the settings just stored; a refusal keeps nothing of the request. (The example plugin records each call.)"""

from __future__ import annotations

from core.testing import MakeTenant, TenantHandle
from tests.plugins.example import hooks


def enabled_calls(tenant: TenantHandle) -> list[str]:
    """The greetings the example plugin read from its settings, one per call, for this tenant."""
    return [args[1] for name, args in hooks.CALLS if name == "plugin_enabled" and args[0] == tenant.id]


async def test_enabling_calls_the_hook_once_with_the_stored_settings(tenant: TenantHandle) -> None:
    assert enabled_calls(tenant) == []
    response = await tenant.patch(
        "/v1/program", json={"plugins": ["example"], "plugin_settings": {"example": {"greeting": "bonjour"}}}
    )
    assert response.status_code == 200, response.text
    assert enabled_calls(tenant) == ["bonjour"]
    # Changing an enabled plugin's settings, or sending the same list again, is no new enabling.
    again = await tenant.patch(
        "/v1/program", json={"plugins": ["example"], "plugin_settings": {"example": {"greeting": "hallo"}}}
    )
    assert again.status_code == 200, again.text
    assert (await tenant.patch("/v1/program", json={"points_name": "Stars"})).status_code == 200
    assert enabled_calls(tenant) == ["bonjour"]
    # Disabled (its settings go with it), then enabled again: the plugin hears it again, on its defaults.
    assert (await tenant.patch("/v1/program", json={"plugins": []})).status_code == 200
    assert enabled_calls(tenant) == ["bonjour"]
    assert (await tenant.patch("/v1/program", json={"plugins": ["example"]})).status_code == 200
    assert enabled_calls(tenant) == ["bonjour", "hello"]


async def test_a_tenant_created_with_the_plugin_hears_it_too(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant(plugins=["example"])
    assert enabled_calls(tenant) == ["hello"]  # the settings' defaults


async def test_a_refusal_keeps_nothing_of_the_request(tenant: TenantHandle) -> None:
    response = await tenant.patch(
        "/v1/program",
        json={
            "points_name": "Stars",
            "expiry_policy": {"kind": "days_after_earn", "value": 90},
            "plugins": ["example"],
            "plugin_settings": {"example": {"greeting": "refuse"}},
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "plugin_settings.example.greeting"
    assert enabled_calls(tenant) == ["refuse"]
    program = (await tenant.get("/v1/program")).json()
    assert program["plugins"] == [] and program["points_name"] == "points"
    assert program["expiry_policy"] == {"kind": "never", "value": None}
    assert (await tenant.get("/v1/example/hello")).status_code == 404
