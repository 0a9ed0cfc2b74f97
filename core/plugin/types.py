"""Every type plugins exchange with core (re-exported by :mod:`core`, the plugins' only door into core).

Every tenant hook receives one argument, ``ctx``: a frozen :class:`HookContext` (the tenant's view, the transaction,
the clock and the core :class:`Services` it may call) extended with the hook's own subject, e.g. :class:`EventContext`
(``event``, ``member``...), :class:`AwardsContext` (``rule_awards`` too), :class:`MemberContext` (``member``). Core
builds them with keywords, so a context can gain fields later without breaking a plugin.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.care.policy import MemberFacts, MessageFacts


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin package declares in its ``__init__.py`` as ``PLUGIN``.

    ``hooks`` is the module (or object) with the ``@hookimpl`` functions; ``settings`` the msgspec Struct that
    validates each tenant's settings for this plugin (its defaults are the plugin's defaults); ``migrations`` the
    directory of the plugin's own Alembic branch.
    """

    name: str
    title: str
    version: str
    hooks: object
    settings: type[msgspec.Struct] | None = None
    migrations: Path | None = None
    description: str = ""


@dataclass(frozen=True)
class EventType:
    """An activity a tenant's systems can send (``POST /v1/events`` with ``type``)."""

    name: str
    description: str
    #: Validates ``attributes``; unknown attributes are refused when the Struct forbids them.
    attributes: type[msgspec.Struct] | None = None
    requires_amount: bool = False
    requires_quantity: bool = False
    #: Whether the event is activity (resets inactivity expiry, makes the member active for billing).
    counts_as_activity: bool = True
    #: Set by core: the plugin that registered it (None for core's own types).
    plugin: str | None = None


@dataclass(frozen=True)
class MemberView:
    id: uuid.UUID
    external_id: str
    enrolled_at: datetime
    tier: str | None
    tier_rank: int | None
    attributes: dict[str, Any]
    timezone: str | None = None
    locale: str | None = None
    birthday: date | None = None
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EventView:
    id: uuid.UUID
    event_id: str
    type: str
    occurred_at: datetime
    amount: Decimal | None
    currency: str | None
    quantity: Decimal | None
    unit: str | None
    #: The decoded attributes: an instance of the event type's Struct, or a dict for schemaless types.
    attributes: Any
    raw_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TenantView:
    id: uuid.UUID
    timezone: str
    currency: str
    country: str | None
    #: Each enabled plugin's validated settings (Struct instances), by plugin name.
    plugin_settings: dict[str, Any]
    #: The program's default locale (BCP 47), when it has one.
    locale: str | None = None

    def settings_for(self, plugin: str) -> Any:
        return self.plugin_settings[plugin]


@dataclass(frozen=True)
class Decision:
    """A person's decision on a held event."""

    decision: Literal["approved", "rejected"]
    reason: str
    decided_by: str
    decided_at: datetime


@dataclass(frozen=True)
class EarlierResult:
    """An earlier event of the same member in the same batch, as the pipeline decided it."""

    event: EventView
    status: Literal["awarded", "held", "rejected"]
    #: Every award it got (core rules' and every plugin's); empty unless awarded.
    awards: tuple[Award, ...] = ()


@dataclass(frozen=True)
class Award:
    """Points a rule or plugin gives for an event, with the words a tenant can show the member."""

    points: int
    reason: str
    #: Stable identifier of what made it (``rule:<id>``, ``hotel.base``, ``fuel.premium``...).
    source: str
    #: Pending until then (e.g. checkout plus a posting delay); None posts at once.
    available_at: datetime | None = None
    #: Counts toward the ``base_points`` qualification metric (tier multipliers apply to base points).
    base: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Screening:
    """A plugin's verdict before any award: hold for review (nothing awarded until approved) or reject."""

    action: Literal["hold", "reject"]
    reason: str
    code: str


@dataclass(frozen=True)
class FieldIssue:
    """A validation problem a plugin found in an event (answered as a 422 naming ``field``)."""

    field: str
    detail: str


@dataclass(frozen=True)
class TierChange:
    member: MemberView
    old_tier: str | None
    new_tier: str | None
    reason: str


