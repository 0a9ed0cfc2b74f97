"""The rural lender's demo tenant (plugins/microfinance/demo.py), seeded alone through core's demo hook as ``fealty
demo`` seeds it, checked through the API on both databases: 60 borrowers in 12 groups, a year of repayments with a
few late and partial ones, PAR30 from the three who stopped paying, visits, follow-up tasks, the report's lines."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.runtime import Runtime
from core.testing import AppClient
from tests.demo_checks import check_ledgers, every, handle, json_of, seed_plugin_tenant
from tests.moto_server import MotoServer


@pytest.mark.postgres_only
async def test_the_microfinance_demo_seeds_a_rural_lender_through_the_api(
    pg_client: AppClient, moto_server: MotoServer
) -> None:
    runtime: Runtime = pg_client.app.state["runtime"]
    seeded = await seed_plugin_tenant(pg_client, runtime, moto_server, "microfinance")
    assert (seeded.plugin, seeded.key_variable) == ("microfinance", "KM")
    assert seeded.counts["borrowers"] == 60 and seeded.counts["groups"] == 12
    assert seeded.counts["repayments"] > 900
    t = handle(pg_client, seeded)
    program = await json_of(t, "/v1/program")
    assert program["currency"] == "CNY" and program["timezone"] == "Asia/Shanghai"
    groups = await every(t, "/v1/microfinance/groups")
    assert len(groups) == 12 and all(len(g["members"]) == 5 for g in groups)
    par = await json_of(t, "/v1/microfinance/reports/par", days=30)
    assert Decimal(par["portfolio"]["par"]) > 0 and par["portfolio"]["loans"] >= 50
    ageing = {line["key"]: line["loans"] for line in par["ageing"]}
    assert ageing["31-60"] == 3
    tasks = await every(t, "/v1/microfinance/follow-ups")
    kinds = {task["kind"] for task in tasks}
    assert {"late_instalment", "group_arrears", "attendance"} <= kinds
    late = await json_of(t, f"/v1/microfinance/loans/{seeded.extras['late_loan']}")
    assert late["days_past_due"] > 30 and late["arrears_bucket"] == "31-60"
    assert await check_ledgers(t) > 0
    assert seeded.lines[0].startswith(f"BORROWER={seeded.members['in_arrears']}")
