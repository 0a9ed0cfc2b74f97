"""The fuel plugin's hook implementations: thin, each hands over to :mod:`plugins.fuel_station.service` (or the
event types, the fulfilment of cents-off vouchers)."""

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
    JobContext,
    MemberContext,
    ProcessedContext,
    RedemptionContext,
    ReversalContext,
    ScheduledJob,
    Screening,
    hookimpl,
)
from plugins.fuel_station import api, demo, fulfilment, service
from plugins.fuel_station.events import EVENT_TYPES

WIN_BACK_EVERY_SECONDS = 24 * 3600


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return list(EVENT_TYPES)


@hookimpl
def fealty_routes() -> list[Any]:
    return api.CONTROLLERS


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
def fealty_qualifying_credits(ctx: CreditsContext) -> dict[str, Decimal] | None:
    return service.qualifying_credits(ctx)


@hookimpl
async def fealty_event_processed(ctx: ProcessedContext) -> None:
    await service.processed(ctx, ctx.status, list(ctx.awards))


@hookimpl
async def fealty_event_reversed(ctx: ReversalContext) -> None:
    await service.on_event_reversed(ctx, ctx.reversal)


@hookimpl
async def fealty_plugin_enabled(ctx: HookContext) -> None:
    await service.seed_defaults(ctx)


@hookimpl
async def fealty_member_enrolled(ctx: MemberContext) -> None:
    await service.start_new_member(ctx)


@hookimpl
def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
    return fulfilment.fulfil(ctx.tenant, ctx.redemption)


async def _win_back(ctx: JobContext) -> None:
    await service.request_win_backs(ctx)


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("win_back", WIN_BACK_EVERY_SECONDS, _win_back, when="members")]


@hookimpl
def fealty_care_triggers() -> list[CareTrigger]:
    return [
        CareTrigger(
            "fuel.win_back",
            "A member's last fill-up or shop purchase began a lapse of win_back_after_days: a win-back offer.",
            "marketing",
            "notice",
            {"last_activity_at": "datetime", "days_inactive": "int", "transactions": "int"},
            {"last_activity_at": "2026-10-01T08:30:00+00:00", "days_inactive": 45, "transactions": 12},
        )
    ]


@hookimpl
def fealty_demo_tenants() -> list[DemoTenant]:
    return demo.demo_tenants()
