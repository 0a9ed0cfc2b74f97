"""The example plugin's hook implementations. ``CALLS`` records every notification for the tests to inspect, and
``CALLED`` the name of every hook core called (a test checks that the tests exercise every hook)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import time, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody

from core import (
    Award,
    AwardsContext,
    CareProtectionContext,
    CareTrigger,
    CaseContext,
    CaseRouting,
    CreditsContext,
    CurrentPrincipal,
    CurrentProgram,
    CurrentRuntime,
    Defer,
    DemoContext,
    DemoSeeded,
    DemoTenant,
    EventContext,
    EventType,
    FieldIssue,
    HookContext,
    JobContext,
    MemberContext,
    ProcessedContext,
    RedemptionContext,
    ReplyClaim,
    ReplyContext,
    ReversalContext,
    ScheduledJob,
    Screening,
    Suppress,
    TierChangeContext,
    ValidationFailed,
    WebhookEventType,
    hookimpl,
    local_instant,
    next_in_window,
)

CALLS: list[tuple[str, Any]] = []
#: Every hook core called, by name.
CALLED: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def _records(function: F) -> F:
    """Note the hook's name when core calls it (an awaitable hook's coroutine is returned as is, for core to await)."""

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        CALLED.add(function.__name__)
        return function(*args, **kwargs)

    return cast(F, called)


class VisitAttributes(msgspec.Struct, forbid_unknown_fields=True):
    site: str
    minutes: int = 0


class EchoIn(msgspec.Struct):
    text: str


class ExampleController(Controller):
    path = "/"

    @get("/hello", operation_id="exampleHello", opt={"scope": "members:read"})
    async def hello(
        self, principal: CurrentPrincipal, program: CurrentProgram, runtime: CurrentRuntime
    ) -> dict[str, str]:
        settings = program.tenant_view(principal.tenant_id, runtime.plugins).settings_for("example")  # type: ignore[arg-type]
        return {"greeting": settings.greeting, "tenant": str(principal.tenant_id)}

    @post("/echo", operation_id="exampleEcho")
    async def echo(self, data: JSONBody[EchoIn]) -> dict[str, str]:
        return {"echo": data.text}


@hookimpl
@_records
def fealty_register_event_types() -> list[EventType]:
    return [EventType("example.visit", "A visit to an example site.", attributes=VisitAttributes)]


@hookimpl
@_records
def fealty_routes() -> list[Any]:
    return [ExampleController]


@hookimpl
@_records
def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    if ctx.event.type == "example.visit" and ctx.event.attributes.minutes > 600:
        return [FieldIssue("attributes.minutes", "a visit lasts at most 600 minutes")]
    return None


@hookimpl
@_records
def fealty_screen_event(ctx: EventContext) -> Screening | None:
    if ctx.event.type != "example.visit":
        return None
    site = ctx.event.attributes.site
    if site == ctx.tenant.settings_for("example").hold_site:
        return Screening("hold", "site under review", "example.suspicious_site")
    if site == "closed":
        return Screening("reject", "the site is closed", "example.closed_site")
    if len(ctx.earlier) >= 2:
        return Screening("hold", "more than two visits in one batch", "example.velocity")
    return None


@hookimpl
@_records
async def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    await asyncio.sleep(0)  # an awaitable hook, awaited by core
    if ctx.event.type != "example.visit":
        return None
    awards = [Award(ctx.tenant.settings_for("example").points_per_visit, "visit bonus", "example.visit", base=True)]
    if ctx.event.attributes.minutes > 60:
        awards.append(Award(10, "long visit (pending a day)", "example.long_visit", ctx.now + timedelta(days=1)))
    return awards


@hookimpl
@_records
def fealty_qualifying_credits(ctx: CreditsContext) -> dict[str, Decimal] | None:
    if ctx.event.type != "example.visit":
        return None
    return {"visits": Decimal(1), "minutes": Decimal(ctx.event.attributes.minutes)}


@hookimpl
@_records
async def fealty_event_processed(ctx: ProcessedContext) -> None:
    site = getattr(ctx.event.attributes, "site", "")
    if site == "refused":
        # A plugin may refuse an event when it records it: that item fails, nothing of it is written.
        raise ValidationFailed("the example plugin refuses visits to this site", field="attributes.site")
    CALLS.append(
        ("event_processed", (ctx.tenant.id, ctx.event.event_id, ctx.status, sum(a.points for a in ctx.awards)))
    )
    if site.startswith("cancel:") and ctx.reverse_event is not None:
        # A cancellation message: take back what the earlier visit earned, in this same transaction.
        removed = await ctx.reverse_event(site.removeprefix("cancel:"), Decimal(1), "visit cancelled")
        CALLS.append(("reversed_by_plugin", (ctx.event.event_id, removed)))


@hookimpl
@_records
def fealty_event_reversed(ctx: ReversalContext) -> None:
    CALLS.append(("event_reversed", (ctx.event.event_id, ctx.reversal.points_removed)))


@hookimpl
@_records
def fealty_plugin_enabled(ctx: HookContext) -> None:
    CALLS.append(("plugin_enabled", (ctx.tenant.id, ctx.tenant.settings_for("example").greeting)))
    if ctx.tenant.settings_for("example").greeting == "refuse":
        # A plugin may refuse to be enabled: the whole PATCH is refused and nothing of it is kept.
        raise ValidationFailed("This greeting cannot be enabled.", field="plugin_settings.example.greeting")


@hookimpl
@_records
def fealty_member_enrolled(ctx: MemberContext) -> None:
    CALLS.append(("member_enrolled", (ctx.tenant.id, ctx.member.external_id)))


@hookimpl
@_records
def fealty_tier_changed(ctx: TierChangeContext) -> None:
    change = ctx.change
    CALLS.append(("tier_changed", (ctx.tenant.id, change.member.external_id, change.old_tier, change.new_tier)))


@hookimpl
@_records
def fealty_reward_redeemed(ctx: RedemptionContext) -> None:
    CALLS.append(("reward_redeemed", (ctx.tenant.id, ctx.redemption.reward.name)))


@hookimpl
@_records
def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
    if ctx.redemption.reward.kind == "example.gift":
        return {"gift": "mug"}
    return None


async def _nightly(ctx: JobContext) -> None:
    CALLS.append(("scheduled_job", (ctx.tenant.id, ctx.tenant.settings_for("example").greeting)))
    await ctx.emit("care.requested", {"kind": "example.nightly"})


@hookimpl
@_records
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("nightly", 3600, _nightly)]


@hookimpl
@_records
def fealty_care_protection(ctx: CareProtectionContext) -> Defer | Suppress | None:
    """Fair collection, the way the microfinance plugin does it: collection contact only 08:00-19:00 in the member's
    zone, at most 2 attempts in 7 local days here (7 there), never for a written-off loan."""
    if ctx.message.category != "collection":
        return None
    if ctx.message.trigger == "example.written_off":
        return Suppress("example.written_off")
    zone = ctx.facts.zone
    today = ctx.now.astimezone(zone).date()
    if ctx.facts.count_between(today - timedelta(days=6), today, category="collection") >= 2:
        return Defer(local_instant(today + timedelta(days=1), time(8), zone), "example.collection_attempts")
    allowed = next_in_window(ctx.now, (time(8), time(19)), zone)
    return Defer(allowed, "example.collection_hours") if allowed > ctx.now else None


@hookimpl
@_records
def fealty_care_triggers() -> list[CareTrigger]:
    return [
        CareTrigger("example.nudge", "A nudge from the example plugin.", "service", "notice", {"n": "int"}, {"n": 1})
    ]


@hookimpl
@_records
def fealty_webhook_event_types() -> list[WebhookEventType]:
    return [WebhookEventType("example.visit_recorded", "A visit was recorded by the example plugin.")]


async def _seed_demo(ctx: DemoContext) -> DemoSeeded:
    ids = await ctx.api.enrol([{"external_id": "V-1", "name": "Vera Visitor"}])
    at = ctx.local(ctx.today - timedelta(days=1), 9)  # yesterday: today's 09:00 is ahead before 09:00 local
    await ctx.api.send_event(
        {
            "type": "example.visit",
            "event_id": "demo-1",
            "member": {"external_id": "V-1"},
            "occurred_at": at.isoformat(),
            "attributes": {"site": "S-1", "minutes": 45},
        }
    )
    return DemoSeeded(members={"visitor": ids["V-1"]}, lines=[f"# the example's key: ${ctx.key_variable}"])


@hookimpl
@_records
def fealty_demo_tenants() -> list[DemoTenant]:
    return [
        DemoTenant(
            slug_suffix="example",
            name="Example sites (demo)",
            currency="EUR",
            timezone="Europe/Paris",
            settings={"greeting": "bonjour"},
            key_variable="KX",
            seed=_seed_demo,
        )
    ]


@hookimpl
@_records
async def fealty_claim_reply(ctx: ReplyContext) -> ReplyClaim | None:
    """Replies of "still out" after an example notice becomes the plugin's own report (and a case it opens itself)."""
    if ctx.reply.message_trigger != "example.nudge" or "still out" not in ctx.reply.text.lower():
        return None
    member_id = ctx.reply.member.id if ctx.reply.member else None
    case = await ctx.services.open_case(
        member_id,
        subject="Still out after the notice",
        source="example",
        kind="complaint",
        description=ctx.reply.text,
        reference=f"example.report:{ctx.reply.id}",
        related={"object": f"example.report:{ctx.reply.id}"},
    )
    CALLS.append(("claim_reply", (ctx.tenant.id, ctx.reply.text)))
    return ReplyClaim("outage report", reference=f"example.report:{ctx.reply.id}", case_id=case.id)


@hookimpl
@_records
def fealty_route_case(ctx: CaseContext) -> CaseRouting | None:
    """Key members' cases go to their account manager, urgently."""
    manager = ctx.member.attributes.get("account_manager") if ctx.member else None
    CALLS.append(("route_case", (ctx.tenant.id, ctx.case.subject)))
    if not manager:
        return None
    return CaseRouting(assignee=str(manager), priority="high", note="key member: their account manager")
