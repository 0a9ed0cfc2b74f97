"""The types plugins exchange with core (re-exported by :mod:`core`, the plugins' only door into core)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from core.care.policy import MemberFacts, MessageFacts

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


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

    def settings_for(self, plugin: str) -> Any:
        return self.plugin_settings[plugin]


@dataclass(frozen=True)
class EventContext:
    """What hooks about one event receive. ``session`` is the request's transaction: a plugin's own writes through it
    commit or roll back together with the event."""

    tenant: TenantView
    event: EventView
    member: MemberView
    session: AsyncSession
    now: datetime
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
    """A plugin job run by the worker for each tenant that enabled the plugin, every ``every_seconds``."""

    name: str
    every_seconds: int
    run: Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class JobContext:
    tenant: TenantView
    session: AsyncSession
    now: datetime
    #: Emit an outbound webhook / care event from the job.
    emit: Callable[[str, dict[str, Any]], Awaitable[None]]


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


Credits = dict[str, Decimal]
Issues = Sequence[FieldIssue]


@dataclass(frozen=True)
class CareProtectionContext:
    """What ``fealty_care_protection`` receives: one care message about to be queued or sent to one member, with the
    facts core's own protection read (consents, suppression, what was sent on each recent local day, holidays)."""

    tenant: TenantView
    session: AsyncSession
    now: datetime
    member_id: uuid.UUID
    #: channel, purpose, category, valid_until, trigger.
    message: MessageFacts
    #: The member's time zone, consents, and ``sent`` tallies per (local day, purpose, category):
    #: ``facts.count_between(first, last, category="collection")``, ``facts.holidays``, ``facts.zone``.
    facts: MemberFacts


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
