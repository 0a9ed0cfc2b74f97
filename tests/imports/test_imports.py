"""Imports over HTTP and the worker, on both databases: members and opening balances from CSV, bad rows reported
one by one, a re-run applying nothing twice, the points posted through the ledger with their cause."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.runtime import Runtime
from core.testing import AppClient, LiveServer, TenantHandle, create_tenant
from core.worker import tick

MEMBERS = """external_id,name,email,phone,birthday,attr.customer_nature
imp-1,Ann,ann@example.com,,1990-04-01,government
imp-2,Bob,not-an-email,,,retail
imp-3,Cy,,,1990-02-31,
,Nobody,,,,
imp-4,=HYPERLINK("x"),,,,key_account
"""


async def _run(tenant: TenantHandle, runtime: Runtime, **body: Any) -> dict[str, Any]:
    created = await tenant.post("/v1/imports", json=body)
    assert created.status_code == 202, created.text
    await tick(runtime, tenant.id)
    result: dict[str, Any] = (await tenant.get(f"/v1/imports/{created.json()['id']}")).json()
    return result


async def test_members_then_opening_balances_with_bad_rows_and_re_runs(tenant: TenantHandle, runtime: Runtime) -> None:
    first = await _run(tenant, runtime, kind="members", csv=MEMBERS)
    assert (first["state"], first["rows_total"], first["rows_done"], first["percent"]) == ("done", 5, 5, 100.0)
    assert (first["created"], first["skipped"], first["failed"]) == (2, 0, 3)
    assert [(e["row"], e["field"]) for e in first["errors"]] == [(3, "email"), (4, "birthday"), (5, "external_id")]
    ann = (await tenant.get("/v1/members", params={"external_id": "imp-1"})).json()["items"][0]
    assert ann["attributes"] == {"customer_nature": "government"} and ann["email"] == "ann@example.com"
    errors = (await tenant.get(f"/v1/imports/{first['id']}/errors.csv")).text
    assert list(csv.reader(io.StringIO(errors)))[0] == ["row", "field", "detail"]
    assert len(errors.splitlines()) == 4

    again = await _run(tenant, runtime, kind="members", csv=MEMBERS)
    assert (again["created"], again["skipped"], again["failed"]) == (0, 2, 3)  # nobody enrolled twice

    balances = "external_id,points,reason\nimp-1,1500,migrated from the old program\nimp-4,200,\nimp-9,10,\nimp-1,-5,\n"
    opening = await _run(tenant, runtime, kind="opening_balances", csv=balances)
    assert (opening["created"], opening["skipped"], opening["failed"]) == (2, 0, 2)
    assert [(e["row"], e["field"]) for e in opening["errors"]] == [(4, "external_id"), (5, "points")]
    rerun = await _run(tenant, runtime, kind="opening_balances", csv=balances + "imp-1,99,\n")
    assert (rerun["created"], rerun["skipped"], rerun["failed"]) == (0, 3, 2)  # an opening balance is posted once
    assert (await tenant.balance(ann["id"]))["available"] == 1500
    [entry] = (await tenant.get(f"/v1/members/{ann['id']}/ledger")).json()["items"]
    assert entry["points"] == 1500 and entry["cause"]["type"] == "system"
    assert entry["cause"]["id"].startswith(f"import:{opening['id']}:")
    assert entry["reason"] == "migrated from the old program"


async def test_bad_imports_are_refused_whole(tenant: TenantHandle, make_tenant) -> None:
    for body, field in [
        ({"kind": "members"}, "csv"),
        ({"kind": "members", "csv": "a,b\n1,2\n"}, "csv"),
        ({"kind": "members", "csv": "external_id,password\nx,y\n"}, "csv"),
        ({"kind": "opening_balances", "csv": "external_id\nx\n"}, "csv"),
        ({"kind": "points", "csv": "external_id\nx\n"}, "kind"),
        ({"kind": "members", "csv": "external_id\nx\n", "s3": {"bucket": "abc", "key": "k"}}, "csv"),
    ]:
        response = await tenant.post("/v1/imports", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    created = (await tenant.post("/v1/imports", json={"kind": "members", "csv": "external_id\nx-1\n"})).json()
    other = await make_tenant()
    assert (await other.get(f"/v1/imports/{created['id']}")).status_code == 404


@pytest.mark.postgres_only
async def test_fealty_import_shows_a_progress_bar(
    live_server: LiveServer, live_client: httpx.AsyncClient, pg_client: AppClient, tmp_path: Path
) -> None:
    tenant = await create_tenant(live_client)
    runtime: Runtime = pg_client.app.state["runtime"]  # the same database: this test plays the worker
    path = tmp_path / "members.csv"
    path.write_text("external_id,name\n" + "".join(f"cli-{i},Member {i}\n" for i in range(450)) + ",nobody\n")
    command = [sys.executable, "-m", "core.cli", "import", str(path), "--kind", "members", "--url", live_server.url]
    command += ["--key", tenant.key, "--poll", "0.2"]
    running = asyncio.create_task(
        asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=180)
    )
    while not running.done():
        await tick(runtime, tenant.id)
        await asyncio.sleep(0.2)
    done = await running
    assert done.returncode == 0, done.stderr
    assert "Importing members" in done.stdout
    assert "created 450, skipped 0 (already there), failed 1" in done.stdout
    assert "row 452: external_id: external_id is required" in done.stdout
