"""Dependencies every route handler can ask for by name: ``db``, ``principal``, ``program``, ``runtime`` and
``tenant_view`` (what plugin hooks see of the tenant: plugins' route handlers ask for it as ``CurrentTenant``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from core.http.auth import Principal
from core.http.middleware import STATE_AFTER_COMMIT, STATE_PRINCIPAL, STATE_SESSION
from core.plugin.types import TenantView
from core.program.settings import ProgramSettings
from core.runtime import Runtime

AnyRequest = Request[Any, Any, Any]


def provide_db(request: AnyRequest) -> AsyncSession:
    session: AsyncSession = request.scope["state"][STATE_SESSION]
    return session


def provide_principal(request: AnyRequest) -> Principal:
    principal: Principal = request.scope["state"][STATE_PRINCIPAL]
    return principal


def provide_program(request: AnyRequest) -> ProgramSettings:
    return provide_principal(request).require_program()


def provide_runtime(request: AnyRequest) -> Runtime:
    runtime: Runtime = request.app.state["runtime"]
    return runtime


def provide_tenant_view(request: AnyRequest) -> TenantView:
    """The tenant's view (timezone, currency, each enabled plugin's settings), as the plugins' hooks get it."""
    principal = provide_principal(request)
    program = principal.require_program()
    assert principal.tenant_id is not None  # a tenant's program: a tenant's key
    return program.tenant_view(principal.tenant_id, provide_runtime(request).plugins)


def after_commit(request: AnyRequest, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the request's transaction has committed (e.g. wake the worker)."""
    request.scope["state"][STATE_AFTER_COMMIT].append(callback)


DEPENDENCIES = {
    "db": Provide(provide_db, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "program": Provide(provide_program, sync_to_thread=False),
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "tenant_view": Provide(provide_tenant_view, sync_to_thread=False),
}


# Explicit markers for handler parameters (Litestar 3 drops inferred dependencies).
Db = NamedDependency[AsyncSession]
CurrentPrincipal = NamedDependency[Principal]
CurrentProgram = NamedDependency[ProgramSettings]
CurrentRuntime = NamedDependency[Runtime]
CurrentTenant = NamedDependency[TenantView]
