"""Rewards of a plugin's kind: fulfilled by the first enabled plugin that answers, refused when none does."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import Conflict
from core.plugin import hookimpl
from core.plugin.types import PluginInfo, RedemptionContext
from core.runtime import Runtime
from core.testing import TenantHandle
from tests.rewards.support import make_reward, member_with, outbox_types, redeem, redemptions

PLUGIN = "rewards_test"
#: What the plugin saw, per tenant: (hook, reward kind, voucher code).
SEEN: list[tuple[str, str, str]] = []


class FreeNights:
    """A stand-in for a hotel plugin: fulfils ``free_night``, refuses ``suite_upgrade`` when none is free."""

    @staticmethod
    @hookimpl
    def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
        redemption = ctx.redemption
        SEEN.append(("fulfil", redemption.reward.kind, redemption.voucher_code))
        if redemption.reward.kind == "suite_upgrade":
            raise Conflict("No suite is free on those dates.", field="reward_id")
        if redemption.reward.kind != "free_night":
            return None
        category = redemption.reward.attributes["category"]
        return {"nights": 1, "category": category, "booking": f"FN-{redemption.voucher_code}"}

    @staticmethod
    @hookimpl
    def fealty_reward_redeemed(ctx: RedemptionContext) -> None:
        SEEN.append(("redeemed", ctx.redemption.reward.kind, ctx.redemption.voucher_code))


@pytest.fixture
async def hotel(tenant: TenantHandle, runtime: Runtime) -> TenantHandle:
    if PLUGIN not in runtime.plugins.available():
        runtime.plugins.register(PluginInfo(PLUGIN, "Rewards test", "1.0", FreeNights))
    response = await tenant.patch("/v1/program", json={"plugins": [PLUGIN]})
    assert response.status_code == 200, response.text
    SEEN.clear()
    return tenant


async def test_a_plugin_fulfils_its_kind(hotel: TenantHandle, runtime: Runtime) -> None:
    reward = await make_reward(hotel, kind="free_night", points_cost=15000, stock=3, attributes={"category": 3})
    member = await member_with(hotel, 20000)
    response = await redeem(hotel, member["id"], reward["id"])
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["fulfilment"] == {"nights": 1, "category": 3, "booking": f"FN-{made['voucher_code']}"}
    assert (await hotel.get(f"/v1/redemptions/{made['id']}")).json()["fulfilment"] == made["fulfilment"]
    assert [("fulfil", "free_night", made["voucher_code"]), ("redeemed", "free_night", made["voucher_code"])] == SEEN
    assert (await hotel.balance(member["id"]))["available"] == 5000


async def test_plain_vouchers_are_not_sent_for_fulfilment(hotel: TenantHandle) -> None:
    reward = await make_reward(hotel, points_cost=10)
    member = await member_with(hotel, 100)
    made = (await redeem(hotel, member["id"], reward["id"])).json()
    assert made["fulfilment"] == {}
    assert [("redeemed", "voucher", made["voucher_code"])] == SEEN


@pytest.mark.parametrize(("kind", "slug"), [("suite_upgrade", "conflict"), ("helicopter", "reward-not-fulfilled")])
async def test_a_refused_or_unknown_kind_takes_nothing(
    hotel: TenantHandle, runtime: Runtime, kind: str, slug: str
) -> None:
    reward = await make_reward(hotel, kind=kind, points_cost=100, stock=1)
    member = await member_with(hotel, 1000)
    response = await redeem(hotel, member["id"], reward["id"])
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith(f"/{slug}") and response.json()["field"] == "reward_id"
    assert (await hotel.balance(member["id"]))["available"] == 1000
    assert (await hotel.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 1
    assert await redemptions(hotel) == []
    assert "reward.redeemed" not in await outbox_types(runtime, hotel)
    assert [s[0] for s in SEEN] == ["fulfil"]  # asked, and nothing was announced


async def test_without_the_plugin_enabled_the_kind_is_refused(hotel: TenantHandle, make_tenant) -> None:
    other = await make_tenant()
    reward = await make_reward(other, kind="free_night", points_cost=100, attributes={"category": 1})
    member = await member_with(other, 1000)
    response = await redeem(other, member["id"], reward["id"])
    assert response.status_code == 409 and response.json()["type"].endswith("/reward-not-fulfilled")
    assert SEEN == []  # the plugin is never called for a tenant that has not enabled it
    assert (await other.balance(member["id"]))["available"] == 1000
