"""Tenant isolation: through the API (both databases), in the ORM, and by PostgreSQL row-level security."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from core.db.base import tenant_tables
from core.db.engine import create_engine, create_sessionmaker, tenant_session
from core.db.tenancy import tenant_context
from core.errors import CrossTenantWrite, MissingTenantContext
from core.members.models import Member
from core.testing import AppClient, MakeTenant, TenantHandle, settings_for_tests

#: How to fill each path parameter with one of the other tenant's resources. A new parameter name fails the test
#: below until it is added here, so every new endpoint is tried across tenants.
PATH_PARAMS = {
    "member_id": "member",
    "key_id": "key",
    "rule_id": "rule",
    "tier_id": "tier",
    "segment_id": "segment",
    "campaign_id": "campaign",
    "id": "event",
    "reward_id": "reward",
    "redemption_id": "redemption",
    "endpoint_id": "endpoint",
    "delivery_id": "delivery",
    "model_id": "measurement_model",
    "export_id": "export",
    "import_id": "import",
    "template_id": "care_template",
    "care_rule_id": "care_rule",
    "holiday_id": "care_holiday",
    "channel": "suppression_channel",
    "address": "suppression_address",
    "job_id": "job",
    "category_id": "case_category",
    "case_id": "case",
    "survey_id": "survey",
}
#: A valid body per operation, so the request reaches the lookup (a 422 would prove nothing).
BODIES = {
    "adjustPoints": {"points": -1, "reason": "steal"},
    "updateMember": {"name": "pwned"},
    "updateEarningRule": {"name": "pwned"},
    "updateTier": {"name": "pwned"},
    "setMemberTier": {"tier": "gold", "reason": "pwned"},
    "updateSegment": {"name": "pwned"},
    "updateCampaign": {"name": "pwned"},
    "reverseEvent": {"reason": "pwned"},
    "approveEvent": {"reason": "pwned"},
    "rejectEvent": {"reason": "pwned"},
    "updateReward": {"name": "pwned", "stock": 1000},
    "useRedemption": {"location": "elsewhere"},
    "cancelRedemption": {"reason": "steal"},
    "updateWebhookEndpoint": {"url": "https://attacker.example.com/hook", "status": "disabled"},
    "rotateWebhookEndpointSecret": {"keep_previous_hours": 1},
    "updateMeasurementModel": {"name": "pwned", "active": False},
    "computeSatisfactionIndex": {"groups": [{"group": "program", "factors": {}}]},
    "previewLoyaltyIndex": {"facts": {}},
    "updateCareTemplate": {"name": "pwned"},
    "previewCareTemplate": {},
    "updateCareRule": {"name": "pwned", "active": False},
    "updateCaseCategory": {"default_priority": "low"},
    "updateCase": {"priority": "low"},
    "classifyCase": {"category": "victim"},
    "assignCase": {"assignee": "attacker"},
    "investigateCase": {},
    "resolveCase": {"cause": "x", "prevention": "y"},
    "respondToCase": {"note": "pwned"},
    "replyToCase": {"note": "pwned"},
    "closeCase": {},
    "reopenCase": {},
    "updateSurvey": {"name": "pwned", "status": "closed"},
    "inviteToSurvey": {"campaign": "pwn", "member_ids": []},
    "answerSurvey": {"answers": {"q1": "satisfied"}},
}
#: Routes that take no tenant resource id (or are the platform's, which sees every tenant by design).
#: Reports are named, not tenant resources: each tenant reads its own (tests/measurement/test_reports.py).
SKIP_PREFIXES = ("/v1/platform/", "/v1/reports/{name}")


async def _victim(make_tenant: MakeTenant) -> tuple[TenantHandle, dict[str, str]]:
    victim = await make_tenant()
    member = await victim.enrol("victim-1", name="Victim", email="victim@example.com")
    await victim.credit(member["id"], 800)
    key = (await victim.post("/v1/api-keys", json={"name": "victim key", "scopes": ["members:read"]})).json()
    rule = (
        await victim.post("/v1/earning-rules", json={"name": "victim rule", "kind": "per_amount", "points": "1"})
    ).json()
    tier = (await victim.post("/v1/tiers", json={"code": "gold", "name": "Gold", "rank": 1})).json()
    segment = (
        await victim.post(
            "/v1/segments",
            json={
                "code": "victims",
                "name": "Victims",
                "conditions": [{"field": "member.locale", "op": "exists", "value": True}],
            },
        )
    ).json()
    campaign = (
        await victim.post(
            "/v1/campaigns",
            json={
                "code": "victim-campaign",
                "name": "Victim campaign",
                "starts_at": "2020-01-01T00:00:00Z",
                "ends_at": "2099-01-01T00:00:00Z",
                "rules": [{"name": "x2", "kind": "multiplier", "points": "2"}],
            },
        )
    ).json()
    event = (
        await victim.post(
            "/v1/events",
            json={
                "type": "purchase",
                "event_id": "victim-pos-1",
                "member": {"member_id": member["id"]},
                "occurred_at": "2026-01-01T00:00:00Z",
                "amount": "10",
            },
        )
    ).json()
    reward = (await victim.post("/v1/rewards", json={"code": "VICTIM-1", "name": "Victim", "points_cost": 100})).json()
    redemption = (
        await victim.post("/v1/redemptions", json={"member_id": member["id"], "reward_id": reward["id"]})
    ).json()
    # Port 9 (discard) on loopback: nothing listens, so the queued test delivery fails fast if a worker tries it.
    endpoint = (
        await victim.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/victim", "event_types": ["*"]})
    ).json()
    delivery = (await victim.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")).json()
    model = (await victim.post("/v1/measurement/models/copy", json={"default": "satisfaction"})).json()
    care_template = (
        await victim.post("/v1/care/templates", json={"name": "victim", "texts": {"en": {"body": "Hi"}}})
    ).json()
    care_rule = (
        await victim.post(
            "/v1/care/rules",
            json={"name": "victim", "trigger": "welcome", "template_id": care_template["id"], "channels": ["email"]},
        )
    ).json()
    care_holiday = (await victim.post("/v1/care/calendar", json={"day": "2030-01-02", "name": "Victim day"})).json()
    await victim.post("/v1/care/suppressions", json={"channel": "email", "address": "held@example.com"})
    case_category = (await victim.post("/v1/case-categories", json={"code": "victim", "names": {"en": "V"}})).json()
    case = (await victim.post("/v1/cases", json={"member_id": member["id"], "subject": "victim's case"})).json()
    survey = (
        await victim.post(
            "/v1/surveys",
            json={
                "code": "victim",
                "name": "Victim survey",
                "status": "active",
                "factors": [{"code": "f", "name": "F", "questions": [{"code": "q1", "text": "?"}]}],
            },
        )
    ).json()
    job = (await victim.post("/v1/tiers/recalculate")).json()
    export = (await victim.post("/v1/exports", json={"kind": "members"})).json()
    imported = (await victim.post("/v1/imports", json={"kind": "members", "csv": "external_id\nvictim-9\n"})).json()
    return victim, {
        "job": job["id"],
        "case_category": case_category["id"],
        "case": case["id"],
        "survey": survey["id"],
        "import": imported["id"],
        "export": export["id"],
        "care_template": care_template["id"],
        "care_rule": care_rule["id"],
        "care_holiday": care_holiday["id"],
        "measurement_model": model["id"],
        "suppression_channel": "email",
        "suppression_address": "held@example.com",
        "endpoint": endpoint["id"],
        "delivery": delivery["id"],
        "reward": reward["id"],
        "redemption": redemption["id"],
        "member": member["id"],
        "key": key["id"],
        "rule": rule["id"],
        "tier": tier["id"],
        "segment": segment["id"],
        "campaign": campaign["id"],
        "event": event["id"],
    }


async def test_every_endpoint_answers_404_for_another_tenants_ids(client: AppClient, make_tenant: MakeTenant) -> None:
    attacker = await make_tenant()
    await attacker.enrol("attacker-1")
    victim, ids = await _victim(make_tenant)
    before = (await victim.get(f"/v1/members/{ids['member']}")).json()
    balance_before = await victim.balance(ids["member"])
    endpoint_before = (await victim.get(f"/v1/webhook-endpoints/{ids['endpoint']}")).json()
    schema = (await client.get("/schema/openapi.json")).json()
    tried = 0
    for path, operations in schema["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        if not params or path.startswith(SKIP_PREFIXES):
            continue
        unknown = [p for p in params if p not in PATH_PARAMS]
        assert not unknown, f"{path}: add {unknown} to PATH_PARAMS so isolation is tested for it"
        url = path
        for p in params:
            url = url.replace("{" + p + "}", ids[PATH_PARAMS[p]])
        for method, operation in operations.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            body = BODIES.get(operation["operationId"], {}) if method in ("post", "patch", "put") else None
            response = await attacker.client.request(method.upper(), url, json=body, headers=attacker.headers)
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code} {response.text}"
            assert "victim" not in response.text.lower()
            tried += 1
    assert tried >= 8
    after = (await victim.get(f"/v1/members/{ids['member']}")).json()
    assert after == before
    balance_after = await victim.balance(ids["member"])
    assert balance_after["available"] == balance_before["available"] == 720
    event = (await victim.get(f"/v1/events/{ids['event']}")).json()
    assert event["status"] == "awarded" and event["reversed_points"] == 0
    reward = (await victim.get(f"/v1/rewards/{ids['reward']}")).json()
    assert (reward["name"], reward["active"], reward["stock"]) == ("Victim", True, None)
    assert (await victim.get(f"/v1/redemptions/{ids['redemption']}")).json()["status"] == "issued"
    assert (await victim.get(f"/v1/webhook-endpoints/{ids['endpoint']}")).json() == endpoint_before
    assert [d["id"] for d in (await victim.get("/v1/webhook-deliveries")).json()["items"]] == [ids["delivery"]]
    model = (await victim.get(f"/v1/measurement/models/{ids['measurement_model']}")).json()
    assert (model["name"], model["active"]) == ("Satisfaction index (default)", True)
    assert [m["id"] for m in (await attacker.get("/v1/measurement/models")).json()] == []
    assert [s["address"] for s in (await victim.get("/v1/care/suppressions")).json()["items"]] == ["held@example.com"]
    listing = (await attacker.get("/v1/members", params={"external_id": "victim-1"})).json()
    assert listing["items"] == []
    keys = (await attacker.get("/v1/api-keys")).json()["items"]
    assert ids["key"] not in {k["id"] for k in keys}


async def test_orm_refuses_queries_without_a_tenant(runtime) -> None:
    async with runtime.sessionmaker() as session:
        with tenant_context(None), pytest.raises(MissingTenantContext):
            await session.execute(select(Member))
        with tenant_context(None), pytest.raises(MissingTenantContext):
            await session.execute(select(Member.__table__))  # Core, no criterion
        with tenant_context(uuid.uuid4()), pytest.raises(MissingTenantContext):
            await session.execute(select(Member.__table__).where(Member.__table__.c.external_id == "x"))


async def test_orm_refuses_to_write_another_tenants_row(runtime, tenant: TenantHandle, make_tenant) -> None:
    other = await make_tenant()
    with pytest.raises(CrossTenantWrite):
        async with tenant_session(runtime.sessionmaker, tenant.id) as session:
            session.add(
                Member(tenant_id=other.id, id=uuid.uuid4(), external_id="sneaky", status="active", attributes={})
            )
            await session.flush()


# --- PostgreSQL row-level security, checked below the application ---------------------------------------------------


@pytest.fixture
async def app_role_engine(postgres_url: str):
    """A connection exactly as the application makes it: switched to the app role, no tenant set."""
    engine = create_engine(settings_for_tests(postgres_url))
    yield engine
    await engine.dispose()


_CONSENT = {"channel": "email", "purpose": "marketing", "granted": True}


async def test_app_role_without_tenant_reads_nothing(
    app_role_engine, postgres_url: str, pg_tenant: TenantHandle
) -> None:
    member = await pg_tenant.enrol(email="someone@example.com", consents=[_CONSENT])
    await pg_tenant.credit(member["id"], 30)
    await pg_tenant.post(f"/v1/members/{member['id']}/points/adjust", json={"points": -5, "reason": "spent"})
    # As the owner (no row-level security applies to it here), the tables are not empty: a count of zero below
    # is then the policy's doing, not an empty table's.
    owner = create_engine(settings_for_tests(postgres_url), app_role="")
    try:
        async with owner.connect() as conn:
            stored = {
                table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() for table in tenant_tables()
            }
    finally:
        await owner.dispose()
    filled = {table for table, count in stored.items() if count}
    assert {
        "members",
        "member_consents",
        "consent_changes",
        "ledger_entries",
        "lots",
        "point_balances",
        "api_keys",
        "programs",
    } <= filled
    async with app_role_engine.connect() as conn:
        assert (await conn.execute(text("SELECT current_user"))).scalar() == "fealty_app"
        for table in tenant_tables():
            count = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert count == 0, f"{table} visible without a tenant ({stored[table]} rows stored)"


async def test_app_role_with_tenant_a_cannot_touch_b(app_role_engine, pg_client: AppClient) -> None:
    from core.testing import create_tenant

    a = await create_tenant(pg_client)
    b = await create_tenant(pg_client)
    b_member = await b.enrol("b-1")
    await b.credit(b_member["id"], 50)
    sessionmaker = create_sessionmaker(app_role_engine)
    async with tenant_session(sessionmaker, a.id) as session:
        conn = await session.connection()
        rows = (await conn.execute(text("SELECT id FROM members WHERE tenant_id = :b"), {"b": b.id})).all()
        assert rows == []
        updated = await conn.execute(text("UPDATE members SET name = 'x' WHERE tenant_id = :b"), {"b": b.id})
        assert updated.rowcount == 0
        deleted = await conn.execute(text("DELETE FROM point_balances WHERE tenant_id = :b"), {"b": b.id})
        assert deleted.rowcount == 0
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(sessionmaker, a.id) as session:
            conn = await session.connection()
            await conn.execute(
                text(
                    "INSERT INTO members (tenant_id, id, external_id, status, attributes, created_at, updated_at) "
                    "VALUES (:b, :id, 'planted', 'active', '{}', now(), now())"
                ),
                {"b": b.id, "id": uuid.uuid4()},
            )
    assert (await b.balance(b_member["id"]))["available"] == 50
    assert (await b.get("/v1/members", params={"external_id": "planted"})).json()["items"] == []


async def test_app_role_cannot_rewrite_history(app_role_engine, pg_tenant: TenantHandle) -> None:
    member = await pg_tenant.enrol()
    await pg_tenant.credit(member["id"], 10)
    sessionmaker = create_sessionmaker(app_role_engine)
    for statement in (
        "UPDATE ledger_entries SET points = 1000",
        "DELETE FROM ledger_entries",
        "DELETE FROM lot_consumptions",
        "UPDATE consent_changes SET granted = true",
    ):
        with pytest.raises(ProgrammingError, match="permission denied"):
            async with tenant_session(sessionmaker, pg_tenant.id) as session:
                await (await session.connection()).execute(text(statement))


async def test_app_role_has_no_way_around_the_policies(app_role_engine) -> None:
    async with app_role_engine.connect() as conn:
        role = (
            await conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))
        ).one()
        assert role == (False, False)
        owned = (
            await conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
            )
        ).scalar()
        assert owned == 0
        # A session-level SET is possible for a determined attacker with SQL access, which the app never gives:
        # the app only ever uses set_config(..., true), which ends with the transaction.
        await conn.execute(text("SELECT set_config('app.tenant_id', gen_random_uuid()::text, true)"))
        await conn.commit()
        assert (await conn.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar() in ("", None)


async def test_the_app_role_survives_a_failed_transaction(app_role_engine) -> None:
    """A rolled-back first transaction must not return a pooled connection to the login role."""
    for _ in range(3):
        async with app_role_engine.connect() as conn:
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT 1/0"))
            await conn.rollback()
            await conn.execute(text("RESET ROLE"))
            assert (await conn.execute(text("SELECT current_user"))).scalar() == "fealty_app"
