"""``fealty tiers recalculate`` starts the job, runs it and shows its progress; ``fealty jobs watch`` follows one."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from core.testing import TenantHandle


async def _fealty(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEALTY_") or k.startswith("FEALTY_TEST_")}
    env |= {"FEALTY_DATABASE_URL": database_url, "FEALTY_LOG_LEVEL": "WARNING", "FEALTY_MIGRATE_ON_START": "false"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_command_runs_the_recalculation_with_a_progress_bar(tenant: TenantHandle, database_url: str) -> None:
    for i in range(3):
        await tenant.enrol(f"c-{i}")
    await tenant.post("/v1/tiers", json={"code": "base", "name": "Base", "rank": 0})
    code, out, err = await _fealty(database_url, "tiers", "recalculate", "--tenant", tenant.slug)
    assert code == 0, err
    final = json.loads(out.strip().splitlines()[-1])
    assert final["status"] == "done" and final["result"] == {"evaluated": 3, "counts": {"enrolment": 3}}
    assert "tiers.recalculate" in err  # the progress bar's label (stderr)
    job_id = final["id"]
    assert (await tenant.get(f"/v1/jobs/{job_id}")).json()["status"] == "done"

    code, out, _ = await _fealty(database_url, "jobs", "watch", job_id)
    assert code == 0 and json.loads(out)["status"] == "done"
