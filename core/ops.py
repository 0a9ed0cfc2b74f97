"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy import text

from core.db.migrate import is_current
from core.errors import ServiceUnavailable
from core.http.deps import CurrentRuntime
from core.http.problems import problem_response


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


@get("/healthz", operation_id="health", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", operation_id="ready", include_in_schema=False)
async def readyz(runtime: CurrentRuntime) -> Response[Any]:
    """The database answers and its schema is at the heads of every migration branch."""
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await is_current(runtime.engine)
    except Exception as exc:  # readiness reports any failure as not ready
        return problem_response(ServiceUnavailable(f"The database is not reachable: {type(exc).__name__}."))
    if not current:
        return problem_response(ServiceUnavailable("The database schema is not at the latest migration."))
    return Response({"status": "ready"})