@dataclass(frozen=True)
class ScheduledJob:
    """A plugin job run by the worker for each tenant that enabled the plugin, every ``every_seconds``: ``run(ctx)``
    receives a :class:`JobContext`.

    ``when`` names the condition under which a tenant has work for the job (one of core's, listed in
    ``docs/hooks.md``: ``"members"``, the tenant has an active member): the job is then *swept*, and a quiet tenant
    costs the worker nothing (no schedule row of its own, no job); see :mod:`core.jobs.sweeps`. None: the job runs
    for every tenant that enabled the plugin."""

    name: str
    every_seconds: int
    run: Callable[[JobContext], Awaitable[None]]
    when: str | None = None


@dataclass(frozen=True)
class RewardView:
    id: uuid.UUID
    name: str
    points_cost: int
    kind: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class RedemptionView:
    id: uuid.UUID
    member_id: uuid.UUID
    reward: RewardView
    voucher_code: str
    points: int
    expires_at: datetime | None


@dataclass(frozen=True)
class ReversalView:
    event: EventView
    member: MemberView
    points_removed: int
    #: The share this reversal took back.
    fraction: Decimal
    credits_removed: dict[str, Decimal]
    #: The event's whole reversed share after this reversal (1: nothing of it counts any more).
    reversed_fraction: Decimal = Decimal(1)


@dataclass(frozen=True)
class CareTrigger:
    """An occasion a plugin can raise (``request_care`` with ``kind=name``) and tenants can write care rules for.

    ``variables`` names what the occasion offers to templates, with its type (``str``, ``int``, ``decimal``,
    ``money``, ``date``, ``datetime``, ``list``, ``dict``); ``samples`` gives a value for each, used to check
    templates when they are saved and to preview them."""

    name: str
    description: str
    purpose: Literal["service", "marketing", "safety"] = "service"
    category: str = "notice"
    variables: dict[str, str] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    #: Set by core: the plugin that registered it (None for core's own triggers).
    plugin: str | None = None


@dataclass(frozen=True)
class WebhookEventType:
    """An outbound event a plugin emits (``emit(session, tenant_id, name, data)``, ``ctx.services.emit``) that the
    tenants' webhook endpoints may subscribe to by name. ``name`` begins with the plugin's name and a dot
    (``utility.bill_credits``); ``description`` is what ``GET /v1/webhook-event-types`` says of it."""

    name: str
    description: str
    #: Set by core: the plugin that declared it.
    plugin: str | None = None


CASE_KINDS = ("complaint", "request", "question", "compliment")
CASE_PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class CaseView:
    """A complaint or service case as hooks and ``services.open_case`` see it (``GET /v1/cases/{id}`` in full)."""

    id: uuid.UUID
    #: ``complaint``, ``request``, ``question`` or ``compliment``.
    kind: str
    #: The case category's code (None until the case is classified).
    category: str | None
    #: ``received``, ``classified``, ``assigned``, ``investigating``, ``resolved``, ``replied`` or ``closed``.
    status: str
    #: ``low``, ``normal``, ``high`` or ``urgent``.
    priority: str
    #: The member it is about (None: an unknown contact, matched later).
    member_id: uuid.UUID | None
    #: How it was received: ``email``, ``sms``, ``phone``, ``web``, ``app``, ``store``, ``letter``, ``social``,
    #: ``reply`` (an inbound reply to a care message) or ``plugin``.
    channel: str
    subject: str
    description: str
    assignee: str | None
    #: What it is about: ``event_id``, ``redemption_id``, ``message_id`` and ``object`` (a plugin's object,
    #: ``utility.outage:<id>``), as given.
    related: dict[str, str]
    #: Who opened it: ``api``, ``reply`` or a plugin's name.
    source: str
    #: The opener's idempotency reference (a plugin's ``open_case(reference=...)``), if any.
    reference: str | None
    opened_at: datetime
    first_reply_due_at: datetime | None = None
    resolution_due_at: datetime | None = None


@dataclass(frozen=True)
class CaseRouting:
    """A plugin's routing of a case being opened (``fealty_route_case``): any field left None is not changed."""

    #: Who handles it (a person or team identifier: ``am:alice``, ``loan-officer:42``).
    assignee: str | None = None
    #: ``low``, ``normal``, ``high`` or ``urgent``.
    priority: str | None = None
    #: A case category's code (must exist; sets the SLA clocks).
    category: str | None = None
    #: Kept in the case's history with the routing.
    note: str | None = None


