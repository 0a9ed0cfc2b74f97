"""The utility plugin's hook implementations: thin, each hands over to the plugin's modules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import (
    Award,
    AwardsContext,
    CareTrigger,
    CaseContext,
    CaseRouting,
    CreditsContext,
    DemoTenant,
    EventContext,
    EventType,
    FieldIssue,
    ProcessedContext,
    ReplyClaim,
    ReplyContext,
    ScheduledJob,
    Screening,
    WebhookEventType,
    hookimpl,
)
from plugins.utility import api, cases, demo, jobs, rewards
from plugins.utility.triggers import TRIGGERS


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return list(rewards.EVENT_TYPES)


@hookimpl
def fealty_routes() -> list[Any]:
    return api.ROUTES


@hookimpl
async def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    return await rewards.validate(ctx) or None


@hookimpl
async def fealty_screen_event(ctx: EventContext) -> Screening | None:
    return await rewards.screen(ctx)


@hookimpl
async def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    return await rewards.compute_awards(ctx)


@hookimpl
def fealty_qualifying_credits(ctx: CreditsContext) -> dict[str, Decimal] | None:
    return rewards.qualifying_credits(ctx)


@hookimpl
async def fealty_event_processed(ctx: ProcessedContext) -> None:
    await rewards.record(ctx)


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("outages", jobs.EVERY_SECONDS, jobs.outage_work)]


@hookimpl
def fealty_care_triggers() -> list[CareTrigger]:
    return list(TRIGGERS)


@hookimpl
def fealty_webhook_event_types() -> list[WebhookEventType]:
    return [
        WebhookEventType(
            "utility.bill_credits",
            "Compensation for a power cut owed as bill credits, for the tenant's billing system (up to 500 an event: "
            "compensation id, outage, account number, amount, currency).",
        )
    ]


@hookimpl
async def fealty_claim_reply(ctx: ReplyContext) -> ReplyClaim | None:
    return await cases.claim_reply(ctx)


@hookimpl
async def fealty_route_case(ctx: CaseContext) -> CaseRouting | None:
    return await cases.route_case(ctx)


@hookimpl
def fealty_demo_tenants() -> list[DemoTenant]:
    return demo.demo_tenants()
