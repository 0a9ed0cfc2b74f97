"""The hotel's demo tenant (plugins/hotel/demo.py), seeded alone through core's demo hook as ``fealty demo`` seeds it,
checked through the API on both databases: status, milestones, reversals, redemptions, pre-arrival care by email in
each guest's language, the report's lines."""

from __future__ import annotations

from core.demo import SeededTenant
from core.runtime import Runtime
from core.testing import AppClient, TenantHandle
from tests.demo_checks import check_ledgers, every, handle, json_of, seed_plugin_tenant
from tests.moto_server import MotoServer


async def check_hotel(t: TenantHandle, seeded: SeededTenant) -> None:
    assert len(await every(t, "/v1/members")) == 25
    holders = {tier["code"]: tier["members"] for tier in await json_of(t, "/v1/tiers")}
    assert holders["diamond"] >= 1 and holders["gold"] >= 1 and holders["silver"] >= 3
    diamond, gold = seeded.members["diamond"], seeded.members["gold"]
    status = await json_of(t, f"/v1/members/{diamond}/tier")
    assert status["tier"]["code"] == "diamond" and status["valid_until"] is not None
    progress = (await json_of(t, f"/v1/members/{gold}/tier"))["next"]
    assert progress["tier"]["code"] == "diamond" and {p["metric"] for p in progress["progress"]} == {
        "nights",
        "stays",
        "hotel_base_points",
    }
    perks = await json_of(t, f"/v1/hotel/members/{diamond}/perks")
    assert perks["butler"] is True and perks["welcome_gift"] == "a selection of green tea in the room"

    # Milestones: offered on the way, the first two chosen (points credited, a suite upgrade handed to care).
    milestones = await json_of(t, f"/v1/hotel/members/{diamond}/milestones")
    assert milestones["nights_this_year"] >= 60
    assert [(m["nights"], m["choice"]) for m in milestones["items"][:2]] == [(20, "points"), (30, "suite_upgrade")]
    care = {kind: await every(t, "/v1/care/requests", kind=kind) for kind in ("hotel.milestone", "hotel.pre_arrival")}
    assert len(care["hotel.milestone"]) >= 4
    assert {r["member_id"] for r in care["hotel.pre_arrival"]} == {diamond, gold}
    assert len(await every(t, "/v1/care/requests", kind="hotel.milestone_choice")) == 1

    # The failed payment and the corrected folio took back what their stays had earned.
    rejected = await every(t, "/v1/events", status="rejected")
    reasons = [e["reason"] for e in rejected]
    assert sum(r.startswith("hotel.payment_failed") for r in reasons) == 1
    assert sum(r.startswith("hotel.cancelled") for r in reasons) == 1
    assert any(r.startswith("hotel.ineligible_channel") for r in reasons)
    reversed_ = [e for e in await every(t, "/v1/events", status="awarded") if e["reversed_points"]]
    assert len(reversed_) == 2 and all(e["reversed_points"] == e["points"] for e in reversed_)

    # Redemptions: a free-night certificate and an afternoon tea used at the hotel.
    redemptions = await every(t, "/v1/redemptions")
    night = next(r for r in redemptions if r["member_id"] == diamond)
    assert night["fulfilment"]["certificate"] == night["voucher_code"] == seeded.extras["free_night_voucher"]
    assert [r["status"] for r in redemptions if r["member_id"] == gold] == ["used"]
    assert await check_ledgers(t) > 0


async def check_pre_arrival_care(t: TenantHandle, moto_server: MotoServer) -> None:
    """The pre-arrival emails went out in each guest's language (or wait for the member's local hours)."""
    messages = await every(t, "/v1/messages")
    assert {m["trigger"] for m in messages} == {"hotel.pre_arrival"} and len(messages) == 2
    for message in messages:
        assert message["state"] in ("sent", "deferred"), message
        if message["state"] == "sent":
            [mail] = moto_server.emails(header=("X-Fealty-Reference", message["reference"]))
            assert ("期待" in mail.subject) == (message["locale"] == "zh-CN")


async def test_the_hotel_demo_seeds_a_hotel_group_through_the_api(
    client: AppClient, runtime: Runtime, moto_server: MotoServer
) -> None:
    seeded = await seed_plugin_tenant(client, runtime, moto_server, "hotel")
    assert (seeded.plugin, seeded.key_variable, seeded.counts["members"]) == ("hotel", "KH", 25)
    t = handle(client, seeded)
    program = await json_of(t, "/v1/program")
    assert program["points_name"] == "Grand Points" and program["plugin_settings"]["hotel"]["seed_defaults"] is False
    await check_hotel(t, seeded)
    await check_pre_arrival_care(t, moto_server)
    # What fealty demo prints for it: the guests worth a look, curl commands with the tenant's key.
    diamond = seeded.members["diamond"]
    assert seeded.lines[0].startswith(f"GUEST={diamond}   # Ada Whitfield: diamond, ")
    assert 'curl -s $B/v1/hotel/members/$GUEST/perks -H "Authorization: Bearer $KH"' in seeded.lines