@dataclass(frozen=True)
class ReplyView:
    """A member's reply to a message, relayed by the tenant (``POST /v1/care/replies``)."""

    id: uuid.UUID
    #: ``sms`` or ``email``.
    channel: str
    #: The address it came from (canonical: E.164 phone, lower-case email), if given.
    address: str | None
    #: The reply's text, as received (trimmed).
    text: str
    received_at: datetime
    #: The member it came from (by ``member_id``, the original message, or the address), if known.
    member: MemberView | None
    #: The care message it answers, when the tenant knows it.
    message_id: uuid.UUID | None = None
    #: That message's trigger (``utility.outage_unplanned``...) and occasion key and variables.
    message_trigger: str | None = None
    message_occasion: str | None = None
    message_variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyClaim:
    """A plugin's claim of an inbound reply (``fealty_claim_reply``): core then opens no case for it."""

    #: What the plugin made of it, in words (``outage report``).
    reason: str
    #: The plugin's object it became (``utility.outage_report:<id>``), if any.
    reference: str | None = None
    #: A case the plugin opened for it (through ``services.open_case``), if any.
    case_id: uuid.UUID | None = None
    detail: dict[str, Any] = field(default_factory=dict)


#: Tier-qualification credits by name (``nights``, ``litres``...): what ``fealty_qualifying_credits`` returns.
Credits = dict[str, Decimal]
Issues = Sequence[FieldIssue]


