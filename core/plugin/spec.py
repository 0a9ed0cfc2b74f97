"""Every hook a plugin can implement (the specs; implementations are marked with :data:`core.hookimpl`).

Two kinds of hook:

- **startup hooks** take no argument (``fealty_register_event_types``, ``fealty_routes``, ``fealty_scheduled_jobs``,
  ``fealty_care_triggers``, ``fealty_webhook_event_types``, ``fealty_demo_tenants``):
  called once for every registered plugin when the process starts;
- **tenant hooks** take exactly one argument, ``ctx``: a frozen :class:`~core.plugin.types.HookContext` (the tenant's
  view, the transaction, the clock, the services) extended with the hook's subject. They run only for the plugins the
  tenant enabled, inside the request's (or job's) transaction.

Every hook is called through pluggy, **in registration order, core's own implementations first** (then the plugins
in the order they were registered: entry points sorted by name). Any implementation may return a value or an
awaitable; core awaits each in that order before the next one runs. Results that are lists are concatenated in that
order; :data:`FIRST_RESULT` hooks stop at the first implementation that answers (not None): the later ones are not
awaited. Hook wrappers (``@hookimpl(wrapper=True)``) and call tracing (``FEALTY_TRACE_PLUGINS=1``) see every call.
``docs/hooks.md`` documents each hook (a test fails for an undocumented one).
"""

from __future__ import annotations

from typing import Any

import pluggy

from core.care.policy import Verdict
from core.plugin import PROJECT
from core.plugin.demo import DemoTenant
from core.plugin.types import (
    Award,
    AwardsContext,
    CareProtectionContext,
    CareTrigger,
    CaseContext,
    CaseRouting,
    Credits,
    CreditsContext,
    EventContext,
    EventType,
    FieldIssue,
    HookContext,
    MemberContext,
    ProcessedContext,
    RedemptionContext,
    ReplyClaim,
    ReplyContext,
    ReversalContext,
    ScheduledJob,
    Screening,
    TierChangeContext,
    WebhookEventType,
)

_hookspec = pluggy.HookspecMarker(PROJECT)

#: Hooks whose first answer (in call order) is the result: the later implementations are not awaited.
FIRST_RESULT = frozenset({"fealty_fulfil_reward", "fealty_claim_reply"})
#: Hooks called once at startup, without arguments.
STARTUP_HOOKS = (
    "fealty_register_event_types",
    "fealty_routes",
    "fealty_scheduled_jobs",
    "fealty_care_triggers",
    "fealty_webhook_event_types",
    "fealty_demo_tenants",
)


@_hookspec
def fealty_register_event_types() -> list[EventType]:
    """Contribute event types (name, attribute schema, requirements) at startup.

    Called once for every installed plugin; a type is accepted only from tenants that enabled its plugin. Results are
    concatenated; a name registered twice is an error at startup.
    """
    raise NotImplementedError


@_hookspec
def fealty_routes() -> list[Any]:
    """Contribute Litestar controllers (or route handlers), mounted under ``/v1/<plugin name>``.

    Called once at startup. Tenants that have not enabled the plugin get 404 from every one of its routes. Handlers
    declare their API key scope with ``opt={"scope": ...}`` like core's.
    """
    raise NotImplementedError


@_hookspec
def fealty_validate_event(ctx: EventContext) -> list[FieldIssue] | None:
    """Check an event beyond its schema (e.g. check-out before check-in). Fires before anything is written.

    Any issue from any plugin refuses the event with a 422 problem naming the first issue's field. Results are
    concatenated.
    """
    raise NotImplementedError


@_hookspec
def fealty_screen_event(ctx: EventContext) -> Screening | None:
    """Decide whether a valid event should be held for review or rejected (fraud rules, ineligible sites...).

    Fires after validation and before awards. The first ``reject`` wins over any ``hold``; a held event is stored
    with nothing awarded until it is approved.
    """
    raise NotImplementedError


