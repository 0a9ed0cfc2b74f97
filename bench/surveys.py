"""Survey results benchmark: ``GET /v1/surveys/{id}/results`` over a million responses, on PostgreSQL.

    .venv/bin/python -m bench.surveys --responses 1000000 --members 100000

Makes a fresh database on the local PostgreSQL (dropped afterwards), one tenant through the API (two tiers, a
segment, a survey of three questions under two factors with the 0-10 question), then writes ``--members`` members,
a quarter more invitations than ``--responses`` (spread over a year, each with the member's tier and segments) and
the responses with three answers each, straight into the tables in bulk with ``generate_series`` (the answering path
is not what is measured here). Then times the results for the whole survey and by tier, segment, month, week and day
(each twice: a cold and a warm run), through the HTTP API. Prints one Markdown table.

Target (issue 10, the results added up in SQL): a survey with 1M responses answers in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import asyncpg
import httpx

from core.app import create_app
from core.db.migrate import upgrade_async
from core.runtime import Runtime
from core.testing import create_tenant, settings_for_tests

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SURVEY = {
    "code": "bench",
    "name": "Bench survey",
    "status": "active",
    "nps_question": "Would you recommend us?",
    "factors": [
        {
            "code": "service",
            "name": "Service",
            "factors": [
                {"code": "attitude", "name": "Attitude", "questions": [{"code": "q_attitude", "text": "Kind"}]},
                {"code": "speed", "name": "Speed", "questions": [{"code": "q_speed", "text": "Quick"}]},
            ],
        },
        {"code": "savings", "name": "Benefit", "questions": [{"code": "q_savings", "text": "Worth it"}]},
    ],
}


async def seed(admin_url: str, tenant_id: uuid.UUID, survey_id: uuid.UUID, members: int, responses: int) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        tiers = {
            r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM tiers WHERE tenant_id = $1", tenant_id)
        }
        await conn.execute(
            """INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at, tier_id)
               SELECT $1, gen_random_uuid(), 'b-' || g, 'active', '{}'::jsonb, now(), now(),
                      CASE g % 3 WHEN 0 THEN $2::uuid WHEN 1 THEN $3::uuid END
               FROM generate_series(1, $4::int) g""",
            tenant_id,
            tiers["gold"],
            tiers["silver"],
            members,
        )
        invitations = responses + responses // 4
        await conn.execute(
            """WITH m AS (SELECT id, tier_id, row_number() OVER (ORDER BY id) - 1 AS n FROM members
                          WHERE tenant_id = $1)
               INSERT INTO survey_invitations (tenant_id, id, survey_id, member_id, occasion, created_at, expires_at,
                                               responded_at, tier, segments)
               SELECT $1, gen_random_uuid(), $2, m.id, 'bench:' || g,
                      now() - make_interval(days => g % 365, mins => g % 1440),
                      now() + interval '30 days',
                      CASE WHEN g <= $4::int THEN now() - make_interval(days => g % 365, mins => g % 1440)
                           + interval '3 hours' END,
                      t.code,
                      CASE WHEN m.n % 4 = 0 THEN '["regulars"]'::jsonb
                           WHEN m.n % 4 = 1 THEN '["regulars", "lapsing"]'::jsonb ELSE '[]'::jsonb END
               FROM generate_series(1, $3::int) g
               JOIN m ON m.n = g % $5::int
               LEFT JOIN tiers t ON t.tenant_id = $1 AND t.id = m.tier_id""",
            tenant_id,
            survey_id,
            invitations,
            responses,
            members,
        )
        await conn.execute(
            """INSERT INTO survey_responses (tenant_id, id, survey_id, invitation_id, member_id, channel, nps, comment,
                                             tier, segments, submitted_at)
               SELECT tenant_id, gen_random_uuid(), survey_id, id, member_id, 'api',
                      (hashtext(id::text) & 2147483647) % 11, NULL, tier, segments, responded_at
               FROM survey_invitations WHERE tenant_id = $1 AND responded_at IS NOT NULL""",
            tenant_id,
        )
        await conn.execute(
            """INSERT INTO survey_answers (tenant_id, response_id, question, survey_id, factor, parent_factor, level,
                                           value)
               SELECT r.tenant_id, r.id, q.code, r.survey_id, q.factor, q.parent, l.level,
                      (ARRAY[100, 75, 50, 25, 0])[l.level]
               FROM survey_responses r
               CROSS JOIN (VALUES ('q_attitude', 'attitude', 'service'), ('q_speed', 'speed', 'service'),
                                  ('q_savings', 'savings', NULL)) AS q(code, factor, parent)
               CROSS JOIN LATERAL (SELECT 1 + (hashtext(r.id::text || q.code) & 2147483647) % 5 AS level) l
               WHERE r.tenant_id = $1""",
            tenant_id,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def main(members: int, responses: int) -> None:
    name = f"fealty_bench_surveys_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await upgrade_async(url)
        app = create_app(settings_for_tests(url))
        runtime: Runtime = app.state["runtime"]
        _ = runtime
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client,
        ):
            tenant = await create_tenant(client)
            for rank, code in enumerate(("silver", "gold")):
                made = await tenant.post("/v1/tiers", json={"code": code, "name": code, "rank": rank + 1})
                assert made.status_code == 201, made.text
            made = await tenant.post("/v1/surveys", json=SURVEY)
            assert made.status_code == 201, made.text
            survey_id = uuid.UUID(made.json()["id"])
            started = time.monotonic()
            await seed(ADMIN.rsplit("/", 1)[0] + f"/{name}", tenant.id, survey_id, members, responses)
            seeded = time.monotonic() - started
            timings: list[tuple[str, int, float, float]] = []
            for group_by in (None, "tier", "segment", "month", "week", "day"):
                params = {"group_by": group_by} if group_by else {}
                runs = []
                for _ in range(2):
                    started = time.monotonic()
                    got = await tenant.get(f"/v1/surveys/{survey_id}/results", params=params)
                    runs.append(time.monotonic() - started)
                    assert got.status_code == 200, got.text
                body = got.json()
                assert body["responses"] == responses, body["responses"]
                timings.append((group_by or "(none)", len(body["groups"]), runs[0], runs[1]))
        load = os.getloadavg()
        print(f"| responses | {responses:,} (3 answers each; {responses + responses // 4:,} invitations) |")
        print(f"| members | {members:,} |")
        print(f"| seeding (bulk SQL, not measured) | {seeded:.1f} s |")
        print("| results `group_by` | groups | cold | warm |")
        print("| --- | --- | --- | --- |")
        for label, groups, cold, warm in timings:
            print(f"| {label} | {groups} | {cold:.2f} s | {warm:.2f} s |")
        print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    finally:
        conn = await asyncpg.connect(ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--responses", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.members, args.responses))
