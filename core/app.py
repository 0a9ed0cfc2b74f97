"""The application factory: ``create_app(settings) -> Litestar``."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from core import __version__
from core.billing.api import BillingController, PlatformBillingController, PlatformPlansController
from core.campaigns.api import CampaignsController
from core.care.api import care_controllers
from core.cases.api import CASE_ROUTES
from core.db.migrate import upgrade_async
from core.earning.api import EarningRulesController
from core.events.api import EventsController
from core.exports.api import BackgroundExportsController, ExportsController
from core.http.deps import DEPENDENCIES
from core.http.middleware import ApiMiddleware
from core.http.openapi import ContractJsonRenderPlugin
from core.http.problems import handle_exception
from core.imports.api import ImportsController
from core.jobs import schedules
from core.jobs.api import JobsController, PlatformJobsController
from core.ledger.api import LedgerController
from core.logging import configure_logging
from core.measurement.api import MeasurementController, MeasurementSettingsController, MemberLoyaltyController
from core.measurement.reports_api import ReportsController, SharedDashboardController
from core.members.api import MembersController
from core.ops import MetricsController, healthz, readyz
from core.plugin.manager import PluginManager
from core.program.api import ProgramController
from core.rewards.api import MemberRewardsController, RedemptionsController, RewardsController
from core.runtime import Runtime
from core.segments.api import SegmentsController
from core.settings import Settings, get_settings
from core.surveys.api import SURVEY_ROUTES
from core.tenancy.api import ApiKeysController, PlatformTenantsController
from core.tenancy.service import ensure_platform_key
from core.tiers.api import MemberTierController, TiersController
from core.webhooks.api import WebhookDeliveriesController, WebhookEndpointsController, WebhookEventTypesController
from core.worker import build_registry, run_forever

CORE_ROUTES: list[Any] = [
    PlatformTenantsController,
    ApiKeysController,
    ProgramController,
    MembersController,
    LedgerController,
    EventsController,
    ExportsController,
    BackgroundExportsController,
    ImportsController,
    EarningRulesController,
    TiersController,
    MemberTierController,
    SegmentsController,
    CampaignsController,
    MeasurementController,
    MeasurementSettingsController,
    MemberLoyaltyController,
    ReportsController,
    SharedDashboardController,
    *care_controllers(),
    *CASE_ROUTES,
    *SURVEY_ROUTES,
    RewardsController,
    RedemptionsController,
    MemberRewardsController,
    WebhookEndpointsController,
    WebhookDeliveriesController,
    WebhookEventTypesController,
    JobsController,
    PlatformJobsController,
    BillingController,
    PlatformPlansController,
    PlatformBillingController,
]


#: Young objects allowed before a collection of the youngest generation (CPython's default is 700). A batch of 1,000
#: events allocates hundreds of thousands of short-lived containers; at 700 the collector ran thousands of times per
#: batch. Reference counting frees nearly all of them anyway: only cycles wait for the collector.
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once the app has started: what exists now (modules, compiled statements, the plugin registry, caches) lives as
    long as the process, so it is moved out of the cyclic collector's sight (``gc.freeze``) and the youngest
    generation is collected less often. Measured with ``python -m bench.cpu``: the app's CPU per event in a batch of
    1,000 fell from about 300 to 200 us (the collector's passes over every long-lived object were a third of it)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_app(settings: Settings | None = None, *, plugins: PluginManager | None = None) -> Litestar:
    """The API. Without ``plugins``, the installed plugins the settings name (every one by default) are loaded."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    plugins = plugins or PluginManager.for_settings(settings)
    runtime = Runtime.create(settings, plugins)
    # A tenant's recurring work is scheduled when it is created or its plugins change, not at the worker's next pass.
    runtime.schedule_sync = functools.partial(schedules.sync_tenant, recurring=tuple(build_registry(runtime).recurring))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.migrates_on_start:
            await upgrade_async(settings.owner_database_url)
        if runtime.platform_key_hash is None:
            runtime.platform_key_hash, _ = await ensure_platform_key(runtime.sessionmaker, generate=False)
        settle_garbage_collector()
        stop = asyncio.Event()
        worker = asyncio.create_task(run_forever(runtime, stop)) if settings.runs_embedded_worker else None
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await runtime.close()

    plugins.webhook_event_types()  # the plugins' webhook event types are checked at startup (names, clashes)
    plugin_routers = [
        Router(path=f"/v1/{name}", route_handlers=handlers, opt={"plugin": name}, tags=[name])
        for name, handlers in plugins.routes()
        if handlers
    ]
    return Litestar(
        route_handlers=[*CORE_ROUTES, *plugin_routers, healthz, readyz, MetricsController],
        middleware=[ApiMiddleware(runtime)],
        dependencies=DEPENDENCIES,
        exception_handlers={Exception: handle_exception},
        lifespan=[lifespan],
        state=State({"runtime": runtime}),
        openapi_config=OpenAPIConfig(
            title="Fealty",
            version=__version__,
            description="Multi-tenant loyalty platform API. Errors are RFC 9457 problem documents "
            "(application/problem+json); every operation lists the statuses it can answer (docs/api.md).",
            path="/schema",
            # /schema/openapi.json serves the contract (core.http.openapi), not the bare generated schema.
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger"), ContractJsonRenderPlugin()],
        ),
        request_max_body_size=settings.max_body_bytes,
        # Logging is core.logging's: Litestar's default config would add handlers printing in its own format.
        logging_config=None,
        debug=False,
    )
