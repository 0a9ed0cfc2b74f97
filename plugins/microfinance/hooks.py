"""The microfinance plugin's hook implementations: thin, each hands over to the service modules."""

from __future__ import annotations

from typing import Any

from core import (
    Award,
    AwardsContext,
    CareProtectionContext,
    CareTrigger,
    Defer,
    DemoTenant,
    EventContext,
    EventType,
    FieldIssue,
    HookContext,
    ProcessedContext,
    ReversalContext,
    ScheduledJob,
    Suppress,
    hookimpl,
)
from plugins.microfinance import api, demo, followups, service

NIGHTLY_SECONDS = 24 * 3600
COLLECTION_SECONDS = 3600


@hookimpl
def fealty_register_event_types() -> list[EventType]:
    return [
        EventType(
            service.REPAYMENT,
            "A loan repayment: the amount (in the loan's currency) paid into the loan named in attributes.loan_id",
            attributes=service.RepaymentAttributes,
            requires_amount=True,
            counts_as_activity=True,
        )
    ]


@hookimpl
def fealty_routes() -> list[Any]:
    return api.ROUTES


@hookimpl
async def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    if ctx.event.type != service.REPAYMENT:
        return None
    return await service.validate_repayment(ctx) or None


@hookimpl
async def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    if ctx.event.type != service.REPAYMENT:
        return None
    return await service.repayment_awards(ctx)


@hookimpl
async def fealty_event_processed(ctx: ProcessedContext) -> None:
    if ctx.event.type == service.REPAYMENT:
        await service.record_repayment(ctx)


@hookimpl
async def fealty_event_reversed(ctx: ReversalContext) -> None:
    await service.reverse_repayment(ctx)


@hookimpl
async def fealty_plugin_enabled(ctx: HookContext) -> None:
    await service.seed_defaults(ctx)


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [
        ScheduledJob("nightly", NIGHTLY_SECONDS, followups.nightly_job, when="members"),
        ScheduledJob("collection", COLLECTION_SECONDS, followups.collection_job, when="members"),
    ]


@hookimpl
async def fealty_care_protection(ctx: CareProtectionContext) -> Defer | Suppress | None:
    return await followups.fair_collection(ctx)


@hookimpl
def fealty_care_triggers() -> list[CareTrigger]:
    return [
        CareTrigger(
            service.REMINDER_TRIGGER,
            "An instalment falls due soon: a repayment reminder (fair collection applies).",
            "service",
            "reminder",
            {"loan_id": "str", "instalment": "int", "due_on": "date", "amount": "decimal", "currency": "str"},
            {"loan_id": "L-1", "instalment": 3, "due_on": "2027-03-15", "amount": "863.33", "currency": "CNY"},
        ),
        CareTrigger(
            service.ARREARS_TRIGGER,
            "A loan is in arrears: a collection contact (fair collection applies).",
            "service",
            "collection",
            {"loan_id": "str", "days_past_due": "int", "oldest_due_on": "date", "currency": "str"},
            {"loan_id": "L-1", "days_past_due": 5, "oldest_due_on": "2027-03-15", "currency": "CNY"},
        ),
        CareTrigger(
            "microfinance.networking_event",
            "An invitation to a networking event between clients.",
            "marketing",
            "invitation",
            {"event_name": "str", "held_on": "date", "place": "str"},
            {"event_name": "Spring clients' fair", "held_on": "2027-04-10", "place": "Huai'an centre"},
        ),
    ]


@hookimpl
def fealty_demo_tenants() -> list[DemoTenant]:
    return demo.demo_tenants()
