"""Response rates by group against a table worked out by hand: invitations record the invitee's tier and segments
when invited, so a group's rate is its answered invitations over its invitations (by tier, by segment, by period in
the program's time zone); a member who moved tier after the invitation counts in the old tier's rate and in the new
tier's results. On SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import time_machine
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from core.testing import TenantHandle
from tests.surveys.test_results import SURVEY, regulars_segment

D = Decimal
#: The program's zone is Shanghai (UTC+8): 2026-03-31 20:00 UTC is already 1 April there.
MARCH = datetime(2026, 3, 10, 9, tzinfo=UTC)
LATE_MARCH_UTC = datetime(2026, 3, 31, 20, tzinfo=UTC)

#: Who is invited in March (tier, regular?), and who answers.
#:   gold A1-A4 regular; silver B1-B3 not; no tier C1-C3, C1 and C2 regular; all invited on 10 March (campaign c1).
#:   D1 gold, not regular, invited 31 March 20:00 UTC = 1 April in Shanghai (campaign c2).
#:   Answered: A1, A2, B1 (moved to gold after the invitation, before answering), C1, D1.
#:
#: group          invitations  answered  rate     responses (profile when answering)
#: program             11          5     0.4545        5
#: tier:gold            5          3     0.6000        4   (A1, A2, D1 invited gold; B1 answered as gold)
#: tier:silver          3          1     0.3333        0   (B1's invitation counts here; its answer in gold)
#: tier:none            3          1     0.3333        1
#: segment:regulars     6          3     0.5000        3   (A1-A4, C1, C2; answered A1, A2, C1)
#: segment:none         5          2     0.4000        2   (B1-B3, C3, D1; answered B1, D1)
#: 2026-03             10          4     0.4000        4   (answers on 11 March)
#: 2026-04              1          1     1.0000        1   (D1 answers on 2 April)
EXPECTED = {
    None: {"program": (11, 5, "0.4545", 5)},
    "tier": {
        "tier:gold": (5, 3, "0.6000", 4),
        "tier:silver": (3, 1, "0.3333", 0),
        "tier:none": (3, 1, "0.3333", 1),
    },
    "segment": {"segment:regulars": (6, 3, "0.5000", 3), "segment:none": (5, 2, "0.4000", 2)},
    "month": {"2026-03": (10, 4, "0.4000", 4), "2026-04": (1, 1, "1.0000", 1)},
}


async def _invite(t: TenantHandle, survey_id: str, campaign: str, members: list[dict[str, Any]]) -> None:
    made = await t.post(
        f"/v1/surveys/{survey_id}/invitations", json={"campaign": campaign, "member_ids": [m["id"] for m in members]}
    )
    assert made.status_code == 200, made.text
    assert made.json() == {"invited": len(members), "skipped": 0}


async def _answer(t: TenantHandle, survey_id: str, member: dict[str, Any], level: str) -> None:
    listed = (await t.get(f"/v1/surveys/{survey_id}/invitations", params={"member_id": member["id"]})).json()
    (invitation,) = listed["items"]
    made = await t.post(
        f"/v1/surveys/{survey_id}/responses",
        json={"invitation_id": invitation["id"], "answers": {"q_attitude": level}, "nps": 9},
    )
    assert made.status_code == 201, made.text


async def test_response_rates_by_tier_segment_and_period_match_the_hand_table(tenant: TenantHandle) -> None:
    assert (await tenant.patch("/v1/program", json={"timezone": "Asia/Shanghai"})).status_code == 200
    for rank, code in enumerate(("silver", "gold")):
        made = await tenant.post("/v1/tiers", json={"code": code, "name": code.title(), "rank": rank + 1})
        assert made.status_code == 201, made.text
    await regulars_segment(tenant)
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "rates", "link_days": 60})).json()

    async def member(name: str, tier: str | None, regular: bool) -> dict[str, Any]:
        made = await tenant.enrol(name, attributes={"regular": regular})
        if tier is not None:
            moved = await tenant.put(f"/v1/members/{made['id']}/tier", json={"tier": tier, "reason": "test"})
            assert moved.status_code == 200, moved.text
        return made

    a = [await member(f"a{i}", "gold", True) for i in range(4)]
    b = [await member(f"b{i}", "silver", False) for i in range(3)]
    c = [await member(f"c{i}", None, i < 2) for i in range(3)]
    d1 = await member("d1", "gold", False)
    with time_machine.travel(MARCH, tick=False):
        await _invite(tenant, survey["id"], "c1", a + b + c)
    with time_machine.travel(LATE_MARCH_UTC, tick=False):
        await _invite(tenant, survey["id"], "c2", [d1])
    # The invitations recorded each member's profile when invited.
    listed = {i["member_id"]: i for i in (await tenant.get(f"/v1/surveys/{survey['id']}/invitations")).json()["items"]}
    assert len(listed) == 11
    moved = await tenant.put(f"/v1/members/{b[0]['id']}/tier", json={"tier": "gold", "reason": "test"})
    assert moved.status_code == 200, moved.text
    with time_machine.travel(MARCH + timedelta(days=1), tick=False):
        for m in (a[0], a[1], b[0], c[0]):
            await _answer(tenant, survey["id"], m, "satisfied")
    with time_machine.travel(datetime(2026, 4, 2, 3, tzinfo=UTC), tick=False):
        await _answer(tenant, survey["id"], d1, "very_satisfied")
        for group_by, expected in EXPECTED.items():
            params = {"group_by": group_by} if group_by else {}
            results = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params=params)).json()
            got = {
                g["group"]: (g["invitations"], g["answered_invitations"], g["response_rate"], g["responses"])
                for g in results["groups"]
            }
            assert got == expected, (group_by, got)
            assert (results["invitations"], results["answered_invitations"]) == (11, 5)
            assert results["response_rate"] == "0.4545" and results["responses"] == 5
        # A group with invitations and no answers is listed, with its counts at zero.
        by_tier = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params={"group_by": "tier"})).json()
        silver = next(g for g in by_tier["groups"] if g["group"] == "tier:silver")
        assert silver["nps"] == {"score": None, "answers": 0, "promoters": 0, "passives": 0, "detractors": 0}
        assert all(f["answers"] == 0 and f["standardised"] is None for f in silver["factors"])
        gold = next(g for g in by_tier["groups"] if g["group"] == "tier:gold")
        # Gold answered satisfied (A1, A2, B1) and very satisfied (D1): (3 x 75 + 100) / (100 x 4) = 81.25.
        attitude = next(f for f in gold["factors"] if f["code"] == "attitude")
        assert D(attitude["standardised"]) == D("81.25") and gold["nps"]["promoters"] == 4
        # By week (ISO, local): 10 March is 2026-W11, 1 April (local) 2026-W14.
        weeks = (await tenant.get(f"/v1/surveys/{survey['id']}/results", params={"group_by": "week"})).json()
        assert {g["group"]: (g["invitations"], g["responses"]) for g in weeks["groups"]} == {
            "2026-W11": (10, 4),
            "2026-W14": (1, 1),
        }
        # A period: the invitations made in it (the late-March one is April's in Shanghai, so not in March's).
        march = (
            await tenant.get(
                f"/v1/surveys/{survey['id']}/results",
                params={"since": "2026-03-01T00:00:00+08:00", "until": "2026-04-01T00:00:00+08:00", "group_by": "day"},
            )
        ).json()
        assert (march["invitations"], march["answered_invitations"], march["responses"]) == (10, 4, 4)
        assert {g["group"]: g["invitations"] for g in march["groups"]} == {"2026-03-10": 10, "2026-03-11": 0}


async def test_migration_0028_backfills_invitations_made_before_it(tenant: TenantHandle, database_url: str) -> None:
    """Invitations made before 0028 had no profile: an answered one takes its response's tier and segments, an
    unanswered one the member's tier at migration time and no segments (it counts in no segment's rate)."""
    await tenant.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})
    await tenant.post(
        "/v1/segments",
        json={
            "code": "regulars",
            "name": "Regulars",
            "conditions": [{"field": "member.attributes.regular", "op": "eq", "value": True}],
        },
    )
    survey = (await tenant.post("/v1/surveys", json=SURVEY | {"code": "old"})).json()
    answered = await tenant.enrol("old-1", attributes={"regular": True})
    waiting = await tenant.enrol("old-2", attributes={"regular": True})
    await tenant.put(f"/v1/members/{answered['id']}/tier", json={"tier": "gold", "reason": "test"})
    await _invite(tenant, survey["id"], "before", [answered, waiting])
    await _answer(tenant, survey["id"], answered, "satisfied")
    # Promoted after the invitation, before the migration: the backfill can only know the tier now.
    await tenant.put(f"/v1/members/{waiting['id']}/tier", json={"tier": "gold", "reason": "test"})

    engine = create_async_engine(database_url)  # the owner, as `fealty migrate` runs
    try:
        async with engine.begin() as conn:
            wipe = text("UPDATE survey_invitations SET tier = NULL, segments = NULL WHERE tenant_id = :tenant")
            await conn.execute(wipe.bindparams(bindparam("tenant", type_=Uuid)), {"tenant": tenant.id})
        async with engine.begin() as conn:
            await conn.run_sync(_backfill)
    finally:
        await engine.dispose()
    url = f"/v1/surveys/{survey['id']}/results"

    def rates(results: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {g["group"]: (g["invitations"], g["answered_invitations"]) for g in results["groups"]}

    assert rates((await tenant.get(url, params={"group_by": "tier"})).json()) == {"tier:gold": (2, 1)}
    assert rates((await tenant.get(url, params={"group_by": "segment"})).json()) == {"segment:regulars": (1, 1)}
    assert rates((await tenant.get(url)).json()) == {"program": (2, 1)}


def _backfill(sync_conn: Any) -> None:
    module = importlib.import_module("core.db.migrations.versions.0028_invitation_profile")
    with Operations.context(MigrationContext.configure(sync_conn)):
        module.backfill(sync_conn.dialect.name == "postgresql")
