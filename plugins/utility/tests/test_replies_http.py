"""A member's "still out" relayed over HTTP (``POST /v1/care/replies``, the real route) answering the restoration
notice: the outage is reopened for that account and one case is opened; the same reply through another tenant's
key reaches nothing of this tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.testing import MakeTenant, TenantHandle
from plugins.utility.tests.conftest import account, care_rules, enable_utility, messages, outage

#: 11:00 in London: the restoration notices go at once (no quiet hours).
NOON = datetime(2031, 6, 10, 10, tzinfo=UTC)
MEDICAL = {"needs": ["medical_equipment"], "consent": True, "source": "customer-call"}


async def _states(t: TenantHandle, outage_id: str) -> dict[str, tuple[bool, bool]]:
    """Each affected account: (restored, reopened)."""
    items = (await t.get(f"/v1/utility/outages/{outage_id}/accounts")).json()["items"]
    return {i["account_id"]: (i["restored_at"] is not None, i["reopened_at"] is not None) for i in items}


async def _cases(t: TenantHandle) -> list[dict]:
    response = await t.get("/v1/cases")
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def test_still_out_over_http_reopens_the_account_and_opens_one_case(make_tenant: MakeTenant) -> None:
    with time_machine.travel(NOON, tick=True):
        t = await enable_utility(await make_tenant())
        other = await enable_utility(await make_tenant())
        await care_rules(t, "utility.restored")
        home = await account(t, psr=MEDICAL)
        neighbour = await account(t)
        created = await outage(t, starts_at=(datetime.now(UTC) - timedelta(hours=14)).isoformat(), etr=None)
        assert (await t.post(f"/v1/utility/outages/{created['id']}/restore", json={})).status_code == 200
        notices = {m["member_id"]: m for m in await messages(t, trigger="utility.restored")}
        notice = notices[home["member_id"]]
        assert notice["occasion_key"] == f"utility:{created['id']}:{home['id']}:restored"
        restored = {home["id"]: (True, False), neighbour["id"]: (True, False)}
        assert await _states(t, created["id"]) == restored

        # another tenant's key, naming this tenant's message or member: not found there, nothing changes here
        for given in ({"message_id": notice["id"]}, {"member_id": home["member_id"]}):
            foreign = await other.post("/v1/care/replies", json={"channel": "email", "text": "still out"} | given)
            assert foreign.status_code == 404, foreign.text
        assert await _states(t, created["id"]) == restored
        assert await _cases(t) == [] and await _cases(other) == []

        body = {"channel": "email", "text": "Still out!", "message_id": notice["id"]}
        reply = await t.post("/v1/care/replies", json=body)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert (answer["outcome"], answer["claimed_by"]) == ("claimed", "utility")
        assert answer["claim"]["detail"] == {"outage_id": created["id"], "account_id": home["id"], "reopened": True}
        assert answer["member_ids"] == [home["member_id"]] and answer["case_id"] is not None
        assert await _states(t, created["id"]) == {home["id"]: (False, True), neighbour["id"]: (True, False)}
        case = (await t.get(f"/v1/cases/{answer['case_id']}")).json()
        assert (case["category"], case["priority"], case["member_id"]) == (
            "utility.still_out",
            "urgent",  # a medical-equipment customer
            home["member_id"],
        )
        assert case["related"]["object"] == f"utility.outage:{created['id']}"

        # the member sends it again (a retry, or impatience): the same case, the account still reopened once
        again = await t.post("/v1/care/replies", json=body | {"text": "仍然停电"})
        assert again.status_code == 200 and again.json()["case_id"] == answer["case_id"], again.text
        assert [c["id"] for c in await _cases(t)] == [answer["case_id"]]
        assert await _cases(other) == []
