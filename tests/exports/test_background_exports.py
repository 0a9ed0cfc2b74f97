"""Background exports to S3 on a real moto server, on both databases: CSV and Parquet, progress, the presigned
link downloading exactly the rows, a report export, a bucket that does not exist, and another tenant's export."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest_asyncio

from core.app import create_app
from core.runtime import Runtime
from core.testing import TenantHandle, create_tenant, settings_for_tests
from core.worker import tick
from tests.moto_server import MotoServer


@pytest_asyncio.fixture
async def s3_app(database_url: str, moto_server: MotoServer) -> AsyncIterator[httpx.AsyncClient]:
    """The API with S3 on the moto server (exports bucket made by the first export)."""
    app = create_app(settings_for_tests(database_url, **moto_server.settings(exports_bucket="fealty-test-exports")))
    started, stop = asyncio.Event(), asyncio.Event()

    async def keep_running() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(keep_running())
    await started.wait()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60
    ) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    stop.set()
    await task


async def _export(tenant: TenantHandle, runtime: Runtime, **body: Any) -> dict[str, Any]:
    created = await tenant.post("/v1/exports", json=body)
    assert created.status_code == 202, created.text
    export = created.json()
    assert (export["state"], export["percent"], export["download_url"]) == ("queued", 0.0, None)
    await tick(runtime, tenant.id)
    done = (await tenant.get(f"/v1/exports/{export['id']}")).json()
    return done


async def test_exports_to_s3_with_progress_and_a_presigned_link(s3_app: httpx.AsyncClient) -> None:
    runtime: Runtime = s3_app.app.state["runtime"]  # type: ignore[attr-defined]
    tenant = await create_tenant(s3_app)
    members = [await tenant.enrol(f"exp-{i}", name="=cmd|' /C calc'!A0" if i == 0 else None) for i in range(7)]
    for m in members:
        await tenant.credit(m["id"], 100)

    done = await _export(tenant, runtime, kind="members", format="csv")
    assert (done["state"], done["rows_done"], done["rows_total"], done["percent"]) == ("done", 7, 7, 100.0)
    assert done["key"].startswith(f"tenants/{tenant.id}/exports/members-") and done["key"].endswith(".csv")
    assert done["bytes_written"] > 0
    async with httpx.AsyncClient() as plain:  # the presigned link works without credentials
        body = (await plain.get(done["download_url"])).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(r["external_id"] for r in rows) == [f"exp-{i}" for i in range(7)]
    assert {r["available"] for r in rows} == {"100"}

    ledger = await _export(tenant, runtime, kind="ledger", format="parquet")
    assert (ledger["state"], ledger["rows_done"]) == ("done", 7)
    async with httpx.AsyncClient() as plain:
        table = pq.read_table(io.BytesIO((await plain.get(ledger["download_url"])).content))
    assert table.num_rows == 7
    assert table.schema.field("points").type == "int64"
    assert str(table.schema.field("created_at").type).startswith("timestamp[us, tz=UTC]")
    assert sum(table.column("points").to_pylist()) == 700

    report = await _export(tenant, runtime, kind="report:liability", format="csv")
    assert report["state"] == "done"
    async with httpx.AsyncClient() as plain:
        text = (await plain.get(report["download_url"])).text
    assert text.splitlines()[0].startswith("month,opening,earn")

    other = await create_tenant(s3_app)
    assert (await other.get(f"/v1/exports/{done['id']}")).status_code == 404


async def test_bad_exports_are_refused_or_fail_cleanly(s3_app: httpx.AsyncClient) -> None:
    runtime: Runtime = s3_app.app.state["runtime"]  # type: ignore[attr-defined]
    tenant = await create_tenant(s3_app)
    for body, field in [
        ({"kind": "passwords"}, "kind"),
        ({"kind": "report:nonsense"}, "kind"),
        ({"kind": "members", "format": "xlsx"}, "format"),
        ({"kind": "members", "bucket": "Not_A_Bucket"}, "bucket"),
    ]:
        response = await tenant.post("/v1/exports", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    failed = await _export(tenant, runtime, kind="members", bucket="no-such-tenant-bucket")
    assert failed["state"] == "failed" and "NoSuchBucket" in failed["error"]
    assert failed["download_url"] is None


async def test_parquet_pages_are_gathered_into_row_groups(s3_app: httpx.AsyncClient, monkeypatch: Any) -> None:
    """Pages (here of 2 rows) are gathered into row groups of at least ``ROW_GROUP_ROWS`` (here 4), the last one
    holding what is left: 9 members make row groups of 4, 4 and 1, and no row is lost or written twice."""
    from core.exports import background, service

    monkeypatch.setattr(service, "PAGE_SIZE", 2)
    monkeypatch.setattr(background, "ROW_GROUP_ROWS", 4)
    runtime: Runtime = s3_app.app.state["runtime"]  # type: ignore[attr-defined]
    tenant = await create_tenant(s3_app)
    for i in range(9):
        await tenant.enrol(f"rg-{i}")
    done = await _export(tenant, runtime, kind="members", format="parquet")
    assert (done["state"], done["rows_done"], done["rows_total"]) == ("done", 9, 9)
    async with httpx.AsyncClient() as plain:
        parquet = pq.ParquetFile(io.BytesIO((await plain.get(done["download_url"])).content))
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    assert sizes == [4, 4, 1]
    assert sorted(parquet.read().column("external_id").to_pylist()) == [f"rg-{i}" for i in range(9)]
