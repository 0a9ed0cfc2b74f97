"""schemathesis against the served app, every route (core's, hotel's and fuel's), all its checks: any finding fails.

The app is served on a loopback port (its own SQLite database, hotel and fuel enabled for the fuzzing tenant) and
``st run`` fuzzes it with a bounded number of examples per operation, from a fixed seed so that a failure
reproduces. ``make fuzz`` runs the same with many more examples and a random seed (``FEALTY_TEST_FUZZ_EXAMPLES``,
``FEALTY_TEST_FUZZ_SEED``). See docs/api.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from core.testing import TEST_PLATFORM_KEY, LiveServer

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
EXAMPLES = int(os.environ.get("FEALTY_TEST_FUZZ_EXAMPLES", "4"))
SEED = os.environ.get("FEALTY_TEST_FUZZ_SEED", "20261205")
ST = Path(sys.executable).with_name("st")


async def test_schemathesis_finds_nothing(contract_server: LiveServer) -> None:
    server = contract_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        made = await http.post(
            "/v1/platform/tenants",
            json={
                "name": "Fuzz",
                "slug": f"fuzz-{uuid.uuid4().hex[:8]}",
                "timezone": "Europe/Paris",
                "currency": "EUR",
                "country": "FR",
                "plugins": ["hotel", "fuel", "utility"],
            },
            headers={"Authorization": f"Bearer {TEST_PLATFORM_KEY}"},
        )
        assert made.status_code == 201, made.text
        key = made.json()["api_key"]["secret"]
        fuzzing = {
            "FEALTY_FUZZ_TENANT_ID": made.json()["tenant"]["id"],
            "FEALTY_FUZZ_KEY_ID": made.json()["api_key"]["id"],
        }
        # The schema is built on its first request (seconds on a loaded machine): built here, served at once to st.
        assert (await http.get("/schema/openapi.json")).status_code == 200
    command = [
        str(ST),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{server.url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    if SEED != "random":
        command += ["--seed", SEED]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.fuzz_hooks",
        "FEALTY_FUZZ_PLATFORM_KEY": TEST_PLATFORM_KEY,
        **fuzzing,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600 + 60 * EXAMPLES, check=False
    )
    report = done.stdout + done.stderr
    # The findings first (each with a curl that reproduces it), then the summary.
    findings = report[report.find("=== FAILURES") :] if "=== FAILURES" in report else report[-20000:]
    assert done.returncode == 0, findings[:60000]
    assert "0 failures" in report or "passed" in report, report[-5000:]
    for warning in ("Authentication failed",):  # the keys must work: a fuzz of 401s proves nothing
        assert warning not in report, report[-5000:]
