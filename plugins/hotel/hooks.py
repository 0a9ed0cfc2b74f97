"""The hotel plugin's hook implementations: thin, each hands over to :mod:`plugins.hotel.service`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import (
    Award,
    AwardsContext,
    CareTrigger,
    CreditsContext,
    DemoTenant,
    EventContext,
    EventType,
    FieldIssue,
    HookContext,
    ProcessedContext,
    RedemptionContext,
    ReversalContext,
    ScheduledJob,
    Screening,
    hookimpl,
)
from plugins.hotel import api, demo, fulfilment, service
from plugins.hotel.events import EVENT_TYPES

PRE_ARRIVAL_EVERY_SECONDS = 6 * 3600


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return list(EVENT_TYPES)


@hookimpl
def fealty_routes() -> list[Any]:
    return api.ROUTES


@hookimpl
async def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    return await service.validate(ctx) or None


@hookimpl
async def fealty_screen_event(ctx: EventContext) -> Screening | None:
    return await service.screen(ctx)


@hookimpl
async def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    return await service.compute_awards(ctx)


@hookimpl
async def fealty_qualifying_credits(ctx: CreditsContext) -> dict[str, Decimal] | None:
    return await service.qualifying_credits(ctx)


@hookimpl
async def fealty_event_processed(ctx: ProcessedContext) -> None:
    await service.record(ctx, ctx.status, list(ctx.awards), ctx.credits)


@hookimpl
async def fealty_event_reversed(ctx: ReversalContext) -> None:
    await service.on_event_reversed(ctx, ctx.reversal)


@hookimpl
async def fealty_plugin_enabled(ctx: HookContext) -> None:
    await service.seed_defaults(ctx)


@hookimpl
async def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
    return fulfilment.fulfil(ctx.tenant, ctx.redemption)


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("pre_arrival", PRE_ARRIVAL_EVERY_SECONDS, service.pre_arrival_job, when="members")]


@hookimpl
def fealty_care_triggers() -> list[CareTrigger]:
    return [
        CareTrigger(
            "hotel.pre_arrival",
            "A top-tier guest arrives within the pre-arrival window: what awaits them.",
            "service",
            "notice",
            {
                "reservation_id": "str",
                "property": "str",
                "check_in": "date",
                "check_out": "date",
                "tier": "str",
                "welcome_gift": "str",
                "perks": "dict",
            },
            {
                "reservation_id": "R-1001",
                "property": "Shanghai Bund",
                "check_in": "2027-03-01",
                "check_out": "2027-03-03",
                "tier": "diamond",
                "welcome_gift": "Tea selection",
                "perks": {"priority_check_in": True, "late_checkout": "14:00", "butler": False},
            },
        ),
        CareTrigger(
            "hotel.milestone",
            "A guest reached a nights milestone: the choices on offer.",
            "service",
            "notice",
            {"milestone_id": "str", "nights": "int", "year": "int", "options": "list"},
            {"milestone_id": "0", "nights": 20, "year": 2027, "options": [{"choice": "points", "points": 5000}]},
        ),
        CareTrigger(
            "hotel.milestone_choice",
            "A guest chose a milestone reward the hotel hands over (voucher, upgrade).",
            "service",
            "notice",
            {"milestone_id": "str", "nights": "int", "choice": "str"},
            {"milestone_id": "0", "nights": 20, "choice": "suite_upgrade"},
        ),
    ]


@hookimpl
def fealty_demo_tenants() -> list[DemoTenant]:
    return demo.demo_tenants()