@_hookspec
def fealty_compute_awards(ctx: AwardsContext) -> list[Award] | None:
    """Contribute awards for an event, after core's earning rules computed ``ctx.rule_awards``.

    Results are concatenated with the rule awards; each award is posted as its own ledger entry and listed in the
    event's outcome. Return None or [] to add nothing.
    """
    raise NotImplementedError


@_hookspec
def fealty_qualifying_credits(ctx: CreditsContext) -> Credits | None:
    """Contribute tier-qualification credits for an event (nights, stays, litres, on-time payments...).

    Credits from every plugin are added up by name; core adds ``points``, ``base_points``, ``spend`` and
    ``count:<event type>`` itself. A reversal removes them again, proportionally.
    """
    raise NotImplementedError


@_hookspec
def fealty_event_processed(ctx: ProcessedContext) -> None:
    """Notification: an event was stored with ``ctx.status`` (awarded, held, rejected), ``ctx.awards`` and
    ``ctx.credits``. Fires inside the transaction,
    so a plugin may record its own rows (visits, fill-ups) atomically with the event. Not called when simulating.
    A held event is announced again when decided: ``awarded`` when approved, ``rejected`` when rejected."""
    raise NotImplementedError


@_hookspec
def fealty_event_reversed(ctx: ReversalContext) -> None:
    """Notification: (part of) an event was reversed (through the API, by a return or by a plugin's
    ``ctx.reverse_event``); ``ctx.reversal`` says how much. Fires inside the transaction."""
    raise NotImplementedError


@_hookspec
def fealty_plugin_enabled(ctx: HookContext) -> None:
    """Notification: the tenant has just enabled this plugin (``PATCH /v1/program``, or a tenant created with it).

    Called once per enabling, only for the plugins that were not enabled before, inside that request's transaction
    and after the plugin's settings are stored (``ctx.tenant.settings_for(...)`` reads them). A plugin sets up its
    defaults here through ``ctx.services`` (``tier_codes`` / ``create_tier``, ``expiry_policy`` /
    ``set_expiry_policy``), never overwriting what the tenant configured. Raising a FealtyError refuses the change:
    nothing of it is kept.
    """
    raise NotImplementedError


@_hookspec
def fealty_member_enrolled(ctx: MemberContext) -> None:
    """Notification: ``ctx.member`` was enrolled (through the API or automatically on a first event)."""
    raise NotImplementedError


@_hookspec
def fealty_tier_changed(ctx: TierChangeContext) -> None:
    """Notification: a member moved to another tier (``ctx.change``) (upgrade, downgrade, manual, recalculation)."""
    raise NotImplementedError


@_hookspec
def fealty_reward_redeemed(ctx: RedemptionContext) -> None:
    """Notification: a reward was redeemed (``ctx.redemption``; the voucher is issued, the points are taken)."""
    raise NotImplementedError


@_hookspec
def fealty_fulfil_reward(ctx: RedemptionContext) -> dict[str, Any] | None:
    """Fulfil a redeemed reward of a kind the plugin knows (e.g. a free night, cents off per litre).

    A :data:`FIRST_RESULT` hook: the first plugin that returns a dict fulfils it; the dict is stored on the
    redemption as its fulfilment details. Raising a FealtyError refuses the redemption (nothing is taken).
    """
    raise NotImplementedError


@_hookspec
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    """Contribute periodic jobs (daily care, follow-ups, compensation). Called once at startup; the worker runs each
    job for every tenant that enabled the plugin, at most once per interval, whatever the number of workers."""
    raise NotImplementedError


@_hookspec
def fealty_care_triggers() -> list[CareTrigger]:
    """Contribute care triggers (name, default purpose and category, the variables each offers with their types and
    sample values) at startup.

    Called once for every installed plugin. A plugin raises its occasions with ``request_care(kind=<trigger name>)``;
    tenants that enabled it write care rules (``/v1/care/rules``) and templates for those triggers, and templates are
    checked against the trigger's variables and previewed with its samples. Results are concatenated; a name
    registered twice (or clashing with core's triggers) is an error at startup.
    """
    raise NotImplementedError