class Services(Protocol):
    """The core services a hook may call, bound to its tenant, transaction and clock: ``await ctx.services.x(...)``.

    Core implements it (:class:`core.services.CoreServices`); a plugin only calls it. Each method is documented in
    ``docs/hooks.md``."""

    async def credit_points(
        self,
        member_id: uuid.UUID,
        points: int,
        *,
        plugin: str,
        reason: str,
        reference: str | None = None,
        available_at: datetime | None = None,
        counts_as_activity: bool = False,
        details: dict[str, Any] | None = None,
    ) -> Any:
        """Credit ``points`` to a member for the plugin (idempotent on ``reference``); a :class:`PointsMoved`."""

    async def debit_points(
        self,
        member_id: uuid.UUID,
        points: int,
        *,
        plugin: str,
        reason: str,
        reference: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Any:
        """Debit ``points`` from a member for the plugin (idempotent on ``reference``); a :class:`PointsMoved`."""

    async def request_care(
        self,
        member_id: uuid.UUID,
        *,
        kind: str,
        purpose: Literal["service", "marketing", "safety"],
        source: str,
        dedupe_key: str,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Ask the care engine to look after a member (once per ``dedupe_key``); whether it was accepted."""

    async def request_care_many(
        self,
        asks: Sequence[Any],
        *,
        kind: str,
        purpose: Literal["service", "marketing", "safety"],
        source: str,
    ) -> list[str]:
        """:meth:`request_care` for many members at once (``CareAsk(member_id, dedupe_key, payload)`` each), with
        the same semantics, a few statements per 2,000; the keys that were new."""

    async def emit(self, kind: str, data: dict[str, Any], member_id: uuid.UUID | None = None) -> None:
        """Emit an outbound webhook event (delivered after the transaction commits)."""

    async def assign_tier(self, member_id: uuid.UUID, tier_code: str, *, until: datetime | None, reason: str) -> None:
        """Move a member to a tier (announced to webhooks and to ``fealty_tier_changed``)."""

    async def tier_codes(self) -> list[str]:
        """The codes of the program's tiers."""

    async def create_tier(self, definition: dict[str, Any]) -> uuid.UUID:
        """Create a tier from a definition as ``POST /v1/tiers`` takes it."""

    async def expiry_policy(self) -> Any:
        """The program's points expiry policy (an ``ExpiryPolicyView``)."""

    async def set_expiry_policy(self, kind: str, value: int | None = None) -> Any:
        """Set the program's points expiry policy."""

    async def member(self, member_id: uuid.UUID) -> MemberView:
        """A member's view (404 problem if the tenant has no such member)."""

    async def open_case(
        self,
        member_id: uuid.UUID | None,
        *,
        subject: str,
        source: str,
        kind: str = "complaint",
        description: str = "",
        category: str | None = None,
        priority: str | None = None,
        channel: str = "plugin",
        related: dict[str, str] | None = None,
        reference: str | None = None,
        actor: str | None = None,
    ) -> CaseView:
        """Open a case (routed by ``fealty_route_case``, announced as ``case.opened``); the same ``reference``
        answers the case it opened first (idempotent)."""

    async def ensure_case_category(
        self,
        code: str,
        *,
        names: dict[str, str],
        first_reply_hours: float | None = None,
        resolution_hours: float | None = None,
        default_priority: str = "normal",
        business_hours: bool = False,
    ) -> bool:
        """Create a case category unless the tenant has one with this code (never overwrites); whether it did."""


@dataclass(frozen=True, kw_only=True)
class HookContext:
    """What every tenant hook receives (as its only argument ``ctx``).

    ``session`` is the request's (or job's) transaction: a plugin's own writes through it commit or roll back with
    core's. ``now`` is the clock (UTC, aware). ``services`` are the core services the hook may call."""

    tenant: TenantView
    session: AsyncSession
    now: datetime
    services: Services


@dataclass(frozen=True, kw_only=True)
class EventContext(HookContext):
    """What hooks about one event receive."""

    event: EventView
    member: MemberView
    simulate: bool = False
    #: The same member's earlier events in this batch (not yet stored when the hooks run).
    earlier: tuple[EventView, ...] = ()
    #: The same events with what became of them (awarded, held, rejected) and their awards: for caps and counts
    #: that must only see what was awarded (velocity rules count every attempt in ``earlier``).
    earlier_results: tuple[EarlierResult, ...] = ()
    #: ``await ctx.reverse_event(event_id, fraction, reason)`` takes back (a share of) what an earlier event of the
    #: same member earned, in this transaction (a cancelled stay, a failed payment). Returns the points removed.
    #: Available from ``fealty_event_processed``; None when simulating.
    reverse_event: Callable[[str, Decimal, str], Awaitable[int]] | None = None
    #: Set when a person decided a held event (``POST /v1/events/{id}/approve|reject`` or a plugin's own queue):
    #: who, when and why, for ``fealty_event_processed`` to keep with the plugin's rows.
    decision: Decision | None = None


@dataclass(frozen=True, kw_only=True)
class AwardsContext(EventContext):
    """``fealty_compute_awards``: the event, and what core's earning rules gave it."""

    rule_awards: tuple[Award, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CreditsContext(EventContext):
    """``fealty_qualifying_credits``: the event, and every award it got (rules' and plugins')."""

    awards: tuple[Award, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ProcessedContext(EventContext):
    """``fealty_event_processed``: the event as stored, with its status, awards and credits."""

    status: Literal["awarded", "held", "rejected"]
    awards: tuple[Award, ...] = ()
    credits: Credits = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ReversalContext(EventContext):
    """``fealty_event_reversed``: the event, and how much of it was reversed."""

    reversal: ReversalView


@dataclass(frozen=True, kw_only=True)
class MemberContext(HookContext):
    """``fealty_member_enrolled``: the member."""

    member: MemberView


@dataclass(frozen=True, kw_only=True)
class TierChangeContext(HookContext):
    """``fealty_tier_changed``: the member's move."""

    change: TierChange


@dataclass(frozen=True, kw_only=True)
class RedemptionContext(HookContext):
    """``fealty_reward_redeemed`` and ``fealty_fulfil_reward``: the redemption."""

    redemption: RedemptionView


@dataclass(frozen=True, kw_only=True)
class CareProtectionContext(HookContext):
    """``fealty_care_protection``: one care message about to be queued or sent to one member, with the facts core's
    own protection read (consents, suppression, what was sent on each recent local day, holidays)."""

    member_id: uuid.UUID
    #: channel, purpose, category, valid_until, trigger.
    message: MessageFacts
    #: The member's time zone, consents, and ``sent`` tallies per (local day, purpose, category):
    #: ``facts.count_between(first, last, category="collection")``, ``facts.holidays``, ``facts.zone``.
    facts: MemberFacts


@dataclass(frozen=True, kw_only=True)
class JobContext(HookContext):
    """What a plugin's scheduled job receives: the tenant it runs for, and the job."""

    job: str = ""
    #: Emit an outbound webhook / care event from the job (the same as ``services.emit``).
    emit: Callable[[str, dict[str, Any]], Awaitable[None]]
    #: ``await ctx.commit()`` commits what the job did so far and goes on in a new transaction as the same tenant
    #: (``ctx.session`` stays usable), extending the job's lease: a long job works page by page, each page kept once
    #: committed, however big the work. None when the job runs inside a caller's transaction (a test calling it
    #: directly): its pages then share that transaction.
    commit: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, kw_only=True)
class ReplyContext(HookContext):
    """``fealty_claim_reply``: an inbound reply that is not an opt-out, before core opens or threads a case."""

    reply: ReplyView


@dataclass(frozen=True, kw_only=True)
class CaseContext(HookContext):
    """``fealty_route_case``: a case being opened (stored, not yet announced), and its member when known."""

    case: CaseView
    member: MemberView | None = None
