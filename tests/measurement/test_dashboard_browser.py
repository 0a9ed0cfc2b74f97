"""The dashboard page in a real headless browser (Debian's chromium): served over HTTP on a loopback port, opened
through a short-lived signed link, with every chart drawn."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from core.testing import TenantHandle

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


async def _chromium(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        _require_chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--user-data-dir=" + str(Path(os.environ.get("TMPDIR", "/tmp")) / f"fealty-chromium-{os.getpid()}"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return stdout.decode()


@pytest.mark.postgres_only
async def test_the_dashboard_loads_in_chromium_with_its_charts(
    live_tenant: TenantHandle, live_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    _require_chromium()
    member = await live_tenant.enrol()
    await live_tenant.credit(member["id"], 1234)
    link = (await live_tenant.post("/v1/reports/links", json={"expires_in_minutes": 5})).json()
    url = str(live_client.base_url).rstrip("/") + link["url"][link["url"].index("/v1/") :]
    dom = await _chromium("--virtual-time-budget=5000", "--dump-dom", url)
    figures = re.findall(r'<figure data-chart="([a-z-]+)">\s*<svg', dom)
    assert figures == ["tiers", "rfm", "loyalty-types", "churn-risk", "value-concentration", "liability"], dom[:500]
    assert "Loyalty dashboard" in dom and "1,234" in dom
    screenshot = tmp_path / "dashboard.png"
    await _chromium("--window-size=1280,2000", f"--screenshot={screenshot}", url)
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 20_000