@_hookspec
def fealty_webhook_event_types() -> list[WebhookEventType]:
    """Declare the outbound events the plugin emits, so that webhook endpoints can subscribe to them by name.

    Called once for every installed plugin. Each name begins with the plugin's name and a dot; a name registered
    twice (or clashing with core's event types) is an error at startup. A tenant's endpoint may name a plugin's
    types only when the tenant enabled the plugin (``POST`` / ``PATCH /v1/webhook-endpoints`` answer 422 otherwise);
    ``GET /v1/webhook-event-types`` lists them after core's; an endpoint subscribed to ``"*"`` gets them too.
    """
    raise NotImplementedError


@_hookspec
def fealty_care_protection(ctx: CareProtectionContext) -> Verdict | None:
    """Protect a member from a care message (a trade's own rules, e.g. fair collection: contact only 08:00-19:00,
    at most 7 attempts in 7 days, none on holidays). Fires just before core's own policy decides, when the message is
    sent (under the member's lock, so counts in ``ctx.facts`` are exact) and may fire when it is queued.

    Return ``Send()`` or None (no objection), ``Defer(until, reason)`` or ``Suppress(reason)`` with a reason code
    prefixed by the plugin's name. Every plugin's answer and core's rules are combined, most restrictive wins: any
    Suppress suppresses (core's consent and suppression reasons first); otherwise the latest Defer, pushed further by
    core's quiet hours and caps if they forbid that moment; a deferral past the message's validity suppresses it
    (``expired``). Safety messages skip core's timing rules but not a plugin's answer.
    """
    raise NotImplementedError


@_hookspec
def fealty_demo_tenants() -> list[DemoTenant]:
    """Contribute demo tenants of the plugin's trade to ``fealty demo`` (``make demo``).

    Called once by ``fealty demo`` for every registered plugin. For each :class:`~core.plugin.demo.DemoTenant`, core
    creates the tenant ``<prefix>-<slug_suffix>`` with its admin key, enables the plugin with ``settings`` (and the
    other ``program`` fields), awaits ``seed(ctx)`` (a :class:`~core.plugin.demo.DemoContext`: the tenant's API over
    HTTP, the clock, helpers), runs the worker for the tenant, measures its loyalty and prints its key, counts and the
    lines ``seed`` returned. Results are concatenated; a slug suffix used twice is an error.
    """
    raise NotImplementedError


@_hookspec
def fealty_claim_reply(ctx: ReplyContext) -> ReplyClaim | None:
    """Claim a member's inbound reply (``POST /v1/care/replies``) before core opens a case for it (or adds it to an
    open case of its thread): e.g. "still out" after an outage notice becomes an outage report.

    Fires after STOP and its variants were handled (an opt-out is never offered to plugins), inside the request's
    transaction. A :data:`FIRST_RESULT` hook: the first plugin that returns a :class:`ReplyClaim` takes the reply,
    core opens no case and answers ``outcome: "claimed"`` with the claim; None leaves it to the next plugin, then to
    core. Raising a FealtyError refuses the reply (nothing of it is kept).
    """
    raise NotImplementedError


@_hookspec
def fealty_route_case(ctx: CaseContext) -> CaseRouting | None:
    """Route a case being opened (through the API, a reply, or ``services.open_case``): set its assignee, priority
    or category (e.g. a large customer's case to their account manager).

    Fires once per case, after it is stored as received (and classified when it came with a category) and before
    it is announced, inside the same transaction. Every enabled plugin answers in call order; for each field, the
    first answer that sets it wins. A category sets the SLA clocks; an assignee moves the case to ``assigned``.
    The routing is kept in the case's history (actor ``routing``, with the answers' notes).
    """
    raise NotImplementedError
